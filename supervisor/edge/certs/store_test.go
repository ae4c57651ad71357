package certs

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(b) != content || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%q %v", b, fi.Mode())
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
	// A read-only directory: the old content stays.
	if os.Geteuid() != 0 {
		_ = os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		if err := writeFileAtomic(p, []byte("three")); err == nil {
			t.Fatal("write into a read-only directory succeeded")
		}
		if b, _ := os.ReadFile(p); string(b) != "two" {
			t.Fatalf("old content lost: %q", b)
		}
	}
}

func TestReadJSONCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "account.json")
	writeFile(t, p, []byte("{not json"))
	var v accountFile
	if err := readJSON(p, &v); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("corrupt JSON: %v", err)
	}
	// A corrupt account.json stops New with that error instead of registering anew.
	dir := t.TempDir()
	cfg := Config{Mode: ModeACME, Names: []string{"a.test"}, StateDir: dir, ACME: ACMEConfig{DirectoryURL: "https://127.0.0.1:1/dir"}}
	m, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.acme.accountPath(), []byte("garbage"))
	_ = m.Close()
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "account.json") {
		t.Fatalf("New with a corrupt account.json: %v", err)
	}
}

func TestKeysAndChains(t *testing.T) {
	ca := newTestCA(t)
	for _, rsa := range []bool{false, true} {
		certPEM, keyPEM, _ := ca.issue(t, leafOpts{names: []string{"a.test"}, rsa: rsa})
		k, err := decodeKey(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseKeyPair(certPEM, keyPEM)
		if err != nil || c.Leaf == nil || len(c.Certificate) != 2 {
			t.Fatalf("parseKeyPair: %v", err)
		}
		// Round trip through the one-file format (PKCS#8 key + chain).
		b, err := encodeChain(k, c.Certificate)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "x.pem")
		writeFile(t, p, b)
		back, err := readChainFile(p)
		if err != nil || !back.Leaf.Equal(c.Leaf) {
			t.Fatalf("round trip: %v", err)
		}
	}
	if _, err := decodeKey([]byte("nothing")); err == nil {
		t.Fatal("garbage key accepted")
	}
	if _, err := decodeKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})); err == nil {
		t.Fatal("bad PKCS#8 accepted")
	}
	if _, err := decodeKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2}})); err == nil {
		t.Fatal("bad EC key accepted")
	}
	if _, err := decodeKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2}})); err == nil {
		t.Fatal("bad RSA key accepted")
	}
	// A chain whose leaf is not the key's.
	_, _, leaf := ca.issue(t, leafOpts{names: []string{"a.test"}})
	other, _ := newECDSAKey()
	if _, err := certFromDER([][]byte{leaf.Raw}, other); err == nil {
		t.Fatal("mismatching key accepted")
	}
	if _, err := certFromDER(nil, other); err == nil {
		t.Fatal("empty chain accepted")
	}
	if _, err := certFromDER([][]byte{{1, 2, 3}}, other); err == nil {
		t.Fatal("garbage certificate accepted")
	}
	p := filepath.Join(t.TempDir(), "bad.pem")
	writeFile(t, p, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	if _, err := readChainFile(p); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("corrupt cache file: %v", err)
	}
}

func TestDamagedACMECache(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Mode: ModeACME, Names: []string{"edge.corpintel.test"}, StateDir: dir, ACME: ACMEConfig{DirectoryURL: "https://127.0.0.1:1/dir"}}
	m, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	certPath := m.acme.certPath("edge.corpintel.test")
	keyPath := m.acme.accountKeyPath()
	_ = m.Close()
	// A cached certificate for another name and a damaged account key.
	ca := newTestCA(t)
	c, k, _ := ca.issue(t, leafOpts{names: []string{"other.test"}})
	writeFile(t, certPath, append(k, c...))
	writeFile(t, keyPath, []byte("broken"))
	m, err = New(cfg, Deps{})
	if err != nil {
		t.Fatalf("a damaged cache must not stop the edge: %v", err)
	}
	defer m.Close()
	st := statusOf(t, m, "edge.corpintel.test")
	if st.Serial != "" || !strings.Contains(st.LastError, "not valid for") {
		t.Fatalf("mismatching cache served: %+v", st)
	}
	m.maintain(t.Context())
	if st := statusOf(t, m, "edge.corpintel.test"); !strings.Contains(st.LastError, "ACME account key") || !strings.Contains(st.LastError, "a new key means a new account") {
		t.Fatalf("damaged account key: %+v", st)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "broken" {
		t.Fatal("the damaged account key was overwritten")
	}
}

func TestTicketKeys(t *testing.T) {
	now := time.Now()
	tk := ticketKeys{every: time.Hour, keep: 3}
	for i := 0; i < 5; i++ {
		changed, err := tk.rotateIfDue(now.Add(time.Duration(i) * time.Hour))
		if err != nil || !changed {
			t.Fatalf("rotation %d: %v %v", i, changed, err)
		}
		if changed, _ := tk.rotateIfDue(now.Add(time.Duration(i)*time.Hour + time.Minute)); changed {
			t.Fatal("rotated before due")
		}
	}
	if len(tk.keys) != 3 || tk.keys[0] == tk.keys[1] {
		t.Fatalf("%d keys", len(tk.keys))
	}
	if !tk.next().Equal(now.Add(5 * time.Hour)) {
		t.Fatalf("next %s", tk.next())
	}
}
