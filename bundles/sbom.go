package bundles

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// DebPackage is one installed Debian package of an image (from var/lib/dpkg/status).
type DebPackage struct {
	Name, Version, Arch, Source string
}

// savedImage is what the scan of a `docker save` archive learns about one image.
type savedImage struct {
	Config   string   // config blob name: the image ID's hex digest is in it
	RepoTags []string // as saved
	Debs     []DebPackage
	Distro   string // os-release ID-VERSION_ID, e.g. debian-12
}

// saveManifest is manifest.json of a `docker save` archive.
type saveManifest []struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// layerFacts are what one layer holds of interest.
type layerFacts struct {
	dpkg      []byte // var/lib/dpkg/status, when the layer writes it
	osRelease []byte // usr/lib/os-release or etc/os-release
}

// scanSave reads a `docker save` archive (the legacy layout of Docker 20.10 with
// <id>/layer.tar, and the OCI layout of newer engines with blobs/sha256/<hex>) once,
// and returns per image its Debian packages, taken from the topmost layer that writes
// the dpkg status. Layers are tar files inside the tar; links between them (how
// docker save shares a layer) are followed.
func scanSave(r io.Reader) ([]savedImage, error) {
	tr := tar.NewReader(r)
	facts := map[string]layerFacts{}
	links := map[string]string{}
	var manifest saveManifest
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the saved images: %w", err)
		}
		name := path.Clean(h.Name)
		switch {
		case name == "manifest.json":
			if err := json.NewDecoder(io.LimitReader(tr, 16*mib)).Decode(&manifest); err != nil {
				return nil, fmt.Errorf("read the saved images' manifest.json: %w", err)
			}
		case h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), h.Linkname) // #nosec G305 -- a key of the in-memory layer map; nothing is written
			}
			links[name] = path.Clean(target)
		case h.Typeflag == tar.TypeReg && (strings.HasSuffix(name, "/layer.tar") || strings.HasPrefix(name, "blobs/sha256/")):
			f, err := scanLayer(tr)
			if err != nil {
				return nil, fmt.Errorf("read layer %s of the saved images: %w", name, err)
			}
			facts[name] = f
		}
	}
	if len(manifest) == 0 {
		return nil, errors.New("the saved images have no manifest.json")
	}
	resolve := func(name string) layerFacts {
		for range 8 { // links to links, bounded
			t, ok := links[name]
			if !ok {
				break
			}
			name = t
		}
		return facts[name]
	}
	out := make([]savedImage, 0, len(manifest))
	for _, m := range manifest {
		img := savedImage{Config: m.Config, RepoTags: m.RepoTags}
		var status, osRel []byte
		for _, l := range m.Layers {
			f := resolve(path.Clean(l))
			if f.dpkg != nil {
				status = f.dpkg
			}
			if f.osRelease != nil {
				osRel = f.osRelease
			}
		}
		img.Debs = parseDpkgStatus(status)
		img.Distro = distro(osRel)
		out = append(out, img)
	}
	return out, nil
}

// scanLayer reads one layer tar (plain or gzip-compressed) for the dpkg status and
// os-release. Anything that is not a tar (an image config blob in the OCI layout) is
// skipped.
func scanLayer(r io.Reader) (layerFacts, error) {
	br := bufio.NewReader(r)
	var lr io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return layerFacts{}, err
		}
		defer zr.Close()
		lr = zr
	}
	var f layerFacts
	tr := tar.NewReader(lr)
	for first := true; ; first = false {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil && first {
			return layerFacts{}, nil // not a tar (a JSON blob of the OCI layout): nothing to learn
		}
		if err != nil {
			return f, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch name {
		case "var/lib/dpkg/status":
			if f.dpkg, err = io.ReadAll(io.LimitReader(tr, 64*mib)); err != nil {
				return f, err
			}
		case "usr/lib/os-release", "etc/os-release":
			if f.osRelease, err = io.ReadAll(io.LimitReader(tr, mib)); err != nil {
				return f, err
			}
		}
	}
}

// parseDpkgStatus lists the installed packages of a dpkg status file, sorted by name.
func parseDpkgStatus(b []byte) []DebPackage {
	var out []DebPackage
	for _, stanza := range bytes.Split(b, []byte("\n\n")) {
		fields := map[string]string{}
		for _, line := range strings.Split(string(stanza), "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
				fields[k] = strings.TrimSpace(v)
			}
		}
		if fields["Package"] == "" || !strings.HasSuffix(fields["Status"], " installed") {
			continue
		}
		src, _, _ := strings.Cut(fields["Source"], " ")
		out = append(out, DebPackage{Name: fields["Package"], Version: fields["Version"], Arch: fields["Architecture"], Source: src})
	}
	slices.SortFunc(out, func(a, b DebPackage) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// distro reads ID and VERSION_ID of an os-release file ("debian-12").
func distro(osRelease []byte) string {
	var id, ver string
	for _, line := range strings.Split(string(osRelease), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			ver = v
		}
	}
	if id == "" {
		return ""
	}
	if ver == "" {
		return id
	}
	return id + "-" + ver
}

