package bundles

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Fingerprint names a public key in messages: the first 16 hex digits of the SHA-256
// of its raw 32 bytes.
func Fingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Verified is what a verification established.
type Verified struct {
	Manifest Manifest
	Sums     Sums
	// Sizes are the files' sizes in bytes.
	Sizes map[string]int64
}

// Verify reads a bundle from r once, without unpacking anything, and checks it against
// the release key: the signature of SHA256SUMS first, then every file's checksum as it
// passes. Any problem is an ErrRefused error naming the culprit.
func Verify(r io.Reader, pub ed25519.PublicKey) (*Verified, error) {
	return walk(r, pub, nil)
}

// VerifyFile verifies the bundle at path.
func VerifyFile(path string, pub ed25519.PublicKey) (*Verified, error) {
	f, err := os.Open(path) // #nosec G304 -- the operator names the bundle
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	v, err := Verify(f, pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// sink receives each summed file's content during a walk (extraction); the walk
// checks the checksum after the sink read everything.
type sink func(f fileSpec, r io.Reader) error

// walk is the one reader of the format. With a sink it also hands each file over.
func walk(r io.Reader, pub ed25519.PublicKey, put sink) (*Verified, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("bundle: no release key to verify with (pass --key, or install the key to " + DefaultPublicKeyFile + ")")
	}
	tr := tar.NewReader(r)
	v := &Verified{Sizes: map[string]int64{}}
	var sumsData, manifestData []byte
	last := "the start"
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, refused("the archive is damaged or truncated after %s: %v", last, err)
		}
		f, err := checkHeader(h)
		if err != nil {
			return nil, err
		}
		if _, dup := v.Sizes[f.name]; dup {
			return nil, refused("%s appears twice (a second copy would replace the verified one on extraction)", f.name)
		}
		v.Sizes[f.name] = h.Size
		switch {
		case i == 0 && f.name != SumsFile:
			return nil, refused("the first file must be %s, found %s: not a %s bundle", SumsFile, f.name, Format)
		case i == 1 && f.name != SigFile:
			return nil, refused("the second file must be %s, found %s", SigFile, f.name)
		}
		switch f.name {
		case SumsFile:
			if sumsData, err = readAll(tr, h, f); err != nil {
				return nil, err
			}
		case SigFile:
			sig, err := readAll(tr, h, f)
			if err != nil {
				return nil, err
			}
			if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, sumsData, sig) {
				return nil, refused("the signature of %s does not verify with the release key %s (wrong key, or the checksums were changed)", SumsFile, Fingerprint(pub))
			}
			if v.Sums, err = ParseSums(sumsData); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrRefused, err)
			}
			if put != nil {
				sumsSpec, _ := spec(SumsFile)
				if err := errors.Join(put(sumsSpec, bytes.NewReader(sumsData)), put(f, bytes.NewReader(sig))); err != nil {
					return nil, fmt.Errorf("bundle: %w", err)
				}
			}
		default:
			var buf *bytes.Buffer
			if f.name == ManifestFile {
				buf = &bytes.Buffer{}
			}
			if err := checkContent(tr, h, f, v.Sums[f.name], buf, put); err != nil {
				return nil, err
			}
			if buf != nil {
				manifestData = buf.Bytes()
			}
		}
		last = f.name
	}
	if v.Sums == nil {
		return nil, refused("no %s and signature: not a %s bundle (or truncated before them)", SumsFile, Format)
	}
	var missing []string
	for _, name := range summed() {
		if _, ok := v.Sizes[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, refused("missing %s (truncated bundle?)", strings.Join(missing, ", "))
	}
	if err := json.Unmarshal(manifestData, &v.Manifest); err != nil {
		return nil, refused("%s: %v", ManifestFile, err)
	}
	if v.Manifest.Format != Format {
		return nil, refused("%s says format %q; this corpintel reads %s", ManifestFile, v.Manifest.Format, Format)
	}
	return v, nil
}

// checkHeader refuses every entry that is not one of the format's regular files
// within its size limit.
func checkHeader(h *tar.Header) (fileSpec, error) {
	name := h.Name
	switch {
	case name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.Contains(name, ".."):
		return fileSpec{}, refused("entry %q has a directory part or \"..\": bundle entries are plain file names", truncate(name, 80))
	case h.Typeflag != tar.TypeReg:
		return fileSpec{}, refused("%s is a %s, not a regular file", truncate(name, 80), entryKind(h))
	}
	f, ok := spec(name)
	if !ok {
		return fileSpec{}, refused("%s is not a file of a %s bundle (extra file)", truncate(name, 80), Format)
	}
	if h.Size < 0 || h.Size > f.max {
		return fileSpec{}, refused("%s declares %d bytes, more than the %d a bundle's %s may have", name, h.Size, f.max, name)
	}
	return f, nil
}

func entryKind(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeSymlink:
		return "symbolic link (to " + truncate(h.Linkname, 60) + ")"
	case tar.TypeLink:
		return "hard link (to " + truncate(h.Linkname, 60) + ")"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "named pipe"
	}
	return fmt.Sprintf("tar entry of type %q", h.Typeflag)
}

// readAll reads a small entry whole.
func readAll(tr io.Reader, h *tar.Header, f fileSpec) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(tr, f.max))
	if err != nil || int64(len(b)) != h.Size {
		return nil, refused("%s is truncated: %v", f.name, errOr(err, "short"))
	}
	return b, nil
}

// checkContent hashes an entry (handing it to put, and copying it to keep, when set)
// and compares the hash with SHA256SUMS.
func checkContent(tr io.Reader, h *tar.Header, f fileSpec, want [32]byte, keep *bytes.Buffer, put sink) error {
	hs := sha256.New()
	var w io.Writer = hs
	if keep != nil {
		w = io.MultiWriter(hs, keep)
	}
	body := &countingReader{r: io.TeeReader(io.LimitReader(tr, h.Size), w)}
	var err error
	if put != nil {
		err = put(f, body)
		if err == nil {
			_, err = io.Copy(io.Discard, body) // whatever the sink left unread
		}
	} else {
		_, err = io.Copy(io.Discard, body)
	}
	if err != nil && body.err == nil {
		return fmt.Errorf("bundle: %s: %w", f.name, err)
	}
	if body.err != nil || body.n != h.Size {
		return refused("%s is truncated (%d of %d bytes): %v", f.name, body.n, h.Size, errOr(body.err, "short"))
	}
	if !equalSum(hs, want) {
		return refused("%s does not match its checksum in %s (tampered or damaged)", f.name, SumsFile)
	}
	return nil
}

func equalSum(h hash.Hash, want [32]byte) bool {
	return bytes.Equal(h.Sum(nil), want[:])
}

type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// Extract verifies the bundle at path and only then unpacks it into dir (created
// 0700; it must not exist): a second pass writes each file and checks its checksum
// again, so a bundle that changes between the passes is refused too. On any error,
// dir is removed.
func Extract(path, dir string, pub ed25519.PublicKey) (v *Verified, err error) {
	if _, err := VerifyFile(path, pub); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bundle: extract: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := os.Open(path) // #nosec G304 -- the operator names the bundle
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	write := func(fs fileSpec, r io.Reader) error {
		mode := os.FileMode(0o600)
		if fs.exec {
			mode = 0o700
		}
		out, err := root.OpenFile(fs.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, cerr := io.Copy(out, r)
		return errors.Join(cerr, out.Sync(), out.Close())
	}
	// SHA256SUMS and its signature are written too: the directory verifies again
	// (VerifyDir, `sha256sum -c`).
	v, err = walk(f, pub, write)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
