package cache

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"reflect"
	"sync"
)

// A stored value is "<shape>:<JSON>". The shape is a hash of the Go type's JSON layout
// (field names, tags and kinds, recursively), so a replica of another version that
// reads a value of a different layout treats it as a miss instead of serving JSON of
// the wrong shape — and the fast path can hand the JSON on without decoding it.

var shapes sync.Map // reflect.Type → string

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// shapeOf returns the 16-hex-digit shape of T.
func shapeOf[T any]() string {
	t := reflect.TypeFor[T]()
	if s, ok := shapes.Load(t); ok {
		return s.(string)
	}
	h := fnv.New64a()
	writeShape(h, t, map[reflect.Type]bool{})
	s := fmt.Sprintf("%016x", h.Sum64())
	shapes.Store(t, s)
	return s
}

func writeShape(w io.Writer, t reflect.Type, seen map[reflect.Type]bool) {
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) {
		// Its own encoding: the type's identity is its shape.
		fmt.Fprintf(w, "<%s>", t.String())
		return
	}
	fmt.Fprint(w, t.Kind().String())
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		writeShape(w, t.Elem(), seen)
	case reflect.Map:
		writeShape(w, t.Key(), seen)
		writeShape(w, t.Elem(), seen)
	case reflect.Struct:
		if seen[t] {
			fmt.Fprintf(w, "<%s>", t.String())
			return
		}
		seen[t] = true
		fmt.Fprint(w, "{")
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			fmt.Fprintf(w, "%s %q ", f.Name, f.Tag.Get("json"))
			writeShape(w, f.Type, seen)
			fmt.Fprint(w, ";")
		}
		fmt.Fprint(w, "}")
	}
}

// wrap returns the stored form of v.
func wrap(v any, shape string) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(shape) + 1 + 256)
	buf.WriteString(shape)
	buf.WriteByte(':')
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // Encode's newline
}

// unwrap returns the JSON of a stored value of the given shape.
func unwrap(stored []byte, shape string) ([]byte, bool) {
	if len(stored) <= len(shape) || stored[len(shape)] != ':' || string(stored[:len(shape)]) != shape {
		return nil, false
	}
	return stored[len(shape)+1:], true
}
