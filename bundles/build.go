package bundles

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/klauspost/compress/gzip"
)

// Engine is the Docker Engine as bundles use it (internal/docker.Client).
type Engine interface {
	InspectImage(ctx context.Context, ref string) (docker.Image, error)
	SaveImages(ctx context.Context, refs []string, w io.Writer) error
	LoadImages(ctx context.Context, r io.Reader) ([]string, error)
}

var _ Engine = (*docker.Client)(nil)

// KeyPlaceholder is the line of the installer template that Build replaces with the
// release public key (PEM).
const KeyPlaceholder = "@@CORPINTEL_RELEASE_KEY@@"

// StampInstaller pins pub in the installer template. A template without the
// placeholder is refused, unless it pins exactly this key already.
func StampInstaller(tmpl []byte, pub ed25519.PublicKey) ([]byte, error) {
	key := bytes.TrimRight(PublicKeyPEM(pub), "\n")
	if bytes.Contains(tmpl, []byte(KeyPlaceholder)) {
		return bytes.Replace(tmpl, []byte(KeyPlaceholder), key, 1), nil
	}
	if bytes.Contains(tmpl, key) {
		return tmpl, nil
	}
	return nil, errors.New("installer: the template has no " + KeyPlaceholder + " line and pins another key than the signing key's")
}

// BuildOptions are the inputs of a bundle.
type BuildOptions struct {
	Version, Revision string
	// Arch is the binary's and the images' architecture (default runtime.GOARCH).
	Arch string
	// Binary is the corpintel binary to ship (its build info goes into the SBOM).
	Binary string
	// Images are the stack images, as the config names them.
	Images []string
	// Key signs SHA256SUMS; its public half is pinned in the installer.
	Key ed25519.PrivateKey
	// OutDir receives the bundle and, beside it, the stamped install.sh.
	OutDir string
	// Installer, Unit and Config are the installer template, the systemd unit and
	// the config template.
	Installer, Unit, Config []byte
	Engine                  Engine
	// GzipLevel compresses the images (default 1, fastest: 552 MB of images make
	// 216 MB in about 9 s on one core; level 6 saves 11 % more for twice the time).
	GzipLevel int
	// Now is the clock (default time.Now); every entry carries its time.
	Now func() time.Time
	// Log receives one line per step (nil: none).
	Log io.Writer
}

// BuildResult says what was built.
type BuildResult struct {
	Path      string // the bundle
	Installer string // install.sh next to it
	Size      int64
	Manifest  Manifest
	Sizes     map[string]int64
	// Steps are the durations of the build's steps, in order.
	Steps []Step
}

// Step is one timed part of a build.
type Step struct {
	Name     string
	Duration time.Duration
}

// Build writes corpintel-<version>-linux-<arch>.tar into OutDir (atomically: a
// partial bundle never carries the final name) and install.sh beside it.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.GzipLevel == 0 {
		o.GzipLevel = gzip.BestSpeed
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	res := &BuildResult{Sizes: map[string]int64{}}
	step := func(name string, start time.Time) {
		res.Steps = append(res.Steps, Step{Name: name, Duration: time.Since(start)})
	}
	created := o.Now().UTC().Truncate(time.Second)

	t := time.Now()
	bi, err := buildinfo.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("bundle: %s is not a Go binary with build info: %w", o.Binary, err)
	}
	man := Manifest{Format: Format, Version: o.Version, Revision: o.Revision, OS: "linux", Arch: o.Arch, Created: created, Go: bi.GoVersion}
	var sbomImages []sbomImage
	for _, ref := range o.Images {
		img, err := o.Engine.InspectImage(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("bundle: image %s: %w (build the images with `make images`)", ref, err)
		}
		if img.Arch != "" && img.Arch != o.Arch {
			return nil, fmt.Errorf("bundle: image %s is %s, the bundle is %s", ref, img.Arch, o.Arch)
		}
		man.Images = append(man.Images, ManifestImage{Ref: ref, ID: img.ID})
		sbomImages = append(sbomImages, sbomImage{Ref: ref, ID: img.ID, Labels: img.Labels, Arch: img.Arch})
	}
	installer, err := StampInstaller(o.Installer, o.Key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	step("inspect", t)

	stage, err := os.MkdirTemp(o.OutDir, ".bundle-")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer os.RemoveAll(stage)
	sums := Sums{}
	put := func(name string, data []byte) error {
		sums[name] = sha256.Sum256(data)
		res.Sizes[name] = int64(len(data))
		return os.WriteFile(filepath.Join(stage, name), data, 0o600)
	}

	t = time.Now()
	logf("bundle: saving %d images (docker save, gzip -%d) ...", len(o.Images), o.GzipLevel)
	saved, err := o.saveImages(ctx, filepath.Join(stage, ImagesFile), sums, res.Sizes)
	if err != nil {
		return nil, err
	}
	for i := range sbomImages {
		si, ok := findSaved(saved, sbomImages[i].Ref, sbomImages[i].ID)
		if !ok {
			return nil, fmt.Errorf("bundle: the saved archive lacks %s (%s)", sbomImages[i].Ref, sbomImages[i].ID)
		}
		sbomImages[i].Debs, sbomImages[i].Distro = si.Debs, si.Distro
	}
	step("save images", t)
	logf("bundle: images %d MB", res.Sizes[ImagesFile]>>20)

	t = time.Now()
	sbom, err := buildSBOM(o.Binary, o.Version, sbomImages, created)
	if err != nil {
		return nil, err
	}
	manJSON, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for name, data := range map[string][]byte{ManifestFile: append(manJSON, '\n'), BinaryFile: bin, InstallerFile: installer,
		UnitFile: o.Unit, ConfigFile: o.Config, SBOMFile: append(sbom, '\n')} {
		if err := put(name, data); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	sumsData := sums.Bytes()
	if err := put(SumsFile, sumsData); err != nil {
		return nil, err
	}
	delete(sums, SumsFile)
	if err := put(SigFile, ed25519.Sign(o.Key, sumsData)); err != nil {
		return nil, err
	}
	delete(sums, SigFile)
	step("sbom, sums, signature", t)

	t = time.Now()
	res.Path = filepath.Join(o.OutDir, FileName(o.Version, o.Arch))
	if res.Size, err = writeArchive(stage, res.Path, created); err != nil {
		return nil, err
	}
	res.Installer = filepath.Join(o.OutDir, InstallerFile)
	if err := writeFileAtomic(res.Installer, installer, 0o755); err != nil {
		return nil, err
	}
	step("write archive", t)
	res.Manifest = man
	logf("bundle: %s (%d MB)", res.Path, res.Size>>20)
	return res, nil
}

func (o *BuildOptions) check() error {
	var missing []string
	switch {
	case o.Engine == nil:
		missing = append(missing, "a Docker engine")
	case len(o.Key) != ed25519.PrivateKeySize:
		missing = append(missing, "a signing key (--key)")
	case o.Binary == "":
		missing = append(missing, "the binary")
	case len(o.Images) == 0:
		missing = append(missing, "the images")
	case o.OutDir == "":
		missing = append(missing, "an output directory")
	case len(o.Installer) == 0 || len(o.Unit) == 0 || len(o.Config) == 0:
		missing = append(missing, "the installer, unit and config template")
	}
	if len(missing) > 0 {
		return errors.New("bundle: build needs " + strings.Join(missing, ", "))
	}
	if !validVersion(o.Version) {
		return fmt.Errorf("bundle: version %q must be 1–64 of A-Z a-z 0-9 . _ + - (it names the file)", o.Version)
	}
	return nil
}

func validVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c)) {
			return false
		}
	}
	return true
}

