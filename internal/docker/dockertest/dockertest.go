// Package dockertest is an in-memory Docker Engine for unit tests of the code above
// internal/docker (reconciler, daemon): containers, networks and volumes with just
// enough behaviour (unique names, rename, stop, remove, events), health decided by the
// test. Integration tests use the real engine instead.
package dockertest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
)

// Engine is the in-memory engine. Health is decided by the test through OnStart, job
// exit codes through JobExit; a method named in Fail ("create", "start", "list", …)
// fails with that error. Tests that run the engine from other goroutines (a daemon's
// loop) change it through Do and read it through Names.
type Engine struct {
	t  *testing.T
	mu sync.Mutex

	subs []chan docker.Event

	nextID     int
	Containers map[string]*docker.Container // by ID
	Networks   map[string]map[string]string
	Volumes    map[string]map[string]string
	Images     map[string]string

	// OnStart sets a started container's state and health (default: running, healthy).
	OnStart func(c *docker.Container)
	// JobExit is the exit code of job containers (by job label).
	JobExit map[string]int
	// Fail makes the named method fail.
	Fail map[string]error
	// Calls records mutating calls, in order, for assertions.
	Calls []string
	// Created records every create request, in order.
	Created []docker.CreateRequest
	// LogLines are what FollowLogs writes per container name (default one line).
	LogLines map[string]string
}

// New returns an empty engine.
func New(t *testing.T) *Engine {
	return &Engine{
		t: t, Containers: map[string]*docker.Container{}, Networks: map[string]map[string]string{}, Volumes: map[string]map[string]string{},
		Images: map[string]string{}, JobExit: map[string]int{}, Fail: map[string]error{}, LogLines: map[string]string{},
	}
}

// Do runs f with the engine locked (for tests that change it while a loop runs).
func (f *Engine) Do(fn func(e *Engine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Names lists "name:state" of every container, sorted.
func (f *Engine) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.Containers {
		out = append(out, c.Name+":"+c.State)
	}
	slices.Sort(out)
	return out
}

// Kill stops a container the way `docker kill` does (exit code 137, no restart) and
// tells the event subscribers.
func (f *Engine) Kill(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ByName(name)
	if c == nil {
		f.t.Fatalf("dockertest: kill %s: no such container", name)
	}
	c.State, c.Health, c.ExitCode = "exited", "", 137
	f.emit(c, "die")
}

// emit sends an event about a container to the event subscribers (f.mu held).
func (f *Engine) emit(c *docker.Container, action string) {
	ev := docker.Event{Action: action, ContainerID: c.ID, Labels: c.Labels, Time: time.Now()}
	for _, s := range f.subs {
		select {
		case s <- ev:
		default: // a slow subscriber misses events, like a broken stream would
		}
	}
}

// Events streams the engine's events (filtered by the project label) until ctx ends.
func (f *Engine) Events(ctx context.Context, labels map[string]string, _ ...string) (<-chan docker.Event, <-chan error) {
	ch := make(chan docker.Event, 64)
	out := make(chan docker.Event)
	errc := make(chan error, 1)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-ch:
				if !matches(ev.Labels, labels) {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case <-ctx.Done():
				f.mu.Lock()
				f.subs = slices.DeleteFunc(f.subs, func(c chan docker.Event) bool { return c == ch })
				f.mu.Unlock()
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

// Usage returns fixed counters for running containers.
func (f *Engine) Usage(_ context.Context, id string) (docker.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return docker.Usage{}, fmt.Errorf("stats of %s: %w", id, docker.ErrNotFound)
	}
	return docker.Usage{At: time.Now(), CPUTotal: uint64(len(c.Name)) * 1e6, SystemTotal: 1e12, OnlineCPUs: 2, MemoryUsage: 32 << 20}, nil
}

// FollowLogs writes the container's LogLines (or one line naming it) to stdout.
func (f *Engine) FollowLogs(_ context.Context, id, _ string, _, _ bool, stdout, _ io.Writer) error {
	f.mu.Lock()
	c, ok := f.Containers[id]
	var lines string
	if ok {
		lines = f.LogLines[c.Name]
		if lines == "" {
			lines = "log line of " + c.Name + "\n"
		}
	}
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("logs of %s: %w", id, docker.ErrNotFound)
	}
	_, err := io.WriteString(stdout, lines)
	return err
}

func (f *Engine) record(format string, args ...any) error {
	call := fmt.Sprintf(format, args...)
	f.Calls = append(f.Calls, call)
	method, _, _ := strings.Cut(call, " ")
	return f.Fail[method]
}

func (f *Engine) ByName(name string) *docker.Container {
	for _, c := range f.Containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

func (f *Engine) ListContainers(_ context.Context, sel map[string]string) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["list"]; err != nil {
		return nil, err
	}
	var out []docker.Container
	for _, id := range slices.Sorted(maps.Keys(f.Containers)) {
		if c := f.Containers[id]; matches(c.Labels, sel) {
			out = append(out, *c)
		}
	}
	return out, nil
}

func (f *Engine) InspectContainer(_ context.Context, id string) (docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return docker.Container{}, fmt.Errorf("inspect %s: %w", id, docker.ErrNotFound)
	}
	return *c, nil
}

