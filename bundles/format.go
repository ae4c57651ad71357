// Package bundles builds, signs, verifies and loads corpintel's air-gapped bundles: one
// file, corpintel-<version>-linux-<arch>.tar, that installs the appliance on a machine
// with no network at all.
//
// # Format (corpintel-bundle/1)
//
// An uncompressed POSIX tar of regular files with flat names, in this order:
//
//	SHA256SUMS             "<sha256 hex>  <name>\n" for every file below, sorted by name
//	                       (the format of sha256sum(1), so `sha256sum -c` reads it)
//	SHA256SUMS.sig         the 64-byte raw Ed25519 signature of SHA256SUMS (RFC 8032,
//	                       "pure" Ed25519: `openssl pkeyutl -verify -rawin` checks it)
//	bundle.json            what the bundle is: version, revision, os/arch, the images
//	                       with their IDs (Manifest)
//	corpintel              the static binary
//	install.sh             the installer, with the release public key pinned
//	corpintel.service      the systemd unit
//	corpintel.toml.example the config template the installer fills in
//	sbom.cdx.json          CycloneDX 1.5 SBOM: the binary's Go modules (from its build
//	                       info) and each image's Debian packages (from its dpkg status)
//	images.tar.gz          `docker save` of every stack image (layers shared once), gzip
//
// The signing key is an input of the build (PKCS #8 PEM, as `openssl genpkey -algorithm
// ed25519` writes it); its public half (SPKI PEM) is pinned in the installer and, for
// the Go side, given with --key or read from /etc/corpintel/release.pub. A bundle is
// verified before anything in it is unpacked, loaded or run — by install.sh in POSIX sh
// with sha256sum and openssl (the binary inside cannot vouch for itself), and by
// `corpintel bundle verify`, which streams the tar once: the signature of SHA256SUMS is
// checked first, then every file's hash as it passes. Refused, naming the culprit: a
// bad signature, a tampered, missing, extra or duplicate file, a truncated bundle, and
// hostile entries (paths with a directory part or "..", links, devices, sizes beyond
// the file's limit).
package bundles

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Format names this layout in bundle.json.
const Format = "corpintel-bundle/1"

// The files of a bundle.
const (
	SumsFile      = "SHA256SUMS"
	SigFile       = "SHA256SUMS.sig"
	ManifestFile  = "bundle.json"
	BinaryFile    = "corpintel"
	InstallerFile = "install.sh"
	UnitFile      = "corpintel.service"
	ConfigFile    = "corpintel.toml.example"
	SBOMFile      = "sbom.cdx.json"
	ImagesFile    = "images.tar.gz"
)

const (
	kib = int64(1) << 10
	mib = kib << 10
	gib = mib << 10
)

// fileSpec is what a bundle file may be.
type fileSpec struct {
	name string
	max  int64 // bytes; a bigger entry is refused before it is read
	exec bool  // extracted with the executable bit
}

// files lists every file of the format, in the order of the archive.
var files = []fileSpec{
	{SumsFile, 64 * kib, false},
	{SigFile, 64, false},
	{ManifestFile, mib, false},
	{BinaryFile, gib, true},
	{InstallerFile, mib, true},
	{UnitFile, mib, false},
	{ConfigFile, mib, false},
	{SBOMFile, 64 * mib, false},
	{ImagesFile, 8*gib - 1, false}, // a ustar entry's limit
}

func spec(name string) (fileSpec, bool) {
	for _, f := range files {
		if f.name == name {
			return f, true
		}
	}
	return fileSpec{}, false
}

// summed lists the files SHA256SUMS covers (all but itself and its signature).
func summed() []string {
	var out []string
	for _, f := range files[2:] {
		out = append(out, f.name)
	}
	slices.Sort(out)
	return out
}

// FileName is the bundle's file name for a version and architecture.
func FileName(version, arch string) string {
	return fmt.Sprintf("corpintel-%s-linux-%s.tar", version, arch)
}

// Manifest is bundle.json.
type Manifest struct {
	Format   string    `json:"format"`
	Version  string    `json:"version"`
	Revision string    `json:"revision"`
	OS       string    `json:"os"`
	Arch     string    `json:"arch"`
	Created  time.Time `json:"created"`
	// Go is the toolchain the binary was built with.
	Go     string          `json:"go"`
	Images []ManifestImage `json:"images"`
}

// ManifestImage is one stack image: its reference and the image ID the engine must
// report after the load.
type ManifestImage struct {
	Ref string `json:"ref"`
	ID  string `json:"id"`
}

// Sums is SHA256SUMS: file name → SHA-256.
type Sums map[string][32]byte

var sumLine = regexp.MustCompile(`^([0-9a-f]{64})  ([A-Za-z0-9][A-Za-z0-9._-]*)$`)

// ParseSums reads SHA256SUMS strictly: exactly the files of the format, each once.
func ParseSums(b []byte) (Sums, error) {
	s := Sums{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		m := sumLine.FindStringSubmatch(sc.Text())
		if m == nil {
			return nil, fmt.Errorf("%s line %d is not \"<sha256>  <name>\": %q", SumsFile, n, truncate(sc.Text(), 80))
		}
		if _, dup := s[m[2]]; dup {
			return nil, fmt.Errorf("%s names %s twice", SumsFile, m[2])
		}
		var h [32]byte
		_, _ = hex.Decode(h[:], []byte(m[1]))
		s[m[2]] = h
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", SumsFile, err)
	}
	var missing, extra []string
	for _, name := range summed() {
		if _, ok := s[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range s {
		if !slices.Contains(summed(), name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	switch {
	case len(extra) > 0:
		return nil, fmt.Errorf("%s lists files a %s bundle does not have: %s", SumsFile, Format, strings.Join(extra, ", "))
	case len(missing) > 0:
		return nil, fmt.Errorf("%s lacks %s", SumsFile, strings.Join(missing, ", "))
	}
	return s, nil
}

// Bytes formats SHA256SUMS (sorted by name).
func (s Sums) Bytes() []byte {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		h := s[n]
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h[:]), n)
	}
	return b.Bytes()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ErrRefused marks every reason a bundle is not accepted.
var ErrRefused = errors.New("bundle refused")

// refused builds an error naming the bundle and the culprit.
func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}
