package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

func TestSealUnseal(t *testing.T) {
	kek := bytes.Repeat([]byte("k"), 32)
	_, priv, _ := ed25519.GenerateKey(nil)
	sealed, err := seal(kek, "kid-1", priv.Seed())
	if err != nil {
		t.Fatal(err)
	}
	got, err := unseal(kek, "kid-1", sealed)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("unseal: %v", err)
	}
	if _, err := unseal(bytes.Repeat([]byte("x"), 32), "kid-1", sealed); err == nil || !strings.Contains(err.Error(), "wrong jwt_kek") {
		t.Fatalf("wrong KEK: %v", err)
	}
	if _, err := unseal(kek, "kid-2", sealed); err == nil {
		t.Fatal("a sealed key moved to another kid must not open")
	}
	if _, err := unseal(kek, "kid-1", sealed[:5]); err == nil {
		t.Fatal("truncated seal opened")
	}
	if _, err := seal(kek[:31], "kid", priv.Seed()); !errors.Is(err, ErrKEK) {
		t.Fatalf("short KEK: %v", err)
	}
	short, _ := seal(kek, "kid-3", []byte("short"))
	if _, err := unseal(kek, "kid-3", short); err == nil {
		t.Fatal("bad seed length accepted")
	}
}

func TestTokenCache(t *testing.T) {
	now := time.Now()
	c := newTokenCache(10)
	p := func(user, jti string) *cacheEntry {
		return &cacheEntry{p: &web.Principal{UserID: user, TokenID: jti}, sid: "s-" + user, exp: now.Add(time.Minute)}
	}
	c.put("t1", p("u1", "j1"), c.generation(), now)
	c.put("t2", p("u2", "j2"), c.generation(), now)
	if got, ok := c.get("t1", now); !ok || got.UserID != "u1" {
		t.Fatal("miss")
	}
	if _, ok := c.get("t1", now.Add(2*time.Minute)); ok {
		t.Fatal("expired entry served")
	}
	// A verification that started before an eviction must not insert.
	gen := c.generation()
	c.evict(func(e *cacheEntry) bool { return e.p.UserID == "u2" })
	c.put("t3", p("u3", "j3"), gen, now)
	if _, ok := c.get("t3", now); ok {
		t.Fatal("stale put after eviction")
	}
	if _, ok := c.get("t2", now); ok {
		t.Fatal("evicted entry served")
	}
	// Bounded size.
	for i := range 50 {
		c.put(strings.Repeat("x", i+1), p("u", "j"), c.generation(), now)
	}
	if c.len() > 10 {
		t.Fatalf("cache grew to %d", c.len())
	}
	c.clear()
	if c.len() != 0 {
		t.Fatal("clear")
	}
}

func TestValidUUID(t *testing.T) {
	for s, want := range map[string]bool{
		newUUID():                              true,
		"00000000-0000-4000-8000-00000000000A": true,
		"00000000-0000-4000-8000-00000000000g": false,
		"00000000x0000-4000-8000-000000000000": false,
		"' OR 1=1":                             false,
		"":                                     false,
	} {
		if web.ValidUUID(s) != want {
			t.Errorf("web.ValidUUID(%q) = %v", s, !want)
		}
	}
}

func TestDecoders(t *testing.T) {
	if _, err := DecodeLogin(strings.NewReader(`{"email":"a@b.c","password":"pw"}`)); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{``, `{}`, `{"email":"a@b.c"}`, `{"email":"a@b.c","password":"pw"} {}`, `[]`} {
		if _, err := DecodeLogin(strings.NewReader(body)); err == nil {
			t.Errorf("DecodeLogin(%q) accepted", body)
		}
	}
	tok, _ := newRefreshToken()
	if _, err := DecodeRefresh(strings.NewReader(`{"refresh_token":"` + tok + `"}`)); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"refresh_token":"abc"}`, `{"refresh_token":"` + tok + `=="}`, `{"refresh_token":1}`} {
		if _, err := DecodeRefresh(strings.NewReader(body)); err == nil {
			t.Errorf("DecodeRefresh(%q) accepted", body)
		}
	}
}

func FuzzDecodeLogin(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.c","password":"pw"}`, `{"email":"\u0000","password":""}`, `{`, `{"email":1}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeLogin(bytes.NewReader(b))
		if err == nil && (req.Email == "" || req.Password == "" || len(req.Password) > 1024) {
			t.Fatalf("accepted invalid %+v", req)
		}
		var p *web.Problem
		if err != nil && !errors.As(err, &p) {
			t.Fatalf("non-problem error %v", err)
		}
	})
}

func FuzzDecodeRefresh(f *testing.F) {
	tok, _ := newRefreshToken()
	for _, s := range []string{`{"refresh_token":"` + tok + `"}`, `{"refresh_token":""}`, `{}`, `[`, `{"refresh_token":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRefresh(bytes.NewReader(b))
		if err == nil && len(req.RefreshToken) != 43 {
			t.Fatalf("accepted invalid %+v", req)
		}
		var p *web.Problem
		if err != nil && !errors.As(err, &p) {
			t.Fatalf("non-problem error %v", err)
		}
	})
}
