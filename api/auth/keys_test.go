package auth_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFirstStartCreatesOneKey(t *testing.T) {
	pool := authtest.Pool(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := auth.NewService(context.Background(), auth.Options{Pool: pool, Issuer: "i", Audience: "a", KEK: authtest.KEK})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM auth_signing_keys`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("keys after concurrent first start: %d %v", n, err)
	}
}

func TestServiceConfigErrors(t *testing.T) {
	pool := authtest.Pool(t)
	ctx := context.Background()
	for name, o := range map[string]auth.Options{
		"no pool":   {Issuer: "i", Audience: "a", KEK: authtest.KEK},
		"short kek": {Pool: pool, Issuer: "i", Audience: "a", KEK: []byte("short")},
		"no issuer": {Pool: pool, Audience: "a", KEK: authtest.KEK},
		"long ttl":  {Pool: pool, Issuer: "i", Audience: "a", KEK: authtest.KEK, AccessTTL: 2 * time.Hour},
	} {
		if _, err := auth.NewService(ctx, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := auth.RotateKeys(ctx, pool, []byte("short"), time.Now()); !errors.Is(err, auth.ErrKEK) {
		t.Fatalf("rotate with short KEK: %v", err)
	}
	// Keys sealed under one KEK do not open under another: a clear error, not garbage.
	if _, err := auth.NewService(ctx, auth.Options{Pool: pool, Issuer: "i", Audience: "a", KEK: authtest.KEK}); err != nil {
		t.Fatal(err)
	}
	_, err := auth.NewService(ctx, auth.Options{Pool: pool, Issuer: "i", Audience: "a", KEK: []byte("another-kek-another-kek-another-kek!")})
	if err == nil {
		t.Fatal("wrong KEK accepted")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := authtest.NewServer(t, func(o *auth.Options) { o.Registerer = reg })
	s.Listen()
	u := s.CreateUser(rbac.Viewer)
	tr := s.Login(u)
	s.Do(http.MethodPost, login, "", map[string]string{"email": u.Email, "password": "wrong password"})
	for range 3 {
		s.Do(http.MethodGet, me, tr.AccessToken, nil)
	}
	if n, err := testutil.GatherAndCount(reg, "corpintel_api_auth_logins_total"); err != nil || n != 2 {
		t.Fatalf("login series: %d %v", n, err)
	}
	// Three requests with one token: verified once, then answered from the cache.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "corpintel_api_auth_token_verifications_total" && mf.Metric[0].Counter.GetValue() != 1 {
			t.Fatalf("verifications %v", mf.Metric[0].Counter.GetValue())
		}
	}
}
