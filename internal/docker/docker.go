// Package docker is corpintel's adapter over the Docker Engine API
// (github.com/docker/docker/client): only the calls the supervisor, jobs and bundles
// need, with plain types of its own so that no caller imports the Docker SDK.
//
// The client negotiates the API version (the CI engine is 20.10, API 1.41) and this
// package never sends fields newer than 1.41 (no health-check start interval, no
// per-network MAC address).
package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// ErrUnreachable marks errors caused by an engine that does not answer.
var ErrUnreachable = errors.New("docker engine unreachable")

// ErrNotFound marks a missing container, image, network or volume.
var ErrNotFound = errors.New("not found")

// Client talks to one Docker Engine.
type Client struct {
	api  *client.Client
	host string
}

// New connects to the engine named by DOCKER_HOST (default unix:///var/run/docker.sock),
// negotiates the API version and pings it. An unreachable engine gives an error that
// says what to do and wraps ErrUnreachable.
func New(ctx context.Context) (*Client, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	c := &Client{api: api, host: api.DaemonHost()}
	if err := c.Ping(ctx); err != nil {
		_ = api.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// Host is the engine address (e.g. unix:///var/run/docker.sock).
func (c *Client) Host() string { return c.host }

// APIVersion is the negotiated API version.
func (c *Client) APIVersion() string { return c.api.ClientVersion() }

// Ping checks that the engine answers.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.api.Ping(ctx); err != nil {
		return c.wrap(err, "ping")
	}
	c.api.NegotiateAPIVersion(ctx)
	return nil
}

// wrap adds context and maps the SDK's error classes onto ours.
func (c *Client) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("cannot reach the Docker Engine at %s: %v — is dockerd running? (systemctl start docker): %w", c.host, err, ErrUnreachable)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", what, ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsUnreachable reports whether err says the engine does not answer.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// HealthCheck is a container health check (API 1.41 fields only).
type HealthCheck struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Mount is a named volume or a bind mount.
type Mount struct {
	Type     string // "volume" or "bind"
	Source   string
	Target   string
	ReadOnly bool
}

// CreateRequest describes a container to create.
type CreateRequest struct {
	Name       string
	Image      string
	Entrypoint []string
	Cmd        []string
	Env        []string
	Labels     map[string]string
	User       string
	Mounts     []Mount
	Health     *HealthCheck
	NanoCPUs   int64
	Memory     int64
	ShmSize    int64
	Network    string   // attach to this network
	Aliases    []string // DNS aliases on Network
	// RestartPolicy is "no", "always", "unless-stopped" or "on-failure".
	RestartPolicy string
	StopTimeout   time.Duration
	// LogMaxSize and LogMaxFile rotate the json-file log ("10m", 3).
	LogMaxSize string
	LogMaxFile int
}

// Container is an inspected container.
type Container struct {
	ID           string
	Name         string // without the leading "/"
	Image        string // as configured
	ImageID      string
	Labels       map[string]string
	State        string // created, running, paused, restarting, exited, dead
	Health       string // "", starting, healthy, unhealthy
	HealthLog    []HealthResult
	ExitCode     int
	OOMKilled    bool
	Error        string
	RestartCount int
	StartedAt    time.Time
	FinishedAt   time.Time
	IPs          map[string]string // network name → IPv4 address
	Env          []string
}

// HealthResult is one health probe run.
type HealthResult struct {
	Start    time.Time
	ExitCode int
	Output   string
}

// CreateContainer creates (not starts) a container and returns its ID.
func (c *Client) CreateContainer(ctx context.Context, r CreateRequest) (string, error) {
	cfg := &container.Config{
		Image:      r.Image,
		Entrypoint: r.Entrypoint,
		Cmd:        r.Cmd,
		Env:        r.Env,
		Labels:     r.Labels,
		User:       r.User,
	}
	if r.StopTimeout > 0 {
		s := int(r.StopTimeout / time.Second)
		cfg.StopTimeout = &s
	}
	if h := r.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	hc := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(orDefault(r.RestartPolicy, "no"))},
		Resources:     container.Resources{NanoCPUs: r.NanoCPUs, Memory: r.Memory},
		ShmSize:       r.ShmSize,
	}
	if r.LogMaxSize != "" {
		hc.LogConfig = container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": r.LogMaxSize, "max-file": fmt.Sprint(max(r.LogMaxFile, 1))}}
	}
	for _, m := range r.Mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var nc *network.NetworkingConfig
	if r.Network != "" {
		hc.NetworkMode = container.NetworkMode(r.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{r.Network: {Aliases: r.Aliases}}}
	}
	resp, err := c.api.ContainerCreate(ctx, cfg, hc, nc, nil, r.Name)
	if err != nil {
		return "", c.wrap(err, "create container %s", r.Name)
	}
	return resp.ID, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// StartContainer starts a created or stopped container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return c.wrap(err, "start container %s", id)
	}
	return nil
}

