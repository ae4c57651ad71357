package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
)

// companyV2 is company after a field was renamed: another shape.
type companyV2 struct {
	ID       int      `json:"id"`
	FullName string   `json:"full_name"`
	Tags     []string `json:"tags"`
}

func TestGetOrLoadJSON(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, testenv.Redis(t))
	var calls atomic.Int32
	load := loader(&calls)

	for _, tc := range []struct {
		name string
		get  func() ([]byte, error)
	}{
		{"plain", func() ([]byte, error) { return GetOrLoadJSON(ctx, c, "j1", time.Minute, load) }},
		{"namespaced", func() ([]byte, error) { return GetOrLoadJSONIn(ctx, c, "ns", "j1", time.Minute, load) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(c)
			miss, err := tc.get()
			if err != nil {
				t.Fatal(err)
			}
			hit, err := tc.get()
			if err != nil {
				t.Fatal(err)
			}
			if string(miss) != string(hit) {
				t.Errorf("miss returned %s, hit %s", miss, hit)
			}
			var got company
			if err := json.Unmarshal(hit, &got); err != nil || got.ID != 1 || !strings.HasPrefix(got.Name, "v") {
				t.Errorf("hit JSON %s: %+v, %v", hit, got, err)
			}
			after := counts(c)
			if after[0]-before[0] != 1 || after[1]-before[1] != 1 {
				t.Errorf("hit/miss went from %v to %v, want one of each", before, after)
			}
			// The decoding variant reads what the JSON variant stored.
			var v company
			if tc.name == "plain" {
				v, err = GetOrLoad(ctx, c, "j1", time.Minute, load)
			} else {
				v, err = GetOrLoadIn(ctx, c, "ns", "j1", time.Minute, load)
			}
			if err != nil || v.ID != got.ID || v.Name != got.Name {
				t.Errorf("GetOrLoad after GetOrLoadJSON: %+v, %v; want %+v", v, err, got)
			}
			if counts(c)[0] != after[0]+1 {
				t.Error("GetOrLoad of a value stored by GetOrLoadJSON was not a hit")
			}
		})
	}
}

// A value written by a version whose type has another layout is a miss, and the reload
// overwrites it — never is JSON of the wrong shape served.
func TestOtherShapeIsAMiss(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, testenv.Redis(t))
	var calls atomic.Int32
	if _, err := GetOrLoad(ctx, c, "s", time.Minute, loader(&calls)); err != nil {
		t.Fatal(err)
	}
	loadV2 := func(context.Context) (companyV2, error) {
		calls.Add(1)
		return companyV2{ID: 1, FullName: "Acme"}, nil
	}
	for i := range 2 {
		b, err := GetOrLoadJSON(ctx, c, "s", time.Minute, loadV2)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"full_name":"Acme"`) {
			t.Errorf("read %d: got %s", i, b)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("loader calls = %d, want 2 (v1 once, v2 once after the shape changed)", n)
	}
	// Garbage under the key (e.g. written by something else) is a miss too.
	if err := c.rdb.Set(ctx, c.prefix+"k:g", "not a cached value", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := GetOrLoad(ctx, c, "g", time.Minute, loader(&calls)); err != nil || v.ID != 1 {
		t.Errorf("garbage under the key: %+v, %v", v, err)
	}
}

func TestShape(t *testing.T) {
	type node struct {
		Name     string  `json:"name"`
		Children []*node `json:"children"`
		When     time.Time
	}
	type renamedTag struct {
		ID   int      `json:"ident"`
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	type changedKind struct {
		ID   string   `json:"id"`
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	shapesSeen := map[string]string{}
	for name, s := range map[string]string{
		"company":     shapeOf[company](),
		"companyV2":   shapeOf[companyV2](),
		"renamedTag":  shapeOf[renamedTag](),
		"changedKind": shapeOf[changedKind](),
		"node":        shapeOf[node](), // recursive types terminate
		"[]company":   shapeOf[[]company](),
		"map":         shapeOf[map[string]company](),
	} {
		if len(s) != 16 {
			t.Errorf("%s: shape %q is not 16 hex digits", name, s)
		}
		if other, dup := shapesSeen[s]; dup {
			t.Errorf("%s and %s have the same shape %s", name, other, s)
		}
		shapesSeen[s] = name
	}
	// The cached shape is the one computed afresh.
	h := fnv.New64a()
	writeShape(h, reflect.TypeFor[company](), map[reflect.Type]bool{})
	if fmt.Sprintf("%016x", h.Sum64()) != shapeOf[company]() {
		t.Error("shape is not stable")
	}
	type sameLayout struct {
		ID   int      `json:"id"`
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if shapeOf[sameLayout]() != shapeOf[company]() {
		t.Error("two types with the same JSON layout have different shapes")
	}
	if _, ok := unwrap([]byte(shapeOf[company]()), shapeOf[company]()); ok {
		t.Error("unwrap accepted a value without body")
	}
}

func TestJSONWithRedisDown(t *testing.T) {
	ctx := context.Background()
	r := testenv.RedisServer(t)
	c := newTestCache(t, r)
	r.Stop(t)
	var calls atomic.Int32
	for _, get := range []func() ([]byte, error){
		func() ([]byte, error) { return GetOrLoadJSON(ctx, c, "k", time.Minute, loader(&calls)) },
		func() ([]byte, error) { return GetOrLoadJSONIn(ctx, c, "ns", "k", time.Minute, loader(&calls)) },
	} {
		b, err := get()
		if err != nil || !strings.Contains(string(b), `"id":1`) {
			t.Errorf("with Redis down: %s, %v", b, err)
		}
	}
	if cnt := counts(c); cnt != [3]int{0, 0, 2} {
		t.Errorf("hit/miss/error = %v, want [0 0 2]", cnt)
	}
}
