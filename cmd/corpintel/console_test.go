package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/console"
	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker/dockertest"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/corpintel/corpintel/supervisor/edge/certs"
	"github.com/corpintel/corpintel/supervisor/health"
	"github.com/corpintel/corpintel/supervisor/state"
)

func init() {
	// Cheap hashing for the tests of this package (the e2e binary keeps the default).
	hashParams = &password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// browserish is a cookie-keeping client that follows no redirects and remembers the
// last form's CSRF token.
type browserish struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

var formToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newBrowserish(t *testing.T, base string) *browserish {
	jar, _ := cookiejar.New(nil)
	return &browserish{t: t, base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserish) do(method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", b.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if m := formToken.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	return res.StatusCode, string(raw), res.Header.Get("Location")
}

// The console on a real daemon (over the in-memory engine) and the real state store,
// wired as cmd/corpintel wires it: first login with the generated password, the
// forced change, the overview, a scale through the daemon's operation, the audit log
// verified and tampered with through the CLI, and root's reset.
func TestConsoleWiredToTheDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "corpintel.toml")
	listen := freeTCP(t)
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("profile = \"dev\"\nproject = \"cw\"\nlisten = %q\nsocket = %q\nstate_dir = %q\n[edge]\nhttps = \"\"\nhttp = \"\"\n",
		listen, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := (&configFlags{path: cfgPath}).load(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(ctx, cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	eng := dockertest.New(t)
	for _, svc := range stack.Services {
		res, _ := cfg.ServiceResources(svc)
		eng.Images[res.Image] = "sha256:" + svc
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	cons, err := newConsoleSetup(ctx, cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	if !cons.first.Created || !strings.Contains(logBuf.String(), "first admin created") || strings.Contains(logBuf.String(), cons.first.Password) {
		t.Fatalf("first admin: %+v; log: %s", cons.first, logBuf.String())
	}
	ready := make(chan supervisor.Endpoints, 1)
	d, err := supervisor.New(supervisor.Options{Config: cfg, Engine: eng, Store: store, Log: log, Admin: cons.console, Resync: 200 * time.Millisecond,
		Ready: func(ep supervisor.Endpoints) { ready <- ep }})
	if err != nil {
		t.Fatal(err)
	}
	cons.ops.d = d
	go cons.console.Run(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var ep supervisor.Endpoints
	select {
	case ep = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("supervisor not ready")
	}
	var out bytes.Buffer
	cons.printConsole(&out, ep)
	if want := "Console: " + ep.API + "/admin/\n  first login: user admin, one-time password in " + cons.first.File; !strings.HasPrefix(out.String(), want) || strings.Contains(out.String(), cons.first.Password) {
		t.Fatalf("printed %q, want %q and no password (not a terminal)", out.String(), want)
	}

	b := newBrowserish(t, ep.API)
	b.do("GET", "/admin/login", nil)
	if code, _, loc := b.do("POST", "/admin/login", url.Values{"name": {"admin"}, "password": {cons.first.Password}}); code != 303 || loc != "/admin/account/password" {
		t.Fatalf("first login: %d %q", code, loc)
	}
	b.do("GET", "/admin/account/password", nil)
	if code, body, loc := b.do("POST", "/admin/account/password", url.Values{"current": {cons.first.Password}, "new": {"a long and new password"}, "confirm": {"a long and new password"}}); code != 303 {
		t.Fatalf("change: %d %q %s", code, loc, body)
	}
	if _, err := os.Stat(cons.first.File); !os.IsNotExist(err) {
		t.Fatalf("generated password file kept: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ := b.do("GET", "/admin/", nil)
		if code == 200 && strings.Contains(body, "All clear") && strings.Contains(body, "1/1 healthy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("overview never all clear: %d\n%s", code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	b.do("GET", "/admin/services/api/scale?replicas=2", nil)
	code, _, loc := b.do("POST", "/admin/services/api/scale", url.Values{"replicas": {"2"}})
	if code != 303 || !strings.HasPrefix(loc, "/admin/actions/") {
		t.Fatalf("scale: %d %q", code, loc)
	}
	for {
		_, body, _ := b.do("GET", loc, nil)
		if strings.Contains(body, "<h2 id=\"progress-h\">Done</h2>") {
			break
		}
		if strings.Contains(body, "Failed") || time.Now().After(deadline.Add(20*time.Second)) {
			t.Fatalf("scale action:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	if n, ok, _ := store.Scale(ctx, "api"); !ok || n != 2 {
		t.Fatalf("stored scale %d %v", n, ok)
	}
	_, logs, _ := b.do("GET", "/admin/services/api/logs", nil)
	if !strings.Contains(logs, "log line of cw-api-1") {
		t.Fatalf("logs page:\n%.2000s", logs)
	}

	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"audit", "verify", "--config", cfgPath}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "audit log intact:") {
		t.Fatalf("audit verify: %d %s %s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run(ctx, []string{"console", "reset-password", "admin", "--config", cfgPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("reset-password: %d %s", code, stderr.String())
	}
	pw := regexp.MustCompile(`New one-time password for admin: (\S+)`).FindStringSubmatch(stdout.String())
	if pw == nil {
		t.Fatalf("reset printed %q", stdout.String())
	}
	if code, _, _ := b.do("GET", "/admin/", nil); code != 303 {
		t.Fatalf("the reset did not end the session: %d", code)
	}
	b.do("GET", "/admin/login", nil)
	if code, _, loc := b.do("POST", "/admin/login", url.Values{"name": {"admin"}, "password": {pw[1]}}); code != 303 || loc != "/admin/account/password" {
		t.Fatalf("login after reset: %d %q", code, loc)
	}
	if code := run(ctx, []string{"console", "reset-password", "nobody", "--config", cfgPath}, &stdout, &stderr); code != 1 {
		t.Fatalf("reset of nobody: %d", code)
	}
	if code := run(ctx, []string{"console", "reset-password", "--config", cfgPath}, &stdout, &stderr); code != 2 {
		t.Fatalf("reset without a user: %d", code)
	}
	for _, args := range [][]string{{"console"}, {"audit"}} {
		if code := run(ctx, args, &stdout, &stderr); code != 2 {
			t.Fatalf("%v: %d", args, code)
		}
	}

	// Tampering is found by the CLI (and reported at the next start).
	for _, q := range []string{`DROP TRIGGER console_audit_no_update`, `UPDATE console_audit SET actor = 'eve' WHERE seq = 1`} {
		if _, err := store.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	stderr.Reset()
	if code := run(ctx, []string{"audit", "verify", "--config", cfgPath}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "audit log tampered with at entry #1") {
		t.Fatalf("tampered: %d %s", code, stderr.String())
	}
	logBuf.Reset()
	if _, err := newConsoleSetup(ctx, cfg, store, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logBuf.String(), "tampered") {
		t.Fatalf("start did not report the tampering: %s", logBuf.String())
	}
}

// The adapter maps the state store's errors onto the console's and converts every
// type field for field.
func TestConsoleStoreAdapter(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var s console.Store = consoleStore{st}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	u, err := s.CreateUser(ctx, console.User{Name: "ada", Role: "admin", PasswordHash: "h", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, console.User{Name: "ada", Role: "admin", PasswordHash: "h"}); !errors.Is(err, console.ErrExists) {
		t.Fatalf("exists: %v", err)
	}
	for _, err := range []error{
		func() error { _, err := s.UserByName(ctx, "x"); return err }(),
		func() error { _, err := s.UserByID(ctx, 99); return err }(),
		func() error { _, err := s.Session(ctx, "x"); return err }(),
		func() error { _, err := s.InviteByToken(ctx, "x"); return err }(),
		s.UpdateUser(ctx, console.User{ID: 99, Role: "viewer"}),
		s.UpdateSession(ctx, console.Session{IDHash: "x"}),
		s.RevokeInvite(ctx, 99),
	} {
		if !errors.Is(err, console.ErrNotFound) {
			t.Errorf("want ErrNotFound, got %v", err)
		}
	}
	if n, _ := s.UserCount(ctx); n != 1 {
		t.Fatal(n)
	}
	if list, _ := s.Users(ctx); len(list) != 1 || list[0].ID != u.ID {
		t.Fatal(list)
	}
	if ok, _ := s.AcceptTOTPStep(ctx, u.ID, 5); !ok {
		t.Fatal("totp step")
	}
	_ = s.SetRecoveryCodes(ctx, u.ID, []string{"a"})
	if ok, _ := s.UseRecoveryCode(ctx, u.ID, "a"); !ok {
		t.Fatal("recovery code")
	}
	if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != 0 {
		t.Fatal(n)
	}
	sess := console.Session{IDHash: "h1", UserID: u.ID, Stage: "full", CSRF: "c", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), ReauthAt: now}
	if err := s.RotateSession(ctx, "", sess); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Session(ctx, "h1"); got != sess {
		t.Fatalf("session round trip: %+v", got)
	}
	if list, _ := s.UserSessions(ctx, u.ID); len(list) != 1 {
		t.Fatal(list)
	}
	if n, _ := s.DeleteExpiredSessions(ctx, now.Add(2*time.Hour), now); n != 1 {
		t.Fatal(n)
	}
	_ = s.RotateSession(ctx, "", sess)
	if n, _ := s.DeleteUserSessions(ctx, u.ID, ""); n != 1 {
		t.Fatal(n)
	}
	_ = s.DeleteSession(ctx, "h1")
	inv, _ := s.CreateInvite(ctx, console.Invite{TokenHash: "t", Email: "b@x.org", Role: "viewer", CreatedBy: "ada", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if list, _ := s.Invites(ctx); len(list) != 1 || list[0].ID != inv.ID {
		t.Fatal(list)
	}
	if _, err := s.AcceptInvite(ctx, "t", now, console.User{Name: "ada", Role: "viewer", PasswordHash: "h"}); !errors.Is(err, console.ErrExists) {
		t.Fatalf("accept with a taken name: %v", err)
	}
	if b, err := s.AcceptInvite(ctx, "t", now, console.User{Name: "bob", Role: "viewer", PasswordHash: "h", Active: true}); err != nil || b.Name != "bob" {
		t.Fatal(b, err)
	}
	if _, err := s.AcceptInvite(ctx, "t", now, console.User{Name: "carl", Role: "viewer", PasswordHash: "h"}); !errors.Is(err, console.ErrNotFound) {
		t.Fatalf("second accept: %v", err)
	}
	if f, _ := s.RecordLoginFailure(ctx, "k", now, time.Minute); f.Count != 1 {
		t.Fatal(f)
	}
	if f, _ := s.LoginFailures(ctx, "k"); f.Count != 1 {
		t.Fatal(f)
	}
	_ = s.ClearLoginFailures(ctx, "k")
	e, err := s.AppendAudit(ctx, console.AuditEntry{Actor: "a", Action: "b", Outcome: "c"})
	if err != nil || e.Seq != 1 {
		t.Fatal(e, err)
	}
	if list, more, _ := s.AuditEntries(ctx, console.AuditQuery{}); len(list) != 1 || more {
		t.Fatal(list)
	}
	if c, _ := s.VerifyAudit(ctx); !c.OK() || c.Entries != 1 {
		t.Fatal(c)
	}
}

// Only a terminal sees the password itself.
func TestPrintConsole(t *testing.T) {
	cs := &consoleSetup{first: console.FirstAdmin{Name: "admin", Password: "abcd-efgh", File: "/var/lib/corpintel/p/console-admin-password"}}
	var out bytes.Buffer
	cs.printConsole(&out, supervisor.Endpoints{API: "http://127.0.0.1:8000", HTTPS: "https://localhost:443"})
	if !strings.Contains(out.String(), "Console: https://localhost:443/admin/ (also http://127.0.0.1:8000/admin/ on this machine)") ||
		strings.Contains(out.String(), "abcd-efgh") || !strings.Contains(out.String(), "one-time password in /var/lib/corpintel/p/console-admin-password") {
		t.Fatalf("printed %q", out.String())
	}
	out.Reset()
	cs.first.Password = ""
	cs.printConsole(&out, supervisor.Endpoints{API: "http://127.0.0.1:8000"})
	if out.String() != "Console: http://127.0.0.1:8000/admin/\n" {
		t.Fatalf("after the first change: %q", out.String())
	}
	var none *consoleSetup
	none.printConsole(&out, supervisor.Endpoints{}) // console off: nothing, no panic
	disabled := config.Default("dev")
	disabled.Console.Enabled = false
	if cs, err := newConsoleSetup(context.Background(), disabled, nil, nil); cs != nil || err != nil {
		t.Fatalf("disabled console: %v %v", cs, err)
	}
	if !strings.Contains(hostActor(), "(CLI)") {
		t.Fatal(hostActor())
	}
}

// The status as the console gets it: services and containers field for field, one
// certificate line for the names one certificate covers, renewal problems kept.
func TestConsoleStatus(t *testing.T) {
	exp := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	rep := health.StatusReport{Project: "p", Supervisor: true, Maintenance: "restore #2",
		Operation: &state.Operation{ID: 2, Kind: "restore", Steps: []state.OpStep{{Name: "swap volumes"}}},
		Services: []health.ServiceStatus{{Service: "api", Desired: 2, Running: 2, Healthy: 1, State: "degraded", Restarts: 3,
			Containers: []health.ContainerStatus{{Name: "p-api-1", ID: "abc", RestartCount: 3, MemoryBytes: 10}}}},
		TLSServed: []certs.ProbeResult{{Name: "vm", NotAfter: exp, Issuer: "CA"}, {Name: "localhost", NotAfter: exp, Issuer: "CA"}, {Name: "down", Error: "refused"}},
		TLS:       &certs.Status{Certificates: []certs.CertStatus{{Name: "vm", NotAfter: exp}, {Name: "other.example", LastError: "acme: rate limited"}}},
	}
	st := consoleStatus(rep)
	if st.Operation == nil || st.Operation.Name != "restore #2" || st.Operation.LastStep != "swap volumes" || st.Maintenance != "restore #2" {
		t.Fatalf("operation %+v", st.Operation)
	}
	if len(st.Services) != 1 || st.Services[0].Healthy != 1 || st.Services[0].Containers[0].Restarts != 3 {
		t.Fatalf("services %+v", st.Services)
	}
	if len(st.Certificates) != 2 || st.Certificates[0].Name != "vm, localhost" || st.Certificates[1].LastError != "acme: rate limited" {
		t.Fatalf("certificates %+v", st.Certificates)
	}
}
