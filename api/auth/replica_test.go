package auth_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/golang-jwt/jwt/v5"
)

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	tk, _, err := jwt.NewParser().ParseUnverified(tok, &auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tk.Header["kid"].(string)
	return kid
}

func TestRotation(t *testing.T) {
	a := authtest.NewServer(t)
	a.Listen()
	b := authtest.NewReplica(t, a.Pool) // a second replica on the same database
	b.Listen()
	u := a.CreateUser(rbac.Analyst)
	oldTok := a.Login(u).AccessToken
	oldKID := kidOf(t, oldTok)
	if b.Do(http.MethodGet, me, oldTok, nil).Code != http.StatusOK {
		t.Fatal("replica b rejects a token of replica a")
	}

	newKID, err := auth.RotateKeys(context.Background(), a.Pool, authtest.KEK, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if newKID == oldKID {
		t.Fatal("rotation kept the kid")
	}
	// Both replicas learn the new key through NOTIFY and sign with it.
	authtest.Eventually(t, 10*time.Second, "replicas switch to the new key", func() bool {
		return a.Auth.ActiveKID() == newKID && b.Auth.ActiveKID() == newKID
	})
	newTok := b.Login(u).AccessToken
	if kidOf(t, newTok) != newKID {
		t.Fatal("new tokens are not signed with the new key")
	}
	// Old tokens still verify (verify-only key); the JWKS lists both keys.
	for _, s := range []*authtest.Server{a, b} {
		for _, tok := range []string{oldTok, newTok} {
			if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusOK {
				t.Fatalf("after rotation: %d %s", r.Code, r.Body)
			}
		}
	}
	var ks auth.JWKS
	a.Do(http.MethodGet, jwks, "", nil).JSON(t, &ks)
	if len(ks.Keys) != 2 || ks.Keys[0].Kid != newKID || ks.Keys[1].Kid != oldKID {
		t.Fatalf("jwks after rotation: %+v", ks)
	}

	// Scheduled maintenance retires the old key once every token it signed has expired.
	a.Clock.Advance(auth.MaxAccessTTL + auth.Leeway + time.Minute)
	if err := a.Auth.MaintainOnce(context.Background(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Do(http.MethodGet, jwks, "", nil).JSON(t, &ks)
	if len(ks.Keys) != 1 || ks.Keys[0].Kid != newKID {
		t.Fatalf("jwks after retirement: %+v", ks)
	}
	var seal []byte
	if err := a.Pool.QueryRow(context.Background(), `SELECT private_seal FROM auth_signing_keys WHERE kid = $1`, oldKID).Scan(&seal); err != nil || seal != nil {
		t.Fatalf("retired key keeps its private half: %v %v", seal, err)
	}
	authtest.Eventually(t, 10*time.Second, "replica b drops the retired key", func() bool {
		var k auth.JWKS
		b.Do(http.MethodGet, jwks, "", nil).JSON(t, &k)
		return len(k.Keys) == 1
	})

	// MaintainOnce rotates when the active key is older than the period.
	a.Clock.Advance(48 * time.Hour)
	if err := a.Auth.MaintainOnce(context.Background(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if a.Auth.ActiveKID() == newKID {
		t.Fatal("scheduled rotation did not rotate")
	}
	// And not again right away.
	kid := a.Auth.ActiveKID()
	if err := a.Auth.MaintainOnce(context.Background(), 24*time.Hour); err != nil || a.Auth.ActiveKID() != kid {
		t.Fatalf("rotated twice: %v", err)
	}
}

func TestUnknownKIDReload(t *testing.T) {
	a := authtest.NewServer(t)
	b := authtest.NewReplica(t, a.Pool) // b does not listen: it learns keys on demand
	if _, err := auth.RotateKeys(context.Background(), a.Pool, authtest.KEK, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := authtest.NewReplica(t, a.Pool) // starts after the rotation: signs with the new key
	tok, _ := c.Token(rbac.Viewer)
	// b has never heard of c's kid, reloads once and accepts.
	if r := b.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusOK {
		t.Fatalf("unknown kid after rotation: %d %s", r.Code, r.Body)
	}
}

func TestRevocationReachesOtherReplicas(t *testing.T) {
	a := authtest.NewServer(t)
	a.Listen()
	b := authtest.NewReplica(t, a.Pool)
	b.Listen()
	u := a.CreateUser(rbac.Viewer)
	tr := a.Login(u)
	// Warm b's cache.
	for range 3 {
		if b.Do(http.MethodGet, me, tr.AccessToken, nil).Code != http.StatusOK {
			t.Fatal("b rejects a valid token")
		}
	}
	if b.Auth.CacheLen() == 0 {
		t.Fatal("b did not cache the verified token")
	}
	if r := a.Do(http.MethodPost, logout, tr.AccessToken, nil); r.Code != http.StatusNoContent {
		t.Fatalf("logout on a: %d", r.Code)
	}
	authtest.Eventually(t, 10*time.Second, "b evicts the revoked token", func() bool {
		return b.Do(http.MethodGet, me, tr.AccessToken, nil).Code == http.StatusUnauthorized
	})
}

func TestRevokedTokenSurvivesRedisFlush(t *testing.T) {
	rdb := testenv.Redis(t).Client(t)
	s := authtest.NewServer(t)
	s.Listen()
	u := s.CreateUser(rbac.Viewer)
	tr := s.Login(u)
	if s.Do(http.MethodGet, me, tr.AccessToken, nil).Code != http.StatusOK {
		t.Fatal("baseline")
	}
	if r := s.Do(http.MethodPost, logout, tr.AccessToken, nil); r.Code != http.StatusNoContent {
		t.Fatalf("logout: %d", r.Code)
	}
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	// A replica that never saw the token (empty cache) asks PostgreSQL, not Redis.
	fresh := authtest.NewReplica(t, s.Pool)
	for _, srv := range []*authtest.Server{s, fresh} {
		if r := srv.Do(http.MethodGet, me, tr.AccessToken, nil); r.Code != http.StatusUnauthorized {
			t.Fatalf("revoked token after FLUSHALL: %d", r.Code)
		}
		if r := srv.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken}); r.Code != http.StatusUnauthorized {
			t.Fatalf("revoked refresh token after FLUSHALL: %d", r.Code)
		}
	}
}

func TestListenerLossDisablesCache(t *testing.T) {
	s := authtest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Auth.Listen(ctx) }()
	authtest.Eventually(t, 10*time.Second, "listening", s.Auth.Listening)
	tok, _ := s.Token(rbac.Viewer)
	s.Do(http.MethodGet, me, tok, nil)
	if s.Auth.CacheLen() != 1 {
		t.Fatalf("cache len %d", s.Auth.CacheLen())
	}
	// Kill the listener's backend: the service reconnects and starts with an empty cache.
	if _, err := s.Pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	authtest.Eventually(t, 10*time.Second, "cache emptied", func() bool { return s.Auth.CacheLen() == 0 })
	authtest.Eventually(t, 10*time.Second, "reconnected", s.Auth.Listening)
	cancel()
	<-done
	if s.Auth.Listening() {
		t.Fatal("still listening after stop")
	}
	// Without the listener the cache is not used.
	s.Do(http.MethodGet, me, tok, nil)
	if s.Auth.CacheLen() != 0 {
		t.Fatal("cached a token while not listening")
	}
}

func TestUserChangesEndTokens(t *testing.T) {
	s := authtest.NewServer(t)
	s.Listen()
	admin, _ := s.Token(rbac.Admin)
	for name, change := range map[string]struct {
		method string
		body   any
	}{
		"demote":     {http.MethodPatch, map[string]any{"role": "viewer"}},
		"deactivate": {http.MethodPatch, map[string]any{"active": false}},
		"password":   {http.MethodPatch, map[string]any{"password": "a brand new password"}},
		"delete":     {http.MethodDelete, nil},
	} {
		t.Run(name, func(t *testing.T) {
			tok, u := s.Token(rbac.Analyst)
			if s.Do(http.MethodGet, me, tok, nil).Code != http.StatusOK {
				t.Fatal("baseline")
			}
			if r := s.Do(change.method, "/api/v1/users/"+u.ID, admin, change.body); r.Code/100 != 2 {
				t.Fatalf("change: %d %s", r.Code, r.Body)
			}
			if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusUnauthorized {
				t.Fatalf("token after %s: %d", name, r.Code)
			}
		})
	}
	// A rename does not end sessions.
	tok, u := s.Token(rbac.Analyst)
	s.Do(http.MethodGet, me, tok, nil)
	if r := s.Do(http.MethodPatch, "/api/v1/users/"+u.ID, admin, map[string]any{"name": "Renamed"}); r.Code != http.StatusOK {
		t.Fatalf("rename: %d", r.Code)
	}
	if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusOK {
		t.Fatalf("token after rename: %d", r.Code)
	}
}
