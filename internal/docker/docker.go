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

// RootDir is the engine's data root (DockerRootDir): where images, containers and
// volumes live, the filesystem whose filling breaks the stack.
func (c *Client) RootDir(ctx context.Context) (string, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return "", c.wrap(err, "info")
	}
	return info.DockerRootDir, nil
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
	// Pid is the host pid of the container's first process (0 when not running).
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
	IPs        map[string]string // network name → IPv4 address
	Env        []string
	// Mounts are the container's mounts as the engine reports them (bind sources are
	// host paths).
	Mounts []Mount
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
		ct.State, ct.ExitCode, ct.OOMKilled, ct.Error, ct.Pid = string(s.Status), s.ExitCode, s.OOMKilled, s.Error, s.Pid
		ct.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
		ct.FinishedAt, _ = time.Parse(time.RFC3339Nano, s.FinishedAt)
		if h := s.Health; h != nil {
			ct.Health = string(h.Status)
			for _, l := range h.Log {
				ct.HealthLog = append(ct.HealthLog, HealthResult{Start: l.Start, ExitCode: l.ExitCode, Output: l.Output})
			}
		}
	}
	for _, m := range r.Mounts {
		src := m.Source
		if m.Type == mount.TypeVolume {
			src = m.Name
		}
		ct.Mounts = append(ct.Mounts, Mount{Type: string(m.Type), Source: src, Target: m.Destination, ReadOnly: !m.RW})
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

// Events streams container events for objects carrying the labels until ctx ends,
// limited to the given actions when any are named (start, die, destroy, oom,
// health_status, …; exec_* events of health checks are never wanted by callers, so
// naming actions keeps the stream quiet). The error channel receives one error (or
// ctx's) when the stream stops.
func (c *Client) Events(ctx context.Context, labels map[string]string, actions ...string) (<-chan Event, <-chan error) {
	f := labelFilter(labels)
	f.Add("type", string(events.ContainerEventType))
	for _, a := range actions {
		f.Add("event", a)
	}
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

// Usage is one reading of a container's resource counters; a CPU rate needs two
// readings (see CPUPercent), which is what the caller keeps between calls.
type Usage struct {
	At time.Time
	// CPUTotal and SystemTotal are cumulative nanoseconds (container and host).
	CPUTotal, SystemTotal uint64
	OnlineCPUs            uint32
	// MemoryUsage excludes the inactive page cache, as `docker stats` shows it.
	MemoryUsage, MemoryLimit uint64
}

// Usage reads a running container's counters once, without waiting for the engine's
// second sample (the one-shot stats endpoint).
func (c *Client) Usage(ctx context.Context, id string) (Usage, error) {
	r, err := c.api.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return Usage{}, c.wrap(err, "stats of container %s", id)
	}
	defer r.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(bufio.NewReader(r.Body)).Decode(&s); err != nil {
		return Usage{}, fmt.Errorf("decode stats of container %s: %w", id, err)
	}
	u := Usage{At: s.Read, CPUTotal: s.CPUStats.CPUUsage.TotalUsage, SystemTotal: s.CPUStats.SystemUsage,
		OnlineCPUs: s.CPUStats.OnlineCPUs, MemoryUsage: s.MemoryStats.Usage, MemoryLimit: s.MemoryStats.Limit}
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < s.MemoryStats.Usage {
			u.MemoryUsage = s.MemoryStats.Usage - v
			break
		}
	}
	return u, nil
}

// CPUPercent is the CPU use between two readings as `docker stats` computes it
// (container delta over host delta, times the CPUs: 100 per busy core); 0 when the
// readings do not allow a rate (first reading, counters reset).
func CPUPercent(prev, cur Usage) float64 {
	if cur.CPUTotal < prev.CPUTotal || cur.SystemTotal <= prev.SystemTotal {
		return 0
	}
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = 1
	}
	return float64(cur.CPUTotal-prev.CPUTotal) / float64(cur.SystemTotal-prev.SystemTotal) * cpus * 100
}

// ExecRequest is a command to run inside a running container.
type ExecRequest struct {
	Cmd  []string
	Env  []string // never secret values: they show in `docker inspect` of the exec
	User string
	// Stdin, when set, is copied to the command's standard input, which is closed at
	// its end.
	Stdin io.Reader
}

// Exec is a command running inside a container: Stdout streams its standard output
// as it comes (nothing is buffered inside the container or here beyond a pipe), and
// Wait returns its exit code and the tail of its standard error once it ended.
type Exec struct {
	Stdout io.ReadCloser
	done   chan struct{}
	code   int
	stderr tailBuffer
	err    error
}

// Wait waits for the command to end (read Stdout to its end first, or close it) and
// returns its exit code and the last KiB of its standard error.
func (e *Exec) Wait() (exitCode int, stderr string, err error) {
	<-e.done
	return e.code, e.stderr.String(), e.err
}

// Exec starts a command in a running container and streams its output through the
// Docker API.
func (c *Client) Exec(ctx context.Context, id string, r ExecRequest) (*Exec, error) {
	created, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: r.Cmd, Env: r.Env, User: r.User, AttachStdout: true, AttachStderr: true, AttachStdin: r.Stdin != nil,
	})
	if err != nil {
		return nil, c.wrap(err, "exec in container %s", id)
	}
	hj, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, c.wrap(err, "attach to exec in container %s", id)
	}
	pr, pw := io.Pipe()
	e := &Exec{Stdout: pr, done: make(chan struct{}), stderr: tailBuffer{max: 1 << 10}}
	if r.Stdin != nil {
		go func() {
			_, _ = io.Copy(hj.Conn, r.Stdin)
			_ = hj.CloseWrite()
		}()
	}
	go func() {
		defer close(e.done)
		defer hj.Close()
		_, cerr := stdcopy.StdCopy(pw, &e.stderr, hj.Reader)
		_ = pw.CloseWithError(cerr)
		if cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
			e.err = fmt.Errorf("exec in container %s: stream: %w", id, cerr)
		}
		// The exit code is known once the output ended; inspect with a fresh context
		// so that a cancelled read still learns how the command ended.
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		in, ierr := c.api.ContainerExecInspect(ictx, created.ID)
		if ierr != nil {
			e.err = errors.Join(e.err, c.wrap(ierr, "inspect exec in container %s", id))
			e.code = -1
			return
		}
		e.code = in.ExitCode
		if in.Running {
			e.code = -1
			e.err = errors.Join(e.err, fmt.Errorf("exec in container %s: output closed while the command still runs", id))
		}
	}()
	return e, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