// saveImages streams docker save through gzip into path, scanning the archive for the
// SBOM on the way (one pass, nothing uncompressed on disk).
func (o *BuildOptions) saveImages(ctx context.Context, path string, sums Sums, sizes map[string]int64) ([]savedImage, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- our staging dir
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	hs := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, hs)}
	zw, err := gzip.NewWriterLevel(cw, o.GzipLevel)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { pw.CloseWithError(o.Engine.SaveImages(ctx, o.Images, pw)) }()
	tee := io.TeeReader(pr, zw)
	saved, scanErr := scanSave(tee)
	if _, err := io.Copy(io.Discard, tee); err != nil { // the archive's trailing blocks
		_ = pr.CloseWithError(err)
		return nil, fmt.Errorf("bundle: save images: %w", err)
	}
	if scanErr != nil {
		return nil, fmt.Errorf("bundle: %w", scanErr)
	}
	if err := errors.Join(zw.Close(), f.Sync()); err != nil {
		return nil, fmt.Errorf("bundle: write %s: %w", ImagesFile, err)
	}
	var sum [32]byte
	copy(sum[:], hs.Sum(nil))
	sums[ImagesFile] = sum
	sizes[ImagesFile] = cw.n
	return saved, nil
}

func findSaved(saved []savedImage, ref, id string) (savedImage, bool) {
	hexID := strings.TrimPrefix(id, "sha256:")
	for _, s := range saved {
		if strings.Contains(s.Config, hexID) {
			return s, true
		}
	}
	for _, s := range saved {
		for _, t := range s.RepoTags {
			if t == ref {
				return s, true
			}
		}
	}
	return savedImage{}, false
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeArchive writes the staged files as the bundle tar, in the format's order,
// via a temporary name and an fsync before the rename.
func writeArchive(stage, path string, created time.Time) (int64, error) {
	tmp := path + ".partial"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644) // #nosec G304 G302 -- the operator's output dir; a bundle is public
	if err != nil {
		return 0, fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	cw := &countingWriter{w: out}
	tw := tar.NewWriter(cw)
	for _, f := range files {
		if err := addFile(tw, filepath.Join(stage, f.name), f, created); err != nil {
			out.Close()
			return 0, fmt.Errorf("bundle: add %s: %w", f.name, err)
		}
	}
	if err := errors.Join(tw.Close(), out.Sync(), out.Close()); err != nil {
		return 0, fmt.Errorf("bundle: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("bundle: %w", err)
	}
	return cw.n, syncDir(filepath.Dir(path))
}

func addFile(tw *tar.Writer, src string, f fileSpec, created time.Time) error {
	in, err := os.Open(src) // #nosec G304 -- our staging dir
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	mode := int64(0o644)
	if f.exec {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: st.Size(), Mode: mode, ModTime: created,
		Uname: "root", Gname: "root", Format: tar.FormatUSTAR}); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- our output dir
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
