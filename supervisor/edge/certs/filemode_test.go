package certs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type fileEnv struct {
	ca       *testCA
	clock    *fakeClock
	certFile string
	keyFile  string
	prober   *Prober
	*edge
}

func newFileEnv(t *testing.T) *fileEnv {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t)
	env := &fileEnv{ca: ca, clock: newFakeClock(time.Now()),
		certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	certPEM, keyPEM, _ := ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}})
	writeFile(t, env.certFile, certPEM)
	writeFile(t, env.keyFile, keyPEM)
	reg := prometheus.NewRegistry()
	m, err := New(Config{
		Mode: ModeFile, Names: []string{"edge.corpintel.test"}, StateDir: filepath.Join(dir, "state"),
		File: FileConfig{CertFile: env.certFile, KeyFile: env.keyFile, PollInterval: 10 * time.Second},
	}, Deps{Clock: env.clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	env.edge = startEdge(t, m, reg, 0, 0)
	env.prober, err = NewProber(ProberConfig{Addr: env.tlsAddr, Names: []string{"edge.corpintel.test"}}, Deps{Clock: env.clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// poll lets the poll interval pass and runs one maintenance pass.
func (e *fileEnv) poll() {
	e.clock.Advance(10 * time.Second)
	e.m.maintain(context.Background())
}

func (e *fileEnv) servedExpiry(t *testing.T) time.Time {
	t.Helper()
	res := e.prober.Probe(context.Background())
	if res[0].Error != "" {
		t.Fatalf("probe: %s", res[0].Error)
	}
	got := counterValue(t, e.reg, MetricExpiry, "edge.corpintel.test")
	if int64(got) != res[0].NotAfter.Unix() {
		t.Fatalf("gauge %v != probed %v", got, res[0].NotAfter.Unix())
	}
	return res[0].NotAfter
}

func TestFileModeReload(t *testing.T) {
	env := newFileEnv(t)
	name := "edge.corpintel.test"
	leaf := mustHandshake(t, env.tlsAddr, name, env.ca.pool())
	first := env.servedExpiry(t)
	if !first.Equal(leaf.NotAfter) {
		t.Fatalf("prober saw %s, handshake %s", first, leaf.NotAfter)
	}

	// Unchanged files: nothing happens, no counters move.
	env.poll()
	if got := counterValue(t, env.reg, MetricRenewals, name); got != 0 {
		t.Fatalf("reload of unchanged files counted: %v", got)
	}

	// New files (replaced atomically): served after the next poll, without a restart.
	certPEM, keyPEM, newLeaf := env.ca.issue(t, leafOpts{names: []string{name}, notAfter: time.Now().Add(8 * 24 * time.Hour)})
	replaceFile(t, env.keyFile, keyPEM)
	replaceFile(t, env.certFile, certPEM)
	env.poll()
	if got := mustHandshake(t, env.tlsAddr, name, env.ca.pool()); !got.Equal(newLeaf) {
		t.Fatalf("still serving serial %s, want %s", serialHex(got), serialHex(newLeaf))
	}
	if got := env.servedExpiry(t); !got.Equal(newLeaf.NotAfter) {
		t.Fatalf("expiry gauge %s, want %s", got, newLeaf.NotAfter)
	}
	if st := statusOf(t, env.m, "edge.corpintel.test"); st.LastError != "" || st.Serial != serialHex(newLeaf) {
		t.Fatalf("status after reload: %+v", st)
	}
}

func TestFileModeBadFilesKeepTheOldCertificate(t *testing.T) {
	otherCA := newTestCA(t)
	cases := []struct {
		name    string
		write   func(t *testing.T, e *fileEnv)
		wantErr string
	}{
		{"garbage certificate", func(t *testing.T, e *fileEnv) {
			replaceFile(t, e.certFile, []byte("not a certificate"))
		}, "failed to find any PEM data"},
		{"key of another certificate", func(t *testing.T, e *fileEnv) {
			_, keyPEM, _ := e.ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}})
			replaceFile(t, e.keyFile, keyPEM)
		}, "private key does not match public key"},
		{"expired", func(t *testing.T, e *fileEnv) {
			c, k, _ := e.ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
			replaceFile(t, e.certFile, c)
			replaceFile(t, e.keyFile, k)
		}, "certificate expired on"},
		{"wrong names", func(t *testing.T, e *fileEnv) {
			c, k, _ := otherCA.issue(t, leafOpts{names: []string{"other.example"}})
			replaceFile(t, e.certFile, c)
			replaceFile(t, e.keyFile, k)
		}, "not valid for [edge.corpintel.test]"},
		{"key file removed", func(t *testing.T, e *fileEnv) {
			if err := os.Remove(e.keyFile); err != nil {
				t.Fatal(err)
			}
		}, "key file: open"},
		{"giant file", func(t *testing.T, e *fileEnv) {
			replaceFile(t, e.certFile, make([]byte, maxPEMFile+10))
		}, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newFileEnv(t)
			name := "edge.corpintel.test"
			before := mustHandshake(t, env.tlsAddr, name, env.ca.pool())
			tc.write(t, env)
			env.poll()
			st := statusOf(t, env.m, name)
			if !strings.Contains(st.LastError, tc.wantErr) || !strings.Contains(st.LastError, "previous certificate keeps being served") ||
				!strings.Contains(st.LastError, env.certFile) {
				t.Fatalf("error %q, want it to contain %q, name the file and say the old certificate stays", st.LastError, tc.wantErr)
			}
			if got := counterValue(t, env.reg, MetricRenewalFailures, name); got != 1 {
				t.Fatalf("failures = %v, want 1", got)
			}
			if got := mustHandshake(t, env.tlsAddr, name, env.ca.pool()); !got.Equal(before) {
				t.Fatal("the old certificate is no longer served")
			}
			// The same bad content is not reported again on every poll.
			env.poll()
			if got := counterValue(t, env.reg, MetricRenewalFailures, name); got != 1 {
				t.Fatalf("failures after an unchanged poll = %v, want 1", got)
			}
			// Fixing the files recovers.
			c, k, fixed := env.ca.issue(t, leafOpts{names: []string{name}})
			replaceFile(t, env.keyFile, k)
			replaceFile(t, env.certFile, c)
			env.poll()
			if got := mustHandshake(t, env.tlsAddr, name, env.ca.pool()); !got.Equal(fixed) {
				t.Fatal("fixed files not loaded")
			}
			if st := statusOf(t, env.m, name); st.LastError != "" || st.ConsecutiveFailures != 0 {
				t.Fatalf("status after the fix: %+v", st)
			}
		})
	}
}

