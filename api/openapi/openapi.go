// Package openapi builds the API's OpenAPI 3.1 document from the route table (so the
// document cannot drift from the routes) and serves it with a self-contained /docs page.
package openapi

import (
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
)

// Doc is an OpenAPI document as a JSON-ready map.
type Doc map[string]any

var pathParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// Build returns the document for routes mounted under prefix.
func Build(title, version, prefix string, routes []web.Route) Doc {
	schemas := map[string]any{
		"Problem": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
				"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
				"instance": map[string]any{"type": "string"}, "request_id": map[string]any{"type": "string"},
				"errors": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"field": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}},
			},
		},
	}
	g := &gen{schemas: schemas}
	paths := map[string]any{}
	for _, r := range routes {
		p := pathParam.ReplaceAllString(prefix+r.Path, "{$1}")
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		op := map[string]any{
			"summary":      r.Summary,
			"operationId":  operationID(r),
			"x-permission": string(r.Perm),
			"responses":    responses(g, r),
		}
		if r.Tag != "" {
			op["tags"] = []string{r.Tag}
		}
		if r.Perm == rbac.Public {
			op["security"] = []any{}
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range r.Query {
			typ := q.Type
			if typ == "" {
				typ = "string"
			}
			params = append(params, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": map[string]any{"type": typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(r.Request))}}}
		}
		item[strings.ToLower(r.Method)] = op
	}
	return Doc{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": title, "version": version},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func operationID(r web.Route) string {
	s := strings.ToLower(r.Method) + pathParam.ReplaceAllString(r.Path, "by_$1")
	return strings.NewReplacer("/", "_", "-", "_", ".", "_").Replace(s)
}

func responses(g *gen, r web.Route) map[string]any {
	problem := map[string]any{"description": "error", "content": map[string]any{
		web.ProblemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	ok := map[string]any{"description": "success"}
	if r.Response != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(r.Response))}}
	}
	code := "200"
	switch r.Method {
	case "POST":
		code = "201"
	case "DELETE":
		code = "204"
	}
	out := map[string]any{code: ok, "default": problem}
	if r.Perm != rbac.Public {
		out["401"] = problem
		out["403"] = problem
	}
	return out
}

type gen struct{ schemas map[string]any }

var timeType = reflect.TypeOf(time.Time{})

func (g *gen) schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.object(t)
		}
		if t.PkgPath() != "" {
			name = t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:] + "." + name
		}
		name = strings.NewReplacer(".", "_").Replace(name)
		if _, done := g.schemas[name]; !done {
			g.schemas[name] = map[string]any{} // breaks recursion
			g.schemas[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func (g *gen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			required = append(required, name)
		}
	}
	sort.Strings(required)
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}
