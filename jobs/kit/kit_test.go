package kit

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func TestGenerateIdentityAndPublicKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kit.key")
	rcpt, err := GenerateIdentity(path, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rcpt, "age1") {
		t.Errorf("recipient %q", rcpt)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v mode %v", err, st.Mode())
	}
	pub, err := PublicKey(path)
	if err != nil || pub != rcpt {
		t.Errorf("PublicKey = %q, %v; want %q", pub, err, rcpt)
	}
	if strings.Contains(pub, "AGE-SECRET-KEY") {
		t.Error("PublicKey leaked the secret part")
	}
	if _, err := GenerateIdentity(path, time.Now()); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("second GenerateIdentity: %v", err)
	}
	if !strings.Contains(Instructions(rcpt, path), rcpt) {
		t.Error("instructions lack the recipient")
	}
}

func TestHybridIdentityPublicKey(t *testing.T) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pq.key")
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKey(path)
	if err != nil || pub != id.Recipient().String() {
		t.Errorf("PublicKey = %q, %v", pub, err)
	}
}

func TestLoadIdentitiesRefusesJunk(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string][]byte{
		"text":  []byte("hello\n"),
		"huge":  bytes.Repeat([]byte("#"), maxIdentityFile+10),
		"empty": nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentities(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadIdentities(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := PublicKey(filepath.Join(dir, "text")); err == nil {
		t.Error("PublicKey of junk accepted")
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kit.key")
	rcpt, err := GenerateIdentity(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecipient(" " + rcpt + "\n")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := LoadIdentities(path)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("secret "), 100_000)
	var ct bytes.Buffer
	w, err := Encrypt(&ct, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct.Bytes(), []byte("secret")) {
		t.Fatal("ciphertext contains plaintext")
	}
	pr, err := Decrypt(bytes.NewReader(ct.Bytes()), ids...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(pr)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v, %d bytes", err, len(got))
	}
	// Truncated ciphertext: refused while reading.
	pr, err = Decrypt(bytes.NewReader(ct.Bytes()[:ct.Len()-100]), ids...)
	if err == nil {
		_, err = io.ReadAll(pr)
	}
	if err == nil {
		t.Error("truncated ciphertext decrypted")
	}
	if _, err := Decrypt(bytes.NewReader(ct.Bytes())); err == nil {
		t.Error("decrypt without identity")
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := Decrypt(bytes.NewReader(ct.Bytes()), other); err == nil {
		t.Error("decrypt with the wrong identity")
	}
	for _, bad := range []string{"", "age1nope", rcpt + "\n" + rcpt} {
		if _, err := ParseRecipient(bad); err == nil {
			t.Errorf("ParseRecipient(%q) accepted", bad)
		}
	}
}

func TestSnapshotSQLiteWhileWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "state.db")
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := db.Exec("INSERT INTO kv VALUES (?, ?)", strings.Repeat("k", i+1), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// A writer keeps going during the snapshot; the copy has a consistent prefix.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = db.Exec("INSERT INTO kv VALUES (?, 'w')", "w"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Now().String())
		}
	}()
	dst := filepath.Join(dir, "operator's copy", "state.db") // a quote in the path: bound, not spliced
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	err = SnapshotSQLite(ctx, src, dst)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSQLite(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst + "-wal"); err == nil {
		t.Error("the copy has a WAL file")
	}
	cp, _ := sql.Open("sqlite", "file:"+dst+"?mode=ro")
	defer cp.Close()
	var n int
	if err := cp.QueryRow("SELECT count(*) FROM kv WHERE v = 'v'").Scan(&n); err != nil || n != 100 {
		t.Errorf("copy has %d original rows (%v)", n, err)
	}
	if err := SnapshotSQLite(ctx, src, dst); err == nil {
		t.Error("snapshot over an existing file")
	}
	if err := SnapshotSQLite(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "x.db")); err == nil {
		t.Error("snapshot of a missing store")
	}
}

func TestCheckSQLiteRefusesGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(p, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckSQLite(context.Background(), p); err == nil {
		t.Error("garbage passed the integrity check")
	}
	if err := CheckSQLite(context.Background(), p+".missing"); err == nil {
		t.Error("missing file passed")
	}
}

func TestTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "api", "v2"), 0o700))
	must(t, os.WriteFile(filepath.Join(src, "postgres_password"), []byte("pw1"), 0o400))
	must(t, os.WriteFile(filepath.Join(src, "api", "v2", "jwt_kek"), []byte("kek"), 0o600))
	var buf bytes.Buffer
	n, err := WriteTar(&buf, src)
	if err != nil || n != 2 {
		t.Fatalf("WriteTar: %d, %v", n, err)
	}
	dst := t.TempDir()
	n, err = ExtractTar(bytes.NewReader(buf.Bytes()), dst)
	if err != nil || n != 2 {
		t.Fatalf("ExtractTar: %d, %v", n, err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "api", "v2", "jwt_kek"))
	if err != nil || string(b) != "kek" {
		t.Errorf("extracted %q, %v", b, err)
	}
	st, _ := os.Stat(filepath.Join(dst, "postgres_password"))
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("extracted secret mode %v", st.Mode())
	}
}