// StopContainer stops a container, killing it after timeout.
func (c *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	s := int(timeout / time.Second)
	if err := c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &s}); err != nil {
		return c.wrap(err, "stop container %s", id)
	}
	return nil
}

// KillContainer sends a signal ("KILL", "TERM", …).
func (c *Client) KillContainer(ctx context.Context, id, signal string) error {
	if err := c.api.ContainerKill(ctx, id, signal); err != nil {
		return c.wrap(err, "kill container %s", id)
	}
	return nil
}

// RemoveContainer removes a container (force: even when running); anonymous volumes go
// with it, named volumes stay. A container that is already gone is not an error.
func (c *Client) RemoveContainer(ctx context.Context, id string, force bool) error {
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: force, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return c.wrap(err, "remove container %s", id)
	}
	return nil
}

// RenameContainer renames a container.
func (c *Client) RenameContainer(ctx context.Context, id, name string) error {
	if err := c.api.ContainerRename(ctx, id, name); err != nil {
		return c.wrap(err, "rename container %s to %s", id, name)
	}
	return nil
}

// WaitContainer waits until the container is not running and returns its exit code.
func (c *Client) WaitContainer(ctx context.Context, id string) (int, error) {
	okc, errc := c.api.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case r := <-okc:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait container %s: %s", id, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-errc:
		return -1, c.wrap(err, "wait container %s", id)
	}
}

// ListContainers returns every container (running or not) carrying all the labels
// (value "" means any value), inspected.
func (c *Client) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(labels)})
	if err != nil {
		return nil, c.wrap(err, "list containers")
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		ct, err := c.InspectContainer(ctx, s.ID)
		if IsNotFound(err) { // removed between list and inspect
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ct)
	}
	return out, nil
}

func labelFilter(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	return f
}

// InspectContainer returns a container by ID or name.
func (c *Client) InspectContainer(ctx context.Context, id string) (Container, error) {
	r, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, c.wrap(err, "inspect container %s", id)
	}
	ct := Container{
		ID:           r.ID,
		Name:         strings.TrimPrefix(r.Name, "/"),
		ImageID:      r.Image,
		RestartCount: r.RestartCount,
		IPs:          map[string]string{},
	}
	if r.Config != nil {
		ct.Image, ct.Labels, ct.Env = r.Config.Image, r.Config.Labels, r.Config.Env
	}
	if s := r.State; s != nil {
		ct.State, ct.ExitCode, ct.OOMKilled, ct.Error = string(s.Status), s.ExitCode, s.OOMKilled, s.Error
		ct.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
		ct.FinishedAt, _ = time.Parse(time.RFC3339Nano, s.FinishedAt)
		if h := s.Health; h != nil {
			ct.Health = string(h.Status)
			for _, l := range h.Log {
				ct.HealthLog = append(ct.HealthLog, HealthResult{Start: l.Start, ExitCode: l.ExitCode, Output: l.Output})
			}
		}
	}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep != nil {
				ct.IPs[name] = ep.IPAddress
			}
		}
	}
	return ct, nil
}

// Logs returns the container's demultiplexed stdout+stderr; tail "" means all.
func (c *Client) Logs(ctx context.Context, id, tail string) (string, error) {
	rc, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
	if err != nil {
		return "", c.wrap(err, "logs of container %s", id)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.String(), fmt.Errorf("read logs of container %s: %w", id, err)
	}
	return buf.String(), nil
}

// FollowLogs streams the container's logs (demultiplexed) to w until ctx ends or the
// container stops. tail "" means all; timestamps prefixes each line with RFC3339Nano.
func (c *Client) FollowLogs(ctx context.Context, id, tail string, follow, timestamps bool, stdout, stderr io.Writer) error {
	rc, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail, Follow: follow, Timestamps: timestamps})
	if err != nil {
		return c.wrap(err, "logs of container %s", id)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("stream logs of container %s: %w", id, err)
	}
	return nil
}

