package auth_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
)

// TestThroughProductionHandler runs login, /auth/me, user management and logout through
// the API's real handler (server.New: middleware, audit recorder, error handler).
func TestThroughProductionHandler(t *testing.T) {
	var svc *auth.Service
	s := apitest.New(t, func(d app.Deps) []web.Module {
		return []web.Module{svc, users.New(d)}
	}, apitest.WithAuthenticator(func(d app.Deps) web.Authenticator {
		var err error
		if svc, err = auth.New(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		return svc
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const pw = "production handler password"
	if _, err := users.CreateAdmin(ctx, s.Deps.Pool, "admin@example.com", "Admin", []byte(pw)); err != nil {
		t.Fatal(err)
	}
	if r := s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "wrong password"}); r.Code != http.StatusUnauthorized {
		t.Fatalf("bad login: %d %s", r.Code, r.Body)
	}
	r := s.Do(http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": pw})
	if r.Code != http.StatusOK {
		t.Fatalf("login: %d %s", r.Code, r.Body)
	}
	var tr auth.TokenResponse
	r.JSON(t, &tr)
	if r := s.Do(http.MethodGet, "/api/v1/auth/me", tr.AccessToken, nil); r.Code != http.StatusOK {
		t.Fatalf("me: %d %s", r.Code, r.Body)
	}
	r = s.Do(http.MethodPost, "/api/v1/users", tr.AccessToken, map[string]any{"email": "v@example.com", "name": "Vïewer", "role": "viewer", "password": "viewer password!"})
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	var ks auth.JWKS
	s.Do(http.MethodGet, "/api/v1/auth/jwks.json", "", nil).JSON(t, &ks)
	if len(ks.Keys) != 1 {
		t.Fatalf("jwks %+v", ks)
	}
	if r := s.Do(http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, nil); r.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Code, r.Body)
	}
	if r := s.Do(http.MethodGet, "/api/v1/auth/me", tr.AccessToken, nil); r.Code != http.StatusUnauthorized {
		t.Fatalf("me after logout: %d", r.Code)
	}

	// The durable audit trail has the auth events, with outcomes, and no secrets.
	got := map[string][]string{}
	for _, e := range s.Events(t) {
		got[e.Action] = append(got[e.Action], e.Outcome)
		if strings.Contains(string(e.Detail), pw) || strings.Contains(string(e.Detail), tr.RefreshToken) {
			t.Fatalf("audit detail leaks a secret: %s", e.Detail)
		}
		if e.Action == "auth.login" && !strings.Contains(string(e.Detail), "admin@example.com") {
			t.Fatalf("login audit without the email: %+v", e)
		}
	}
	for action, want := range map[string]string{"auth.login": "denied,success", "user.create": "success", "auth.logout": "success"} {
		outs := got[action]
		if strings.Join(slices.Sorted(slices.Values(outs)), ",") != want {
			t.Errorf("%s outcomes %v, want %s", action, outs, want)
		}
	}
}