func TestWriteTarRefusesSymlinks(t *testing.T) {
	src := t.TempDir()
	must(t, os.Symlink("/etc/passwd", filepath.Join(src, "link")))
	if _, err := WriteTar(io.Discard, src); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
	if _, err := WriteTar(io.Discard, filepath.Join(src, "missing")); err == nil {
		t.Error("missing dir accepted")
	}
}

func TestExtractTarRefusesHostileEntries(t *testing.T) {
	type entry struct {
		h    tar.Header
		body string
	}
	reg := func(name, body string) entry {
		return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o600}, body}
	}
	tests := []struct {
		name    string
		entries []entry
	}{
		{"dot-dot", []entry{reg("../escape", "x")}},
		{"nested dot-dot", []entry{reg("a/../../escape", "x")}},
		{"absolute", []entry{reg("/tmp/escape", "x")}},
		{"backslash", []entry{reg(`..\escape`, "x")}},
		{"symlink", []entry{{tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc"}, ""}}},
		{"hardlink", []entry{{tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "/etc/passwd"}, ""}}},
		{"device", []entry{{tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}, ""}}},
		{"fifo", []entry{{tar.Header{Typeflag: tar.TypeFifo, Name: "p"}, ""}}},
		{"duplicate", []entry{reg("a", "1"), reg("a", "2")}},
		{"huge", []entry{{tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: MaxTarFileSize + 1}, ""}}},
		{"dot", []entry{reg(".", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range tt.entries {
				h := e.h
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
				if e.body != "" {
					_, _ = tw.Write([]byte(e.body))
				}
			}
			_ = tw.Close()
			parent := t.TempDir()
			dst := filepath.Join(parent, "in")
			must(t, os.Mkdir(dst, 0o700))
			_, err := ExtractTar(bytes.NewReader(buf.Bytes()), dst)
			if err == nil {
				t.Fatal("accepted")
			}
			if _, serr := os.Stat(filepath.Join(parent, "escape")); serr == nil {
				t.Fatal("a file landed outside the target")
			}
		})
	}
}

// A symlink already inside the target cannot be used to write outside it.
func TestExtractTarThroughExistingSymlink(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "in")
	outside := filepath.Join(parent, "outside")
	must(t, os.Mkdir(dst, 0o700))
	must(t, os.Mkdir(outside, 0o700))
	must(t, os.Symlink(outside, filepath.Join(dst, "sub")))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "sub/x", Size: 1, Mode: 0o600}))
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	if _, err := ExtractTar(bytes.NewReader(buf.Bytes()), dst); err == nil {
		t.Error("wrote through a symlink")
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Error("file landed outside")
	}
	if _, err := ExtractTar(strings.NewReader("garbage that is not a tar at all, long enough to fill a header block"+strings.Repeat(" ", 600)), t.TempDir()); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := ExtractTar(strings.NewReader(""), filepath.Join(parent, "missing")); err == nil || errors.Is(err, ErrUnsafeArchive) {
		t.Errorf("missing target: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestKitErrorPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o600))
	if _, err := GenerateIdentity(filepath.Join(file, "sub", "kit.key"), time.Now()); err == nil {
		t.Error("identity under a file")
	}
	if _, err := Encrypt(io.Discard, nil); err == nil {
		t.Error("encryption without a recipient")
	}
	if err := CheckSQLite(context.Background(), dir); err == nil {
		t.Error("a directory passed the integrity check")
	}
	// Nested directories and a file larger than the copy buffer survive the round trip.
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o700))
	big := bytes.Repeat([]byte("k"), 3<<20)
	must(t, os.WriteFile(filepath.Join(src, "a", "b", "big"), big, 0o600))
	var buf bytes.Buffer
	if n, err := WriteTar(&buf, src); err != nil || n != 1 {
		t.Fatalf("WriteTar %d %v", n, err)
	}
	dst := t.TempDir()
	if _, err := ExtractTar(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "a", "b", "big")); !bytes.Equal(got, big) {
		t.Error("big file differs")
	}
	// Extracting twice into the same place refuses to overwrite.
	if _, err := ExtractTar(bytes.NewReader(buf.Bytes()), dst); err == nil {
		t.Error("overwrote an existing secret")
	}
	// A tar whose body is shorter than its header says.
	if _, err := ExtractTar(bytes.NewReader(buf.Bytes()[:len(buf.Bytes())/2]), t.TempDir()); err == nil {
		t.Error("truncated tar accepted")
	}
}