func (f *Engine) CreateContainer(_ context.Context, r docker.CreateRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create %s", r.Name); err != nil {
		return "", err
	}
	f.Created = append(f.Created, r)
	if f.ByName(r.Name) != nil {
		return "", fmt.Errorf("create %s: name in use", r.Name)
	}
	if _, ok := f.Networks[r.Network]; !ok && r.Network != "" {
		return "", fmt.Errorf("create %s: network %s not found", r.Name, r.Network)
	}
	f.nextID++
	id := fmt.Sprintf("c%02d", f.nextID)
	f.Containers[id] = &docker.Container{ID: id, Name: r.Name, Image: r.Image, Labels: r.Labels, State: "created", Env: r.Env,
		IPs: map[string]string{r.Network: "10.0.0." + fmt.Sprint(f.nextID)}, Mounts: slices.Clone(r.Mounts)}
	return id, nil
}

func (f *Engine) StartContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("start %s", c.Name); err != nil {
		return err
	}
	c.State, c.Health = "running", "healthy"
	if job := c.Labels[stack.LabelJob]; job != "" {
		c.State, c.Health, c.ExitCode = "exited", "", f.JobExit[job]
		return nil
	}
	if f.OnStart != nil {
		f.OnStart(c)
	}
	f.emit(c, "start")
	return nil
}

func (f *Engine) StopContainer(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return fmt.Errorf("stop %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("stop %s", c.Name); err != nil {
		return err
	}
	if c.State == "running" || c.State == "restarting" {
		c.State, c.Health, c.ExitCode = "exited", "", 0
		f.emit(c, "die")
	}
	return nil
}

func (f *Engine) RemoveContainer(_ context.Context, id string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return nil
	}
	if err := f.record("remove %s", c.Name); err != nil {
		return err
	}
	delete(f.Containers, id)
	f.emit(c, "destroy")
	return nil
}

func (f *Engine) RenameContainer(_ context.Context, id, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return fmt.Errorf("rename %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("rename %s %s", c.Name, name); err != nil {
		return err
	}
	if other := f.ByName(name); other != nil && other != c {
		return fmt.Errorf("rename %s: name %s in use", c.Name, name)
	}
	c.Name = name
	return nil
}

func (f *Engine) WaitContainer(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["wait"]; err != nil {
		return -1, err
	}
	return f.Containers[id].ExitCode, nil
}

func (f *Engine) Logs(_ context.Context, id, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.Containers[id]
	if !ok {
		return "", docker.ErrNotFound
	}
	return "log line of " + c.Name + "\n", nil
}

func (f *Engine) CreateNetwork(_ context.Context, name string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create-network %s", name); err != nil {
		return err
	}
	f.Networks[name] = labels
	return nil
}

func (f *Engine) ListNetworks(_ context.Context, sel map[string]string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, l := range f.Networks {
		if matches(l, sel) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *Engine) RemoveNetwork(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Networks, name)
	return f.record("remove-network %s", name)
}

func (f *Engine) CreateVolume(_ context.Context, name string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create-volume %s", name); err != nil {
		return err
	}
	f.Volumes[name] = labels
	return nil
}

func (f *Engine) ListVolumes(_ context.Context, sel map[string]string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, l := range f.Volumes {
		if matches(l, sel) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *Engine) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Volumes, name)
	return f.record("remove-volume %s", name)
}

func (f *Engine) ImageID(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.Images[ref]; ok {
		return id, nil
	}
	return "", fmt.Errorf("inspect image %s: %w", ref, docker.ErrNotFound)
}
