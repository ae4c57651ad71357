package companies

import (
	"encoding/base64"
	"github.com/corpintel/corpintel/api/web"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseList(t *testing.T) {
	good := EncodeCursor(Cursor{Filter: ListParams{Sector: "Energy"}.filterKey(), Name: "A", ID: "0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f"})
	cases := []struct {
		q     string
		ok    bool
		check func(ListParams) bool
	}{
		{"", true, func(p ListParams) bool { return p.Limit == DefaultLimit && p.After == nil }},
		{"limit=200&country=us&sector=%20Energy%20&q=%20apple", true, func(p ListParams) bool {
			return p.Limit == 200 && p.Country == "US" && p.Sector == "Energy" && p.Q == "apple"
		}},
		{"sector=Energy&cursor=" + good, true, func(p ListParams) bool { return p.After != nil && p.After.Name == "A" }},
		{"cursor=" + good, false, nil}, // other filters
		{"limit=0", false, nil},
		{"limit=201", false, nil},
		{"limit=ten", false, nil},
		{"country=XX", false, nil},
		{"country=USA", false, nil},
		{"q=" + strings.Repeat("a", 101), false, nil},
		{"q=%00", false, nil},
		{"sectr=Energy", false, nil},
		{"limit=1&limit=2", false, nil},
		{"cursor=%%%", false, nil},
	}
	for _, c := range cases {
		q, err := url.ParseQuery(c.q)
		if err != nil {
			q = url.Values{"cursor": {"%%%"}}
		}
		p, err := ParseList(q)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.q, err)
			continue
		}
		if c.check != nil && !c.check(p) {
			t.Errorf("%q: got %+v", c.q, p)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	in := Cursor{Filter: "abc", Name: "Ålborg ' OR 1=1", ID: "0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f", Exact: 1, Score: 0.123456789}
	out, err := DecodeCursor(EncodeCursor(in))
	in.V = cursorVersion
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{
		"", strings.Repeat("A", maxCursor+1), "!!!",
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"f":"x","n":"a","i":"nope"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":2,"f":"x","n":"a","i":"0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"f":"x","n":"","i":"0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"f":"x","n":"a","i":"0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f","k":5}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"f":"x","n":"a","i":"0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f","s":-1}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"f":"x","n":"a","i":"0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f","x":1}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`[]`)),
	} {
		if _, err := DecodeCursor(bad); err == nil {
			t.Errorf("accepted cursor %q", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Input{Name: Field[string]{Set: true, V: " X "}, Ticker: Field[string]{Set: true, V: ""}, FoundedYear: Field[int32]{Set: true, V: 2027}}
	if errs := in.validate(true, now); len(errs) != 0 {
		t.Fatalf("errs %v", errs)
	}
	if in.Name.V != "X" || !in.Ticker.Null {
		t.Fatalf("not normalized: %+v", in)
	}
	in = Input{FoundedYear: Field[int32]{Set: true, V: 2028}}
	if errs := in.validate(false, now); len(errs) != 1 || errs[0].Field != "founded_year" {
		t.Fatalf("errs %v", errs)
	}
	for _, c := range []struct {
		code string
		ok   bool
	}{{"US", true}, {"ZW", true}, {"AD", true}, {"us", false}, {"UK", false}, {"EU", false}, {"", false}, {" US", false}} {
		if ValidCountry(c.code) != c.ok {
			t.Errorf("ValidCountry(%q) = %v", c.code, !c.ok)
		}
	}
	if got := likePattern(`50%_\x`); got != `%50\%\_\\x%` {
		t.Fatalf("likePattern: %s", got)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(Cursor{Filter: "abc", Name: "n", ID: "0e2f1c9a-8a53-4c49-9a1c-1a2b3c4d5e6f"}))
	f.Add("")
	f.Add("eyJ2IjoxfQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			return
		}
		if !web.ValidUUID(c.ID) || c.Name == "" {
			t.Fatalf("accepted invalid cursor %+v", c)
		}
		again, err := DecodeCursor(EncodeCursor(c))
		if err != nil || again != c {
			t.Fatalf("re-encode: %+v %v", again, err)
		}
	})
}

func FuzzParseList(f *testing.F) {
	f.Add("limit=10&country=de&sector=Energy&q=apple")
	f.Add("cursor=abc&limit=-1")
	f.Add("q=%27%20OR%201%3D1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := ParseList(q)
		if err != nil {
			return
		}
		if p.Limit < 1 || p.Limit > MaxLimit || (p.Country != "" && !ValidCountry(p.Country)) {
			t.Fatalf("accepted %+v from %q", p, raw)
		}
	})
}
