package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// saveArchive builds a docker-save-like archive from entries in order.
func saveArchive(t *testing.T, entries []tar.Header, data map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data[h.Name]))
		}
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(data[h.Name])
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func TestScanSaveLayouts(t *testing.T) {
	base := tarOf(t, map[string]string{"var/lib/dpkg/status": dpkgStatus, "etc/os-release": osRelease})
	top := tarOf(t, map[string]string{"var/lib/dpkg/status": "Package: redis-server\nStatus: install ok installed\nVersion: 5:7.0.15-1~deb12u1\nArchitecture: amd64\n"})
	other := tarOf(t, map[string]string{"usr/local/bin/minio": "binary"})

	legacyManifest, _ := json.Marshal([]map[string]any{
		{"Config": "aaaa.json", "RepoTags": []string{"corpintel/redis:7"}, "Layers": []string{"l1/layer.tar", "l2/layer.tar"}},
		{"Config": "bbbb.json", "RepoTags": []string{"corpintel/minio:latest"}, "Layers": []string{"l1b/layer.tar", "l3/layer.tar"}},
	})
	legacy := saveArchive(t, []tar.Header{
		{Name: "l1/", Typeflag: tar.TypeDir}, {Name: "l1/layer.tar", Typeflag: tar.TypeReg},
		// docker save shares an identical layer by a link to the first copy
		{Name: "l1b/", Typeflag: tar.TypeDir}, {Name: "l1b/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../l1/layer.tar"},
		{Name: "l2/layer.tar", Typeflag: tar.TypeReg}, {Name: "l3/layer.tar", Typeflag: tar.TypeReg},
		{Name: "aaaa.json", Typeflag: tar.TypeReg}, {Name: "manifest.json", Typeflag: tar.TypeReg},
	}, map[string][]byte{"l1/layer.tar": base, "l2/layer.tar": top, "l3/layer.tar": other, "aaaa.json": []byte(`{}`), "manifest.json": legacyManifest})

	ociManifest, _ := json.Marshal([]map[string]any{
		{"Config": "blobs/sha256/cccc", "RepoTags": []string{"corpintel/redis:7"}, "Layers": []string{"blobs/sha256/1111", "blobs/sha256/2222"}},
		{"Config": "blobs/sha256/dddd", "RepoTags": []string{"corpintel/minio:latest"}, "Layers": []string{"blobs/sha256/1111", "blobs/sha256/3333"}},
	})
	oci := saveArchive(t, []tar.Header{
		{Name: "blobs/sha256/cccc", Typeflag: tar.TypeReg}, {Name: "blobs/sha256/1111", Typeflag: tar.TypeReg},
		{Name: "blobs/sha256/2222", Typeflag: tar.TypeReg}, {Name: "blobs/sha256/3333", Typeflag: tar.TypeReg},
		{Name: "blobs/sha256/short", Typeflag: tar.TypeReg},
		{Name: "index.json", Typeflag: tar.TypeReg}, {Name: "manifest.json", Typeflag: tar.TypeReg},
	}, map[string][]byte{"blobs/sha256/cccc": []byte(`{"architecture":"amd64"}`), "blobs/sha256/1111": gz(base), "blobs/sha256/2222": top,
		"blobs/sha256/3333": other, "blobs/sha256/short": []byte("{}"), "index.json": []byte(`{}`), "manifest.json": ociManifest})

	for name, archive := range map[string][]byte{"legacy": legacy, "oci": oci} {
		t.Run(name, func(t *testing.T) {
			imgs, err := scanSave(bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 2 {
				t.Fatalf("images %+v", imgs)
			}
			names := func(ds []DebPackage) []string {
				var out []string
				for _, d := range ds {
					out = append(out, d.Name+"="+d.Version)
				}
				return out
			}
			if got := names(imgs[0].Debs); !slices.Equal(got, []string{"redis-server=5:7.0.15-1~deb12u1"}) {
				t.Errorf("redis packages %v (the top layer's status wins)", got)
			}
			if got := names(imgs[1].Debs); !slices.Equal(got, []string{"base-files=12.4+deb12u5", "libssl3=3.0.15-1~deb12u1"}) {
				t.Errorf("minio packages %v (from the shared base layer)", got)
			}
			if imgs[0].Distro != "debian-12" || imgs[1].Distro != "debian-12" {
				t.Errorf("distro %q %q", imgs[0].Distro, imgs[1].Distro)
			}
		})
	}

	if _, err := scanSave(bytes.NewReader(saveArchive(t, []tar.Header{{Name: "x", Typeflag: tar.TypeReg}}, nil))); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("no manifest: %v", err)
	}
	if _, err := scanSave(strings.NewReader(strings.Repeat("z", 1024))); err == nil {
		t.Error("garbage scanned")
	}
}

func TestParseDpkgStatusAndDistro(t *testing.T) {
	got := parseDpkgStatus([]byte(dpkgStatus))
	want := []DebPackage{{Name: "base-files", Version: "12.4+deb12u5", Arch: "amd64"}, {Name: "libssl3", Version: "3.0.15-1~deb12u1", Arch: "amd64", Source: "openssl"}}
	if !slices.Equal(got, want) {
		t.Errorf("packages %+v, want %+v", got, want)
	}
	if parseDpkgStatus(nil) != nil {
		t.Error("packages from nothing")
	}
	for in, want := range map[string]string{osRelease: "debian-12", "ID=alpine\n": "alpine", "NAME=x\n": "", "": ""} {
		if got := distro([]byte(in)); got != want {
			t.Errorf("distro(%q) = %q, want %q", in, got, want)
		}
	}
}
