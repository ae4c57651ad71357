package supervisor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/docker"
)

// fakeEngine is an in-memory engine for executor tests: containers, networks and
// volumes with just enough behaviour (names unique, rename, stop, remove). Health is
// decided by the test through onStart; job exit codes through jobExit. Methods a test
// marks as failing return errors.
type fakeEngine struct {
	t  *testing.T
	mu sync.Mutex

	nextID     int
	containers map[string]*docker.Container // by ID
	networks   map[string]map[string]string
	volumes    map[string]map[string]string
	images     map[string]string

	// onStart sets a started container's state and health (default: running, healthy).
	onStart func(c *docker.Container)
	// jobExit is the exit code of job containers (by job label).
	jobExit map[string]int
	// fail makes the named method fail.
	fail map[string]error
	// calls records mutating calls, in order, for assertions.
	calls []string
}

func newFakeEngine(t *testing.T) *fakeEngine {
	return &fakeEngine{
		t: t, containers: map[string]*docker.Container{}, networks: map[string]map[string]string{}, volumes: map[string]map[string]string{},
		images: map[string]string{}, jobExit: map[string]int{}, fail: map[string]error{},
	}
}

var _ Engine = (*fakeEngine)(nil)

func (f *fakeEngine) record(format string, args ...any) error {
	call := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, call)
	method, _, _ := strings.Cut(call, " ")
	return f.fail[method]
}

func (f *fakeEngine) byName(name string) *docker.Container {
	for _, c := range f.containers {
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

func (f *fakeEngine) ListContainers(_ context.Context, sel map[string]string) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["list"]; err != nil {
		return nil, err
	}
	var out []docker.Container
	for _, id := range slices.Sorted(maps.Keys(f.containers)) {
		if c := f.containers[id]; matches(c.Labels, sel) {
			out = append(out, *c)
		}
	}
	return out, nil
}

func (f *fakeEngine) InspectContainer(_ context.Context, id string) (docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return docker.Container{}, fmt.Errorf("inspect %s: %w", id, docker.ErrNotFound)
	}
	return *c, nil
}

func (f *fakeEngine) CreateContainer(_ context.Context, r docker.CreateRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create %s", r.Name); err != nil {
		return "", err
	}
	if f.byName(r.Name) != nil {
		return "", fmt.Errorf("create %s: name in use", r.Name)
	}
	if _, ok := f.networks[r.Network]; !ok && r.Network != "" {
		return "", fmt.Errorf("create %s: network %s not found", r.Name, r.Network)
	}
	f.nextID++
	id := fmt.Sprintf("c%02d", f.nextID)
	f.containers[id] = &docker.Container{ID: id, Name: r.Name, Image: r.Image, Labels: r.Labels, State: StateCreated, Env: r.Env, IPs: map[string]string{r.Network: "10.0.0." + fmt.Sprint(f.nextID)}}
	return id, nil
}

func (f *fakeEngine) StartContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("start %s", c.Name); err != nil {
		return err
	}
	c.State, c.Health = StateRunning, HealthHealthy
	if job := c.Labels[LabelJob]; job != "" {
		c.State, c.Health, c.ExitCode = StateExited, "", f.jobExit[job]
		return nil
	}
	if f.onStart != nil {
		f.onStart(c)
	}
	return nil
}

func (f *fakeEngine) StopContainer(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("stop %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("stop %s", c.Name); err != nil {
		return err
	}
	if c.State == StateRunning || c.State == StateRestarting {
		c.State, c.Health, c.ExitCode = StateExited, "", 0
	}
	return nil
}

func (f *fakeEngine) RemoveContainer(_ context.Context, id string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return nil
	}
	if err := f.record("remove %s", c.Name); err != nil {
		return err
	}
	delete(f.containers, id)
	return nil
}

func (f *fakeEngine) RenameContainer(_ context.Context, id, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("rename %s: %w", id, docker.ErrNotFound)
	}
	if err := f.record("rename %s %s", c.Name, name); err != nil {
		return err
	}
	if other := f.byName(name); other != nil && other != c {
		return fmt.Errorf("rename %s: name %s in use", c.Name, name)
	}
	c.Name = name
	return nil
}

func (f *fakeEngine) WaitContainer(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["wait"]; err != nil {
		return -1, err
	}
	return f.containers[id].ExitCode, nil
}

func (f *fakeEngine) Logs(_ context.Context, id, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return "", docker.ErrNotFound
	}
	return "log line of " + c.Name + "\n", nil
}

func (f *fakeEngine) CreateNetwork(_ context.Context, name string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create-network %s", name); err != nil {
		return err
	}
	f.networks[name] = labels
	return nil
}

func (f *fakeEngine) ListNetworks(_ context.Context, sel map[string]string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, l := range f.networks {
		if matches(l, sel) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeEngine) RemoveNetwork(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.networks, name)
	return f.record("remove-network %s", name)
}

func (f *fakeEngine) CreateVolume(_ context.Context, name string, labels map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("create-volume %s", name); err != nil {
		return err
	}
	f.volumes[name] = labels
	return nil
}

func (f *fakeEngine) ListVolumes(_ context.Context, sel map[string]string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, l := range f.volumes {
		if matches(l, sel) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeEngine) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.volumes, name)
	return f.record("remove-volume %s", name)
}

func (f *fakeEngine) ImageID(_ context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.images[ref]; ok {
		return id, nil
	}
	return "", fmt.Errorf("inspect image %s: %w", ref, docker.ErrNotFound)
}
