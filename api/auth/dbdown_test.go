package auth_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDatabaseDown checks that losing PostgreSQL fails closed: errors (500), never a
// token accepted or issued on stale state.
func TestDatabaseDown(t *testing.T) {
	base := authtest.NewServer(t)
	tok, u := base.Token(rbac.Viewer)
	tr := base.Login(u)

	pool, err := pgxpool.NewWithConfig(context.Background(), base.Pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := authtest.NewReplica(t, pool, func(o *auth.Options) { o.Registerer = reg })
	pool.Close()
	ctx := context.Background()

	_, err = s.Auth.Authenticate(ctx, tok)
	var p *web.Problem
	if err == nil || errors.As(err, &p) {
		t.Fatalf("Authenticate with the database down: %v (want a server error)", err)
	}
	if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusInternalServerError {
		t.Fatalf("me: %d", r.Code)
	}
	for name, body := range map[string]any{
		login:   map[string]string{"email": u.Email, "password": u.Password},
		refresh: map[string]string{"refresh_token": tr.RefreshToken},
	} {
		if r := s.Do(http.MethodPost, name, "", body); r.Code != http.StatusInternalServerError {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
	if err := s.Auth.MaintainOnce(ctx, time.Hour); err == nil {
		t.Error("MaintainOnce: no error")
	}
	if _, err := s.Auth.IssueSession(ctx, u.ID); err == nil {
		t.Error("IssueSession: no error")
	}
	if _, err := auth.RotateKeys(ctx, pool, authtest.KEK, time.Now()); err == nil {
		t.Error("RotateKeys: no error")
	}
	// The rotation loop reports failures as a metric and stops with its context.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Auth.RunRotation(rctx, time.Hour) }()
	authtest.Eventually(t, 10*time.Second, "maintenance failure counted", func() bool {
		return counterValue(t, reg, "corpintel_api_auth_key_maintenance_errors_total") >= 1
	})
	cancel()
	<-done
	// The listener keeps retrying without a database and stops with its context.
	lctx, lcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer lcancel()
	s.Auth.Listen(lctx)
	if s.Auth.Listening() {
		t.Fatal("listening without a database")
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	return 0
}
