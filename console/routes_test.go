package console

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode"
)

// Every route names a role and an audit action; state changes name a real action.
func TestRouteTableIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range routes {
		if err := checkRoute(r); err != nil {
			t.Error(err)
		}
		key := r.Method + " " + r.Path
		if seen[key] {
			t.Errorf("route %s twice", key)
		}
		seen[key] = true
	}
	infos := Routes()
	if len(infos) != len(routes) {
		t.Fatalf("Routes() lists %d of %d", len(infos), len(routes))
	}
	for _, in := range infos {
		if in.Role == "missing" || in.Audit == "" || in.Summary == "" {
			t.Errorf("route %s %s: role %q audit %q summary %q", in.Method, in.Path, in.Role, in.Audit, in.Summary)
		}
	}
}

// The table refuses what it must not have — the check itself can fail.
func TestCheckRouteRefuses(t *testing.T) {
	h := func(*Console, http.ResponseWriter, *http.Request, *request) error { return nil }
	cases := map[string]route{
		"no role":           {Method: "GET", Path: "/admin/x", Audit: NoAudit, Handler: h},
		"no audit":          {Method: "GET", Path: "/admin/x", Role: Viewer, Handler: h},
		"post without":      {Method: "POST", Path: "/admin/x", Role: Admin, Audit: NoAudit, Handler: h},
		"outside /admin":    {Method: "GET", Path: "/api/x", Role: Viewer, Audit: NoAudit, Handler: h},
		"no handler":        {Method: "GET", Path: "/admin/x", Role: Viewer, Audit: NoAudit},
		"any method":        {Method: "", Path: "/admin/x", Role: Viewer, Audit: NoAudit, Handler: h},
		"PUT":               {Method: "PUT", Path: "/admin/x", Role: Viewer, Audit: "x.put", Handler: h},
		"public state":      {Method: "POST", Path: "/admin/services/api/scale", Role: Public, Audit: "service.scale", Handler: h},
		"role out of range": {Method: "GET", Path: "/admin/x", Role: Admin + 1, Audit: NoAudit, Handler: h},
	}
	for name, r := range cases {
		if checkRoute(r) == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
	c := &Console{}
	if _, err := c.buildMux([]route{cases["no role"]}); err == nil {
		t.Error("buildMux accepted a route without a role")
	}
	dup := route{Method: "GET", Path: "/admin/x", Role: Viewer, Audit: NoAudit, Handler: h}
	if _, err := c.buildMux([]route{dup, dup}); err == nil {
		t.Error("buildMux accepted conflicting patterns")
	}
}

// Nothing is registered outside the table: the only Handle/HandleFunc call of the
// package is buildMux's; and each handler of the table lives in a file of its own
// named after it.
func TestNoHandlerOutsideTheTable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	handlersIn := map[string][]string{} // file → serve* functions defined
	registrations := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") {
					pos := fset.Position(n.Pos())
					fn := enclosingFunc(file, n.Pos())
					if f != "routes.go" || fn != "buildMux" {
						t.Errorf("%s: %s registers a handler outside the route table (in %s)", pos, sel.Sel.Name, fn)
					}
					registrations++
				}
			case *ast.FuncDecl:
				if n.Recv == nil && strings.HasPrefix(n.Name.Name, "serve") && len(n.Name.Name) > 5 && unicode.IsUpper(rune(n.Name.Name[5])) {
					handlersIn[f] = append(handlersIn[f], n.Name.Name)
				}
			}
			return true
		})
	}
	if registrations != 1 {
		t.Errorf("%d registrations; want exactly buildMux's one", registrations)
	}
	for _, r := range routes {
		name := funcName(r.Handler)
		want := "handler_" + snake(strings.TrimPrefix(name, "serve")) + ".go"
		got := handlersIn[want]
		if len(got) != 1 || got[0] != name {
			t.Errorf("route %s %s: handler %s should be the one handler of %s (it has %v)", r.Method, r.Path, name, want, got)
		}
	}
	for f, hs := range handlersIn {
		if !strings.HasPrefix(f, "handler_") {
			t.Errorf("%s defines handlers %v outside a handler_*.go file", f, hs)
		}
	}
}

func enclosingFunc(file *ast.File, pos token.Pos) string {
	for _, d := range file.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Pos() <= pos && pos <= fd.End() {
			return fd.Name.Name
		}
	}
	return "package level"
}

func funcName(f handlerFunc) string {
	full := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	return full[strings.LastIndex(full, ".")+1:]
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 && !(i+1 < len(s) && unicode.IsUpper(rune(s[i-1])) && !unicode.IsLower(rune(s[i+1]))) && !unicode.IsUpper(rune(s[i-1])) {
				b.WriteByte('_')
			} else if i > 0 && unicode.IsUpper(rune(s[i-1])) && i+1 < len(s) && unicode.IsLower(rune(s[i+1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"Overview": "overview", "TOTPForm": "totp_form", "LoginForm": "login_form",
		"TOTPLogin": "totp_login", "UserActive": "user_active", "RootRedirect": "root_redirect"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
	if _, err := os.Stat("handler_overview.go"); err != nil {
		t.Fatal(err)
	}
}
