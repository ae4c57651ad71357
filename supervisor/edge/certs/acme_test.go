package certs

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// acmeEnv is a Manager in ACME mode against a private Pebble, behind real listeners on
// the ports Pebble's VA validates.
type acmeEnv struct {
	pb    *testenv.Pebble
	clock *fakeClock
	dir   string
	cfg   Config
	*edge
}

func newACMEEnv(t *testing.T, pb *testenv.Pebble, dir string, clock *fakeClock, mutate func(*Config)) *acmeEnv {
	t.Helper()
	cfg := Config{
		Mode:      ModeACME,
		Names:     []string{"edge.corpintel.test"},
		StateDir:  dir,
		HTTPPort:  pb.HTTPPort,
		HTTPSPort: pb.TLSPort,
		ACME: ACMEConfig{
			DirectoryURL: pb.DirectoryURL,
			Email:        "ops@corpintel.test",
			DNSServer:    pb.DNSAddr,
			RetryMin:     time.Minute,
			RetryMax:     time.Hour,
			OrderTimeout: time.Minute,
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	m, err := New(cfg, Deps{Clock: clock, Registerer: reg, HTTPClient: pb.HTTPClient()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return &acmeEnv{pb: pb, clock: clock, dir: dir, cfg: cfg, edge: startEdge(t, m, reg, pb.HTTPPort, pb.TLSPort)}
}

// restart closes the Manager and its listeners and starts a new one on the same state
// dir and ports, like a supervisor restart.
func (e *acmeEnv) restart(t *testing.T) *acmeEnv {
	t.Helper()
	e.edge.stop()
	_ = e.m.Close()
	return newACMEEnv(t, e.pb, e.dir, e.clock, func(c *Config) { *c = e.cfg })
}

func verifyChain(t *testing.T, leaf *x509.Certificate, roots *x509.CertPool, inter [][]byte, name string) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, der := range inter {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, DNSName: name}); err != nil {
		t.Fatalf("issued certificate does not verify against the Pebble root for %s: %v", name, err)
	}
}

func TestACMEIssuance(t *testing.T) {
	for _, challenge := range []string{ChallengeHTTP01, ChallengeTLSALPN01} {
		t.Run(challenge, func(t *testing.T) {
			pb := testenv.StartPebble(t, testenv.PebbleOptions{})
			clock := newFakeClock(time.Now())
			env := newACMEEnv(t, pb, t.TempDir(), clock, func(c *Config) {
				c.Names = []string{"edge.corpintel.test", "www.corpintel.test"}
				c.ACME.Challenges = []string{challenge}
			})
			// Before the first certificate: a clean handshake failure, no panic.
			if _, err := handshake(t, env.tlsAddr, "edge.corpintel.test", nil); err == nil {
				t.Fatal("handshake succeeded before any certificate was issued")
			}
			env.m.maintain(context.Background())

			roots := pb.Roots(t)
			for _, name := range []string{"edge.corpintel.test", "www.corpintel.test"} {
				st := statusOf(t, env.m, name)
				if st.LastError != "" || st.Serial == "" {
					t.Fatalf("%s not issued: %+v", name, st)
				}
				leaf := mustHandshake(t, env.tlsAddr, name, nil)
				if leaf.NotAfter.IsZero() || serialHex(leaf) != st.Serial {
					t.Fatalf("served %s serial %s, status says %s", name, serialHex(leaf), st.Serial)
				}
				c, err := env.m.GetCertificate(helloFor(name))
				if err != nil {
					t.Fatal(err)
				}
				verifyChain(t, c.Leaf, roots, c.Certificate[1:], name)
				if c.Leaf.PublicKeyAlgorithm != x509.ECDSA {
					t.Fatalf("key algorithm %v, want ECDSA P-256", c.Leaf.PublicKeyAlgorithm)
				}
				if got := counterValue(t, env.reg, MetricRenewals, name); got != 1 {
					t.Fatalf("%s{name=%s} = %v, want 1", MetricRenewals, name, got)
				}
			}
			// No challenge answers stay behind.
			if len(env.m.chal.http01) != 0 || len(env.m.chal.alpn) != 0 {
				t.Fatalf("challenge answers left: %d http-01, %d tls-alpn-01", len(env.m.chal.http01), len(env.m.chal.alpn))
			}
			assertPrivateFiles(t, env.dir)
		})
	}
}

// assertPrivateFiles checks that every file in the state dir is 0600 and no temp file
// is left.
func assertPrivateFiles(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no files in %s", dir)
	}
}

func TestACMERenewalAndRestart(t *testing.T) {
	pb := testenv.StartPebble(t, testenv.PebbleOptions{CertValidity: time.Hour})
	clock := newFakeClock(time.Now())
	env := newACMEEnv(t, pb, t.TempDir(), clock, nil)
	name := "edge.corpintel.test"
	env.m.maintain(context.Background())
	first := statusOf(t, env.m, name)
	if first.Serial == "" {
		t.Fatalf("not issued: %+v", first)
	}
	wantRenew := first.NotAfter.Add(-first.NotAfter.Sub(first.NotBefore) / 3)
	if !first.RenewAt.Equal(wantRenew) || !first.NextAttempt.Equal(wantRenew) {
		t.Fatalf("renew at %s / next attempt %s, want %s (a third of the lifetime left)", first.RenewAt, first.NextAttempt, wantRenew)
	}
	account := env.m.Status().Account
	if account == "" {
		t.Fatal("no account URI in status")
	}

	// Restart before renewal is due: the cached account and certificate are used, no
	// order is placed (the renewal counter stays at zero and the serial is the same).
	env = env.restart(t)
	if got := mustHandshake(t, env.tlsAddr, name, nil); serialHex(got) != first.Serial {
		t.Fatalf("after restart served serial %s, want cached %s", serialHex(got), first.Serial)
	}
	env.m.maintain(context.Background())
	if st := statusOf(t, env.m, name); st.Serial != first.Serial || !st.LastAttempt.IsZero() {
		t.Fatalf("restart placed an order: %+v", st)
	}
	if got := counterValue(t, env.reg, MetricRenewals, name); got != 0 {
		t.Fatalf("renewals after restart = %v, want 0", got)
	}
	if env.m.Status().Account != account {
		t.Fatalf("account changed across restart: %s → %s", account, env.m.Status().Account)
	}

	// 41 minutes later less than a third of the hour is left: Run renews.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.m.Run(ctx) }()
	eventually(t, 10*time.Second, "Run waiting on the clock", func() bool { return clock.pendingWaiters() > 0 })
	clock.Advance(41 * time.Minute)
	eventually(t, time.Minute, "renewal", func() bool {
		return counterValue(t, env.reg, MetricRenewals, name) == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	renewed := statusOf(t, env.m, name)
	if renewed.Serial == first.Serial || renewed.LastError != "" {
		t.Fatalf("not renewed: %+v", renewed)
	}
	if got := mustHandshake(t, env.tlsAddr, name, nil); serialHex(got) != renewed.Serial {
		t.Fatalf("serving %s after renewal, want %s", serialHex(got), renewed.Serial)
	}
	if env.m.Status().Account != account {
		t.Fatal("renewal registered a new account")
	}
}

func TestACMEOutage(t *testing.T) {
	pb := testenv.StartPebble(t, testenv.PebbleOptions{CertValidity: time.Hour})
	name := "edge.corpintel.test"
	clock := newFakeClock(time.Now())

	// The CA is down at start: the attempt fails naming the cause, backs off, and the
	// handshake fails cleanly meanwhile.
	pb.Stop(t)
	env := newACMEEnv(t, pb, t.TempDir(), clock, nil)
	env.m.maintain(context.Background())
	st := statusOf(t, env.m, name)
	if st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, "connection refused") ||
		!strings.Contains(st.LastError, "unreachable") || !strings.Contains(st.LastError, pb.DirectoryURL) {
		t.Fatalf("outage at start not reported with its cause: %+v", st)
	}
	if got := counterValue(t, env.reg, MetricRenewalFailures, name); got != 1 {
		t.Fatalf("failures = %v, want 1", got)
	}
	if want := clock.Now().Add(time.Minute); !st.NextAttempt.Equal(want) {
		t.Fatalf("next attempt %s, want %s (RetryMin)", st.NextAttempt, want)
	}
	if _, err := handshake(t, env.tlsAddr, name, nil); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}
	// Backoff doubles: the second failure waits 2 min.
	clock.Advance(time.Minute)
	env.m.maintain(context.Background())
	if st = statusOf(t, env.m, name); st.ConsecutiveFailures != 2 || !st.NextAttempt.Equal(clock.Now().Add(2*time.Minute)) {
		t.Fatalf("second failure: %+v", st)
	}
	// Not yet due: nothing happens.
	clock.Advance(time.Minute)
	env.m.maintain(context.Background())
	if statusOf(t, env.m, name).ConsecutiveFailures != 2 {
		t.Fatal("attempted before the backoff ended")
	}

	// The CA comes back: the next attempt succeeds.
	pb.Start(t)
	clock.Advance(time.Minute)
	env.m.maintain(context.Background())
	st = statusOf(t, env.m, name)
	if st.Serial == "" || st.LastError != "" || st.ConsecutiveFailures != 0 {
		t.Fatalf("not issued after the CA came back: %+v", st)
	}
	serial := st.Serial

	// Outage at renewal: the valid certificate keeps being served, the error is visible.
	pb.Stop(t)
	clock.Advance(41 * time.Minute)
	env.m.maintain(context.Background())
	st = statusOf(t, env.m, name)
	if st.Serial != serial || st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, "connection refused") {
		t.Fatalf("outage at renewal: %+v", st)
	}
	if got := mustHandshake(t, env.tlsAddr, name, nil); serialHex(got) != serial {
		t.Fatalf("serving %s during the outage, want the valid %s", serialHex(got), serial)
	}
	if got := counterValue(t, env.reg, MetricRenewalFailures, name); got != 3 {
		t.Fatalf("failures = %v, want 3 (two at start, one at renewal)", got)
	}

	// The restarted CA lost every account (Pebble keeps state in memory): the Manager
	// registers again and renews.
	pb.Start(t)
	oldAccount := env.m.Status().Account
	clock.Advance(time.Minute)
	env.m.maintain(context.Background())
	st = statusOf(t, env.m, name)
	if st.Serial == serial || st.LastError != "" {
		t.Fatalf("not renewed after the CA came back: %+v", st)
	}
	if env.m.Status().Account == oldAccount {
		t.Fatal("account not registered again at the restarted CA")
	}
}