// CreateNetwork creates a bridge network.
func (c *Client) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	if _, err := c.api.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels}); err != nil {
		return c.wrap(err, "create network %s", name)
	}
	return nil
}

// ListNetworks returns the names of networks carrying the labels.
func (c *Client) ListNetworks(ctx context.Context, labels map[string]string) ([]string, error) {
	list, err := c.api.NetworkList(ctx, network.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, c.wrap(err, "list networks")
	}
	names := make([]string, 0, len(list))
	for _, n := range list {
		names = append(names, n.Name)
	}
	return names, nil
}

// RemoveNetwork removes a network; a missing one is not an error.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	if err := c.api.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return c.wrap(err, "remove network %s", name)
	}
	return nil
}

// CreateVolume creates a local volume.
func (c *Client) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if _, err := c.api.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: labels}); err != nil {
		return c.wrap(err, "create volume %s", name)
	}
	return nil
}

// ListVolumes returns the names of volumes carrying the labels.
func (c *Client) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	resp, err := c.api.VolumeList(ctx, volume.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, c.wrap(err, "list volumes")
	}
	names := make([]string, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		names = append(names, v.Name)
	}
	return names, nil
}

// RemoveVolume removes a volume; a missing one is not an error.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	if err := c.api.VolumeRemove(ctx, name, true); err != nil && !cerrdefs.IsNotFound(err) {
		return c.wrap(err, "remove volume %s", name)
	}
	return nil
}

// ImageID returns the ID of a local image; ErrNotFound when the engine lacks it.
func (c *Client) ImageID(ctx context.Context, ref string) (string, error) {
	r, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", c.wrap(err, "inspect image %s", ref)
	}
	return r.ID, nil
}

// ImageUser returns the image's configured USER ("" = root).
func (c *Client) ImageUser(ctx context.Context, ref string) (string, error) {
	r, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", c.wrap(err, "inspect image %s", ref)
	}
	if r.Config == nil {
		return "", nil
	}
	return r.Config.User, nil
}

// Event is a container event.
type Event struct {
	Action      string // start, die, kill, stop, health_status: healthy, destroy, …
	ContainerID string
	Labels      map[string]string
	Time        time.Time
}

// Events streams container events for objects carrying the labels until ctx ends.
// The error channel receives one error (or ctx's) when the stream stops.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	f := labelFilter(labels)
	f.Add("type", string(events.ContainerEventType))
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				ev := Event{Action: string(m.Action), ContainerID: m.Actor.ID, Labels: m.Actor.Attributes, Time: time.Unix(0, m.TimeNano)}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-errs:
				if ctx.Err() != nil {
					err = ctx.Err()
				} else {
					err = c.wrap(err, "event stream")
				}
				errc <- err
				return
			}
		}
	}()
	return out, errc
}

// Stats is a one-shot resource sample.
type Stats struct {
	CPUPercent  float64 // of one core ×100 per core (docker stats semantics)
	MemoryUsage int64   // bytes, without page cache
	MemoryLimit int64
}

// Stats samples a running container's CPU and memory (takes about a second: the
// engine needs two samples for a CPU rate).
func (c *Client) Stats(ctx context.Context, id string) (Stats, error) {
	r, err := c.api.ContainerStats(ctx, id, false)
	if err != nil {
		return Stats{}, c.wrap(err, "stats of container %s", id)
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(bufio.NewReader(r.Body)).Decode(&s); err != nil {
		return Stats{}, fmt.Errorf("decode stats of container %s: %w", id, err)
	}
	return statsFrom(s), nil
}

func statsFrom(s container.StatsResponse) Stats {
	out := Stats{MemoryUsage: int64(s.MemoryStats.Usage), MemoryLimit: int64(s.MemoryStats.Limit)}
	// Same as the docker CLI: subtract the inactive page cache (cgroup v2) or cache (v1).
	if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && v < s.MemoryStats.Usage {
		out.MemoryUsage -= int64(v)
	} else if v, ok := s.MemoryStats.Stats["total_inactive_file"]; ok && v < s.MemoryStats.Usage {
		out.MemoryUsage -= int64(v)
	}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	cpus := float64(s.CPUStats.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if sysDelta > 0 && cpuDelta > 0 {
		out.CPUPercent = cpuDelta / sysDelta * cpus * 100
	}
	return out
}
