package bundles

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/testenv"
)

const dpkgStatus = `Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 continued line: with a colon

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.15-1~deb12u1)
Version: 3.0.15-1~deb12u1
`

const osRelease = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		_, _ = tw.Write([]byte(files[n]))
	}
	_ = tw.Close()
	return buf.Bytes()
}

func dockerCLI(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", args...) // #nosec G204 -- test helper
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testImages makes two small images without a registry: a base imported from a tar
// with a dpkg status, and one on top of it (docker commit) whose status adds a package.
func testImages(t *testing.T) (base, app string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	base, app = "corpintel-test/bundle-base:"+tag, "corpintel-test/bundle-app:"+tag
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", app, base).Run() }) // #nosec G204
	dockerCLI(t, tarOf(t, map[string]string{"./var/lib/dpkg/status": dpkgStatus, "usr/lib/os-release": osRelease, "bin/true": "#!/bin/true\n"}),
		"import", "--change", "LABEL org.opencontainers.image.version=12", "--change", `CMD ["/bin/true"]`, "-", base)
	cid := dockerCLI(t, nil, "create", base)
	defer dockerCLI(t, nil, "rm", "-f", cid)
	status := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(status, []byte(dpkgStatus+"\nPackage: postgresql-15\nStatus: install ok installed\nArchitecture: amd64\nVersion: 15.14-0+deb12u1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dockerCLI(t, nil, "cp", status, cid+":/var/lib/dpkg/status")
	dockerCLI(t, nil, "commit", "--change", "LABEL org.opencontainers.image.version=15", cid, app)
	return base, app
}

func TestBuildVerifyLoad(t *testing.T) {
	testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	eng, err := docker.New(ctx)
	testenv.Require(t, "docker", err)
	defer eng.Close()
	base, app := testImages(t)
	bin := goBinary(t)
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	out := t.TempDir()
	var log bytes.Buffer
	res, err := Build(ctx, BuildOptions{Version: "9.9.9-test", Revision: "abc", Binary: bin, Images: []string{base, app}, Key: key, OutDir: out,
		Installer: []byte("#!/bin/sh\nRELEASE_KEY='\n" + KeyPlaceholder + "\n'\n"), Unit: []byte("[Unit]\n"), Config: []byte("profile = \"@PROFILE@\"\n"),
		Engine: eng, Log: &log, Now: func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(res.Path) != "corpintel-9.9.9-test-linux-amd64.tar" || res.Size <= 0 || len(res.Steps) != 4 || !strings.Contains(log.String(), "saving 2 images") {
		t.Errorf("result %+v, log %q", res, log.String())
	}
	// install.sh beside the bundle pins the public key, and so does the one inside.
	inst, err := os.ReadFile(res.Installer)
	if err != nil || !bytes.Contains(inst, bytes.TrimSpace(PublicKeyPEM(pub))) || bytes.Contains(inst, []byte(KeyPlaceholder)) {
		t.Errorf("install.sh: %v\n%s", err, inst)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(out, ".bundle-*")); len(leftovers) > 0 {
		t.Errorf("staging left behind: %v", leftovers)
	}

	t0 := time.Now()
	v, err := VerifyFile(res.Path, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify %d bytes: %s", res.Size, time.Since(t0))
	if v.Manifest.Version != "9.9.9-test" || len(v.Manifest.Images) != 2 || !v.Manifest.Created.Equal(time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)) {
		t.Errorf("manifest %+v", v.Manifest)
	}

	// The SBOM: the binary's modules, and each image's packages from its top layer.
	dir := filepath.Join(t.TempDir(), "x")
	if _, err := Extract(res.Path, dir, pub); err != nil {
		t.Fatal(err)
	}
	var bom cdxBOM
	b, _ := os.ReadFile(filepath.Join(dir, SBOMFile))
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.5" || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") || bom.Metadata.Component.Version != "9.9.9-test" {
		t.Errorf("sbom header %+v", bom.Metadata)
	}
	debs := map[string][]string{}
	var golang int
	for _, c := range bom.Components {
		switch c.Type {
		case "container":
			for _, d := range c.Components {
				debs[c.Name+":"+c.Version] = append(debs[c.Name+":"+c.Version], d.PURL)
			}
		case "library":
			if strings.HasPrefix(c.PURL, "pkg:golang/") {
				golang++
			}
		}
	}
	if golang == 0 {
		t.Error("no Go modules in the SBOM")
	}
	wantBase := []string{"pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64&distro=debian-12", "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"}
	if !slices.Equal(debs[base], wantBase) {
		t.Errorf("base packages %v, want %v", debs[base], wantBase)
	}
	if len(debs[app]) != 3 || !slices.Contains(debs[app], "pkg:deb/debian/postgresql-15@15.14-0+deb12u1?arch=amd64&distro=debian-12") {
		t.Errorf("app packages %v", debs[app])
	}

	// Load into an engine that lacks the images: same IDs as the manifest says.
	dockerCLI(t, nil, "image", "rm", app, base)
	lr, err := Load(ctx, eng, res.Path, t.TempDir(), pub)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lr.Loaded, base) || !slices.Contains(lr.Loaded, app) {
		t.Errorf("loaded %v", lr.Loaded)
	}
	// From the unpacked directory too (what install.sh does).
	if _, err := Load(ctx, eng, dir, t.TempDir(), pub); err != nil {
		t.Fatal(err)
	}
	// A load with the wrong key loads nothing.
	if _, err := Load(ctx, eng, res.Path, t.TempDir(), testKey(t).Public().(ed25519.PublicKey)); err == nil {
		t.Error("loaded with the wrong key")
	}
	// An image retagged after the load is caught.
	dockerCLI(t, nil, "tag", base, app)
	if _, err := Load(ctx, &retagAfterLoad{Engine: eng, t: t, from: base, to: app}, dir, t.TempDir(), pub); err == nil || !strings.Contains(err.Error(), "after the load") {
		t.Errorf("retagged image: %v", err)
	}
}

// retagAfterLoad points one tag at another image right after the engine loaded the
// archive, as a concurrent `docker tag` would.
type retagAfterLoad struct {
	Engine
	t        *testing.T
	from, to string
}

func (r *retagAfterLoad) LoadImages(ctx context.Context, rd io.Reader) ([]string, error) {
	out, err := r.Engine.LoadImages(ctx, rd)
	dockerCLI(r.t, nil, "tag", r.from, r.to)
	return out, err
}

func TestBuildRefusesBadInputs(t *testing.T) {
	key := testKey(t)
	ok := BuildOptions{Version: "1.0.0", Binary: "/bin/true", Images: []string{"a"}, Key: key, OutDir: t.TempDir(),
		Installer: []byte(KeyPlaceholder), Unit: []byte("u"), Config: []byte("c"), Engine: &noEngine{}}
	tests := []struct {
		name   string
		mutate func(o *BuildOptions)
		want   string
	}{
		{"no key", func(o *BuildOptions) { o.Key = nil }, "signing key"},
		{"no engine", func(o *BuildOptions) { o.Engine = nil }, "Docker engine"},
		{"no images", func(o *BuildOptions) { o.Images = nil }, "the images"},
		{"no binary", func(o *BuildOptions) { o.Binary = "" }, "the binary"},
		{"no output", func(o *BuildOptions) { o.OutDir = "" }, "output directory"},
		{"no templates", func(o *BuildOptions) { o.Unit = nil }, "installer, unit and config"},
		{"bad version", func(o *BuildOptions) { o.Version = "1.0/../../x" }, "version"},
		{"not a Go binary", func(o *BuildOptions) { o.Binary = "/etc/hostname" }, "not a Go binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mutate(&o)
			if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

type noEngine struct{ Engine }

// goBinary builds corpintel (a test binary's build info lists no modules).
func goBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "corpintel")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/corpintel/corpintel/cmd/corpintel").CombinedOutput(); err != nil { // #nosec G204 -- fixed arguments
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestStampInstaller(t *testing.T) {
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	tmpl := []byte("KEY='\n" + KeyPlaceholder + "\n'\n")
	got, err := StampInstaller(tmpl, pub)
	if err != nil || !bytes.Contains(got, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("%v\n%s", err, got)
	}
	if again, err := StampInstaller(got, pub); err != nil || !bytes.Equal(again, got) {
		t.Errorf("restamping with the same key: %v", err)
	}
	if _, err := StampInstaller(got, testKey(t).Public().(ed25519.PublicKey)); err == nil {
		t.Error("an installer pinned to another key was stamped")
	}
}
