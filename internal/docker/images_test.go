package docker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
)

// importTinyImage makes a one-file image with `docker import` (nothing can be pulled
// here) and removes it when the test ends.
func importTinyImage(t *testing.T) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ref := "corpintel-test/images-" + hex.EncodeToString(b[:]) + ":1"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("hello from " + ref + "\n")
	_ = tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)})
	_, _ = tw.Write(body)
	_ = tw.Close()
	cmd := exec.Command("docker", "import", "--change", "LABEL io.corpintel.test=images", "-", ref) // #nosec G204 -- fixed arguments
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", ref).Run() }) // #nosec G204
	return ref
}

func TestSaveLoadAndInspectImages(t *testing.T) {
	testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := New(ctx)
	testenv.Require(t, "docker", err)
	defer c.Close()
	ref := importTinyImage(t)
	img, err := c.InspectImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoTags, ref) || img.Labels["io.corpintel.test"] != "images" || img.Arch == "" || img.Size <= 0 {
		t.Fatalf("inspect: %+v", img)
	}

	var archive bytes.Buffer
	if err := c.SaveImages(ctx, []string{ref}, &archive); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(archive.String(), "manifest.json") {
		t.Fatal("the saved archive has no manifest.json")
	}
	// Load it back, plain and gzip-compressed, into an engine that lacks it.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(archive.Bytes())
	_ = zw.Close()
	for name, data := range map[string][]byte{"plain": archive.Bytes(), "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			if out, err := exec.Command("docker", "image", "rm", "-f", ref).CombinedOutput(); err != nil { // #nosec G204
				t.Fatalf("docker image rm: %v\n%s", err, out)
			}
			if _, err := c.InspectImage(ctx, ref); !IsNotFound(err) {
				t.Fatalf("inspect after rm: %v", err)
			}
			loaded, err := c.LoadImages(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(loaded, ref) {
				t.Errorf("loaded %v, want %s", loaded, ref)
			}
			again, err := c.InspectImage(ctx, ref)
			if err != nil || again.ID != img.ID {
				t.Errorf("after load: %+v %v (want ID %s)", again, err, img.ID)
			}
		})
	}

	if _, err := c.LoadImages(ctx, strings.NewReader("not a tar archive")); err == nil {
		t.Error("a garbage archive loaded")
	}
	if err := c.SaveImages(ctx, []string{"corpintel-test/never-built:0"}, &bytes.Buffer{}); err == nil {
		t.Error("saving a missing image succeeded")
	}
	if err := c.SaveImages(ctx, nil, &bytes.Buffer{}); err == nil {
		t.Error("saving no image succeeded")
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version == "" || info.APIVersion == "" || info.RootDir == "" || info.CPUs < 1 || info.Memory <= 0 || info.StorageDriver == "" {
		t.Errorf("info %+v", info)
	}
}

func TestParseLoadStream(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{"tags", `{"stream":"Loaded image: a/b:1\n"}{"stream":"Loaded image: c/d:2\n"}`, []string{"a/b:1", "c/d:2"}, ""},
		{"untagged", `{"stream":"Loaded image ID: sha256:abc\n"}`, []string{"sha256:abc"}, ""},
		{"refused", `{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}`, nil, "refused the archive: unexpected EOF"},
		{"error only", `{"error":"no space left"}`, nil, "no space left"},
		{"nothing", `{"stream":"\n"}`, nil, "loaded nothing"},
		{"broken", `{"stream":`, nil, "read the engine's answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLoadStream(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %v %v, want %v", got, err, tt.want)
			}
		})
	}
}