func TestACMEFailedOrderLimit(t *testing.T) {
	pb := testenv.StartPebble(t, testenv.PebbleOptions{})
	clock := newFakeClock(time.Now())
	dir := t.TempDir()
	name := "edge.corpintel.test"
	// Only HTTP-01, and nothing listens where the VA connects: validation fails.
	env := newACMEEnv(t, pb, dir, clock, func(c *Config) {
		c.ACME.Challenges = []string{ChallengeHTTP01}
		c.ACME.FailedOrderInterval = time.Hour
	})
	env.edge.stop()
	env.m.maintain(context.Background())
	st := statusOf(t, env.m, name)
	if st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, "http-01 validation of "+name+" failed") ||
		!strings.Contains(st.LastError, "could not validate") {
		t.Fatalf("failed validation not reported: %+v", st)
	}
	if !st.NextAttempt.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("next order at %s, want an hour later", st.NextAttempt)
	}
	// Backoff alone would retry after 1 min; the failed-order limit holds it off.
	clock.Advance(30 * time.Minute)
	env.m.maintain(context.Background())
	env.m.Wake()
	env.m.maintain(context.Background())
	if statusOf(t, env.m, name).ConsecutiveFailures != 1 {
		t.Fatal("a second order within the hour")
	}
	// The limit survives a restart (a crash-looping supervisor must not burn it).
	_ = env.m.Close()
	reg := prometheus.NewRegistry()
	m2, err := New(env.cfg, Deps{Clock: clock, Registerer: reg, HTTPClient: pb.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if st := statusOf(t, m2, name); st.NextAttempt.Before(clock.Now().Add(30 * time.Minute)) {
		t.Fatalf("after restart next attempt %s, want ≥ %s", st.NextAttempt, clock.Now().Add(30*time.Minute))
	}
	m2.maintain(context.Background())
	if got := counterValue(t, reg, MetricRenewalFailures, name); got != 0 {
		t.Fatal("restart placed an order within the hour")
	}
}

func TestACMEExternalAccountBinding(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString([]byte("a-32-byte-hmac-key-for-the-tests"))
	pb := testenv.StartPebble(t, testenv.PebbleOptions{EABKeys: map[string]string{"kid-1": key}})
	name := "edge.corpintel.test"

	// Without EAB the CA refuses, and the error says what to do.
	env := newACMEEnv(t, pb, t.TempDir(), newFakeClock(time.Now()), nil)
	env.m.maintain(context.Background())
	if st := statusOf(t, env.m, name); !strings.Contains(st.LastError, "external account binding") {
		t.Fatalf("missing EAB not explained: %+v", st)
	}
	env.edge.stop()
	_ = env.m.Close()

	env = newACMEEnv(t, pb, t.TempDir(), newFakeClock(time.Now()), func(c *Config) {
		c.ACME.EAB = &EAB{KeyID: "kid-1", HMACKey: key}
	})
	env.m.maintain(context.Background())
	if st := statusOf(t, env.m, name); st.Serial == "" || st.LastError != "" {
		t.Fatalf("EAB account not issued: %+v", st)
	}
	b, err := os.ReadFile(filepath.Join(env.m.acme.dir, "account.json"))
	if err != nil || strings.Contains(string(b), key) {
		t.Fatalf("account.json: %v (must not hold the MAC key): %s", err, b)
	}
}
