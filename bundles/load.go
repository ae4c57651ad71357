package bundles

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// VerifyDir checks a directory Extract (or install.sh) unpacked a bundle into: the
// signature of its SHA256SUMS, every file's checksum, and nothing else in it.
func VerifyDir(dir string, pub ed25519.PublicKey) (*Verified, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("bundle: no release key to verify with (pass --key, or install the key to " + DefaultPublicKeyFile + ")")
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer root.Close()
	read := func(name string) ([]byte, error) {
		f, ok := spec(name)
		if !ok {
			return nil, refused("%s is not a bundle file", name)
		}
		in, err := root.Open(name)
		if err != nil {
			return nil, refused("%s: %v", name, err)
		}
		defer in.Close()
		return io.ReadAll(io.LimitReader(in, f.max))
	}
	sumsData, err := read(SumsFile)
	if err != nil {
		return nil, err
	}
	sig, err := read(SigFile)
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, sumsData, sig) {
		return nil, refused("the signature of %s in %s does not verify with the release key %s", SumsFile, dir, Fingerprint(pub))
	}
	sums, err := ParseSums(sumsData)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	v := &Verified{Sums: sums, Sizes: map[string]int64{}}
	for _, e := range entries {
		if e.Name() == SumsFile || e.Name() == SigFile {
			continue
		}
		if _, ok := sums[e.Name()]; !ok || !e.Type().IsRegular() {
			return nil, refused("%s holds %s, which is no file of the bundle", dir, e.Name())
		}
	}
	for _, name := range summed() {
		in, err := root.Open(name)
		if err != nil {
			return nil, refused("%s: %v", name, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, in)
		in.Close()
		if err != nil {
			return nil, fmt.Errorf("bundle: read %s: %w", name, err)
		}
		want := sums[name]
		if !equalSum(h, want) {
			return nil, refused("%s in %s does not match its checksum (changed after the bundle was unpacked?)", name, dir)
		}
		v.Sizes[name] = n
	}
	b, err := read(ManifestFile)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &v.Manifest); err != nil || v.Manifest.Format != Format {
		return nil, refused("%s: not a %s manifest (%v)", ManifestFile, Format, err)
	}
	return v, nil
}

// LoadResult says which images a load brought into the engine.
type LoadResult struct {
	Manifest Manifest
	Loaded   []string // what the engine reported
}

// Load verifies a bundle — a file (verified, then unpacked into a temporary directory
// under tmpDir) or a directory it was unpacked into — and loads its images into the
// engine; then every image of the manifest must be there with the manifest's ID.
func Load(ctx context.Context, eng Engine, src, tmpDir string, pub ed25519.PublicKey) (*LoadResult, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	dir := src
	var v *Verified
	if st.IsDir() {
		if v, err = VerifyDir(dir, pub); err != nil {
			return nil, err
		}
	} else {
		parent, err := os.MkdirTemp(tmpDir, "corpintel-bundle-")
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		defer os.RemoveAll(parent)
		dir = filepath.Join(parent, "bundle")
		if v, err = Extract(src, dir, pub); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(filepath.Join(dir, ImagesFile)) // #nosec G304 -- inside the verified bundle
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	loaded, err := eng.LoadImages(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var wrong []string
	for _, img := range v.Manifest.Images {
		got, err := eng.InspectImage(ctx, img.Ref)
		switch {
		case err != nil:
			wrong = append(wrong, fmt.Sprintf("%s: %v", img.Ref, err))
		case got.ID != img.ID:
			wrong = append(wrong, fmt.Sprintf("%s is %s after the load, the bundle says %s", img.Ref, got.ID, img.ID))
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return nil, fmt.Errorf("bundle: images not as the manifest says: %s", strings.Join(wrong, "; "))
	}
	return &LoadResult{Manifest: v.Manifest, Loaded: loaded}, nil
}
