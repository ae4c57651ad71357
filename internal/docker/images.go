package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// Image is an inspected local image.
type Image struct {
	ID       string
	RepoTags []string
	Size     int64
	Created  time.Time
	OS, Arch string
	Labels   map[string]string
}

// InspectImage returns a local image by reference or ID; ErrNotFound when the engine
// lacks it.
func (c *Client) InspectImage(ctx context.Context, ref string) (Image, error) {
	r, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, c.wrap(err, "inspect image %s", ref)
	}
	img := Image{ID: r.ID, RepoTags: r.RepoTags, Size: r.Size, OS: r.Os, Arch: r.Architecture}
	img.Created, _ = time.Parse(time.RFC3339Nano, r.Created)
	if r.Config != nil {
		img.Labels = r.Config.Labels
	}
	return img, nil
}

// SaveImages streams the images (references or IDs) as one `docker save` archive to w:
// layers shared between them are written once. Nothing is buffered beyond a copy
// buffer; a failure mid-stream leaves w with a truncated archive and says so.
func (c *Client) SaveImages(ctx context.Context, refs []string, w io.Writer) error {
	if len(refs) == 0 {
		return errors.New("save images: no image named")
	}
	rc, err := c.api.ImageSave(ctx, refs)
	if err != nil {
		return c.wrap(err, "save images %s", strings.Join(refs, " "))
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("save images %s: stream: %w", strings.Join(refs, " "), err)
	}
	return nil
}

// LoadImages streams a `docker save` archive (plain, or compressed as the engine reads
// it: gzip, bzip2, xz) into the engine and returns what it reports as loaded
// ("Loaded image: corpintel/postgres:15", "Loaded image ID: sha256:…"). An archive the
// engine refuses is an error naming its reason.
func (c *Client) LoadImages(ctx context.Context, r io.Reader) ([]string, error) {
	resp, err := c.api.ImageLoad(ctx, r, client.ImageLoadWithQuiet(true))
	if err != nil {
		return nil, c.wrap(err, "load images")
	}
	defer resp.Body.Close()
	if !resp.JSON {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("load images: the engine answered without a JSON stream: %s", strings.TrimSpace(string(b)))
	}
	return parseLoadStream(resp.Body)
}

// loadMessage is one message of the engine's JSON stream (a jsonmessage).
type loadMessage struct {
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// parseLoadStream reads the engine's answer to an image load.
func parseLoadStream(r io.Reader) ([]string, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var loaded []string
	for {
		var m loadMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return loaded, fmt.Errorf("load images: read the engine's answer: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return loaded, fmt.Errorf("load images: the engine refused the archive: %s", m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return loaded, fmt.Errorf("load images: the engine refused the archive: %s", m.Error)
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			for _, p := range []string{"Loaded image: ", "Loaded image ID: "} {
				if s, ok := strings.CutPrefix(strings.TrimSpace(line), p); ok {
					loaded = append(loaded, s)
				}
			}
		}
	}
	if len(loaded) == 0 {
		return nil, errors.New("load images: the engine loaded nothing (an empty or foreign archive?)")
	}
	return loaded, nil
}

// EngineInfo is what `corpintel check --pre` reports about the engine.
type EngineInfo struct {
	Version       string // e.g. 20.10.24
	APIVersion    string // the engine's own (the client negotiates down to it)
	OS, Arch      string
	StorageDriver string
	RootDir       string // DockerRootDir: where images and volumes live
	CPUs          int
	Memory        int64
}

// Info describes the engine.
func (c *Client) Info(ctx context.Context) (EngineInfo, error) {
	v, err := c.api.ServerVersion(ctx)
	if err != nil {
		return EngineInfo{}, c.wrap(err, "engine version")
	}
	info, err := c.api.Info(ctx)
	if err != nil {
		return EngineInfo{}, c.wrap(err, "engine info")
	}
	return EngineInfo{Version: v.Version, APIVersion: v.APIVersion, OS: v.Os, Arch: v.Arch, StorageDriver: info.Driver,
		RootDir: info.DockerRootDir, CPUs: info.NCPU, Memory: info.MemTotal}, nil
}