// CycloneDX 1.5, the parts the SBOM uses.
type cdxBOM struct {
	BOMFormat    string         `json:"bomFormat"`
	SpecVersion  string         `json:"specVersion"`
	SerialNumber string         `json:"serialNumber"`
	Version      int            `json:"version"`
	Metadata     cdxMetadata    `json:"metadata"`
	Components   []cdxComponent `json:"components"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type       string         `json:"type"`
	BOMRef     string         `json:"bom-ref,omitempty"`
	Name       string         `json:"name"`
	Version    string         `json:"version,omitempty"`
	PURL       string         `json:"purl,omitempty"`
	Hashes     []cdxHash      `json:"hashes,omitempty"`
	Properties []cdxProperty  `json:"properties,omitempty"`
	Components []cdxComponent `json:"components,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// sbomImage is one image as the SBOM describes it.
type sbomImage struct {
	Ref, ID string
	Labels  map[string]string
	Arch    string
	Debs    []DebPackage
	Distro  string
}

// buildSBOM writes the CycloneDX SBOM: the binary's Go modules (its build info) and
// every image with its Debian packages.
func buildSBOM(binary, version string, images []sbomImage, now time.Time) ([]byte, error) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("sbom: read the build info of %s: %w", binary, err)
	}
	app := cdxComponent{Type: "application", BOMRef: "corpintel", Name: "corpintel", Version: version,
		PURL:       "pkg:golang/" + bi.Main.Path + "@" + version,
		Properties: []cdxProperty{{Name: "go:toolchain", Value: bi.GoVersion}}}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "CGO_ENABLED", "GOARCH", "GOOS", "-tags", "-trimpath":
			app.Properties = append(app.Properties, cdxProperty{Name: "go:build:" + s.Key, Value: s.Value})
		}
	}
	var comps []cdxComponent
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		c := cdxComponent{Type: "library", BOMRef: "pkg:golang/" + d.Path + "@" + d.Version, Name: d.Path, Version: d.Version,
			PURL: "pkg:golang/" + d.Path + "@" + d.Version}
		if d.Sum != "" {
			c.Properties = []cdxProperty{{Name: "go:module:sum", Value: d.Sum}}
		}
		comps = append(comps, c)
	}
	for _, img := range images {
		repo, tag := img.Ref, ""
		if i := strings.LastIndex(img.Ref, ":"); i > strings.LastIndex(img.Ref, "/") {
			repo, tag = img.Ref[:i], img.Ref[i+1:]
		}
		c := cdxComponent{Type: "container", BOMRef: "image:" + img.Ref, Name: repo, Version: tag,
			Hashes:     []cdxHash{{Alg: "SHA-256", Content: strings.TrimPrefix(img.ID, "sha256:")}},
			Properties: []cdxProperty{{Name: "oci:image:id", Value: img.ID}}}
		for _, k := range []string{"org.opencontainers.image.version", "org.opencontainers.image.revision", "org.opencontainers.image.base.name"} {
			if v := img.Labels[k]; v != "" {
				c.Properties = append(c.Properties, cdxProperty{Name: k, Value: v})
			}
		}
		for _, p := range img.Debs {
			purl := "pkg:deb/debian/" + p.Name + "@" + p.Version
			q := []string{}
			if p.Arch != "" {
				q = append(q, "arch="+p.Arch)
			}
			if img.Distro != "" {
				q = append(q, "distro="+img.Distro)
			}
			if len(q) > 0 {
				purl += "?" + strings.Join(q, "&")
			}
			dc := cdxComponent{Type: "library", BOMRef: img.Ref + "#" + purl, Name: p.Name, Version: p.Version, PURL: purl}
			if p.Source != "" && p.Source != p.Name {
				dc.Properties = []cdxProperty{{Name: "deb:source", Value: p.Source}}
			}
			c.Components = append(c.Components, dc)
		}
		comps = append(comps, c)
	}
	bom := cdxBOM{BOMFormat: "CycloneDX", SpecVersion: "1.5", SerialNumber: "urn:uuid:" + uuid.NewString(), Version: 1,
		Metadata: cdxMetadata{Timestamp: now.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "corpintel bundle build", Version: version}}},
			Component: app},
		Components: comps}
	return json.MarshalIndent(bom, "", "  ")
}
