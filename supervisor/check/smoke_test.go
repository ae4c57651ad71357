package check

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/api/apitest"
	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/companies"
	"github.com/corpintel/corpintel/api/users"
	"github.com/corpintel/corpintel/api/web"
)

// realAPI runs the platform API's auth, users and companies modules against real
// PostgreSQL, Redis and MinIO (api/apitest), with real logins.
func realAPI(t *testing.T) *apitest.Server {
	t.Helper()
	var svc *auth.Service
	s := apitest.New(t, func(d app.Deps) []web.Module {
		return []web.Module{svc, users.New(d), companies.New(d)}
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
	return s
}

func TestSmokeAgainstTheRealAPI(t *testing.T) {
	srv := realAPI(t)
	ctx := context.Background()
	if _, err := users.CreateAdmin(ctx, srv.Deps.Pool, "admin@example.com", "Admin", []byte("admin password 123")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "check-account.json")
	o := SetupOptions{API: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "admin password 123", File: file}
	acct, err := SetupAccount(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("account file: %v %v", st, err)
	}
	var role string
	if err := srv.Deps.Pool.QueryRow(ctx, `SELECT role FROM users WHERE email = $1`, acct.Email).Scan(&role); err != nil || role != "analyst" {
		t.Errorf("check account role %q %v (want analyst: no admin rights for a check)", role, err)
	}
	// A second setup keeps the working account.
	again, err := SetupAccount(ctx, o)
	if err != nil || again != acct {
		t.Errorf("second setup: %+v %v", again, err)
	}

	api := &apiClient{base: srv.URL, hc: srv.HTTP.Client()}
	if step, err := smoke(ctx, api, acct); err != nil {
		t.Fatalf("smoke failed at %s: %v", step, err)
	}
	var n int
	if err := srv.Deps.Pool.QueryRow(ctx, `SELECT count(*) FROM companies WHERE name LIKE 'corpintel check %'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the smoke test left %d companies (%v)", n, err)
	}
	if step, err := smoke(ctx, &apiClient{base: srv.URL, hc: srv.HTTP.Client()}, Account{Email: acct.Email, Password: "wrong password 1"}); step != "login" || err == nil {
		t.Errorf("wrong password: step %q err %v", step, err)
	}

	// Through Post: the loopback URL is the config's listen address.
	cfg := testConfig(t, "dev")
	cfg.Listen = strings.TrimPrefix(srv.URL, "http://")
	po := PostOptions{Config: cfg, Supervisor: fakeSupervisor{routes: map[string]string{"/v1/status": `{"supervisor":true,` + healthyServices + `}`}},
		AccountFile: file, Now: clock}
	if res, _ := Post(ctx, po).Find("api smoke test"); res.Status != OK {
		t.Errorf("post smoke: %+v", res)
	}
	// A check account whose password changed fails with the way out.
	b, _ := json.Marshal(Account{Email: acct.Email, Password: "changed password 1"})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, _ := Post(ctx, po).Find("api smoke test"); res.Status != Fail || !strings.Contains(res.Fix, "--setup-account") {
		t.Errorf("stale account: %+v", res)
	}
	if os.Geteuid() != 0 { // root reads any file
		_ = os.Chmod(file, 0)
		if res, _ := Post(ctx, po).Find("api smoke test"); res.Status != Warn || !strings.Contains(res.Fix, "as root") {
			t.Errorf("unreadable account: %+v", res)
		}
	}
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, _ := Post(ctx, po).Find("api smoke test"); res.Status != Fail {
		t.Errorf("broken account file: %+v", res)
	}
	// Setup with a wrong admin password, or an account name taken by another user.
	if _, err := SetupAccount(ctx, SetupOptions{API: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "nope nope nope", File: filepath.Join(t.TempDir(), "a")}); err == nil {
		t.Error("setup with a wrong admin password")
	}
	if _, err := SetupAccount(ctx, SetupOptions{API: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "admin password 123", Email: acct.Email, File: filepath.Join(t.TempDir(), "b")}); err == nil || !strings.Contains(err.Error(), "exist") {
		t.Errorf("setup over an existing user: %v", err)
	}
}