func TestFileModeUndoneEditClearsTheError(t *testing.T) {
	env := newFileEnv(t)
	name := "edge.corpintel.test"
	before := mustHandshake(t, env.tlsAddr, name, env.ca.pool())
	orig, err := os.ReadFile(env.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		do      func()
		wantErr bool
	}{
		{func() { replaceFile(t, env.keyFile, []byte("oops")) }, true},
		{func() { replaceFile(t, env.keyFile, orig) }, false},
		{func() { _ = os.Remove(env.keyFile) }, true},
		{func() { replaceFile(t, env.keyFile, orig) }, false},
	} {
		step.do()
		env.poll()
		st := statusOf(t, env.m, name)
		if (st.LastError != "") != step.wantErr {
			t.Fatalf("error %q, want error: %v", st.LastError, step.wantErr)
		}
		if got := mustHandshake(t, env.tlsAddr, name, env.ca.pool()); !got.Equal(before) {
			t.Fatal("served certificate changed")
		}
	}
}

func TestFileModeStart(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	cfg := Config{Mode: ModeFile, StateDir: filepath.Join(dir, "state"), Names: []string{"edge.corpintel.test"},
		File: FileConfig{CertFile: certFile, KeyFile: keyFile}}

	// Missing files: New fails naming them.
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("New without files: %v", err)
	}
	// Expired at start: served (there is nothing else) and reported.
	c, k, _ := ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	m, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Status().Certificates[0]
	if !strings.Contains(st.LastError, "expired") || st.Serial == "" {
		t.Fatalf("expired certificate at start: %+v", st)
	}
	if st.RenewAt != (time.Time{}) {
		t.Fatal("file mode reports a renewal time")
	}
	_ = m.Close()

	// An RSA certificate from the operator works too (the RSA suites are in the policy).
	c, k, _ = ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}, rsa: true})
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	m, err = New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	if leaf := mustHandshake(t, e.tlsAddr, "edge.corpintel.test", ca.pool()); leaf.PublicKeyAlgorithm.String() != "RSA" {
		t.Fatalf("served %v", leaf.PublicKeyAlgorithm)
	}
}
