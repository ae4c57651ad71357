package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// Host metrics, the node-exporter equivalents the rules and charts need, read from /proc
// and statfs(2).
var (
	famCPUSeconds = counter("corpintel_host_cpu_seconds_total", "CPU time of the host by mode, summed over its CPUs.", "mode")
	famCPUUsed    = gauge("corpintel_host_cpu_used_ratio", "Share of the host's CPU time that was busy (not idle or waiting for I/O) since the previous cycle.")
	famCPUs       = gauge("corpintel_host_cpus", "CPUs of the host.")
	famLoad       = gauge("corpintel_host_load_average", "Load average of the host.", "period")
	famMemTotal   = gauge("corpintel_host_memory_total_bytes", "Memory of the host (MemTotal).")
	famMemAvail   = gauge("corpintel_host_memory_available_bytes", "Memory available for new work without swapping (MemAvailable).")
	famMemUsed    = gauge(alerts.MetricMemoryUsedRatio, "Host memory in use: (MemTotal - MemAvailable) / MemTotal.")
	famSwapTotal  = gauge("corpintel_host_swap_total_bytes", "Swap space of the host.")
	famSwapFree   = gauge("corpintel_host_swap_free_bytes", "Unused swap space of the host.")
	famDiskUsed   = gauge(alerts.MetricDiskUsedRatio, "Used share of a filesystem as df shows it: used / (used + available to unprivileged users).", "mount")
	famDiskSize   = gauge("corpintel_disk_size_bytes", "Size of a filesystem.", "mount")
	famDiskAvail  = gauge("corpintel_disk_available_bytes", "Space of a filesystem available to unprivileged users.", "mount")
	famNetRx      = counter("corpintel_host_network_receive_bytes_total", "Bytes received by a network interface of the host.", "device")
	famNetTx      = counter("corpintel_host_network_transmit_bytes_total", "Bytes sent by a network interface of the host.", "device")
	famPSIWaiting = counter("corpintel_host_pressure_waiting_seconds_total", "Time some tasks waited for a resource (/proc/pressure, \"some\").", "resource")
	famPSIStalled = counter("corpintel_host_pressure_stalled_seconds_total", "Time all non-idle tasks were stalled on a resource (/proc/pressure, \"full\").", "resource")
)

// maxNetDevices bounds the device label: a host with many physical interfaces shows the
// first ones by name.
const maxNetDevices = 8

// virtualNetPrefixes are the interfaces that come and go with containers and bridges;
// counting them would make the device label unbounded.
var virtualNetPrefixes = []string{"lo", "veth", "docker", "br-", "virbr", "vnet", "cni", "flannel", "cali", "kube", "tap", "tun", "ifb", "dummy", "vxlan", "gre", "wg"}

// userHZ is the kernel's clock tick for /proc/stat (USER_HZ is 100 on every Linux ABI).
const userHZ = 100

// HostOptions configure the host collector.
type HostOptions struct {
	// Proc is the procfs mount (default /proc).
	Proc string
	// Paths are the paths whose filesystems are watched; each filesystem appears once,
	// labelled with its mount point. A path that does not exist yet (a backup root
	// before the first backup) counts as the filesystem that will hold it.
	Paths []string
}

// Host collects CPU, memory, load, disk, network and pressure metrics of the machine.
type Host struct {
	proc  string
	paths []string

	mu      sync.Mutex
	prevCPU []uint64
}

// NewHost returns the host collector.
func NewHost(o HostOptions) *Host {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	return &Host{proc: o.Proc, paths: o.Paths}
}

// Name implements Source.
func (h *Host) Name() string { return "host" }

// Collect implements Source.
func (h *Host) Collect(_ context.Context, b *Batch) error {
	var errs []error
	for _, f := range []func(*Batch) error{h.cpu, h.memory, h.load, h.disks, h.network, h.pressure} {
		if err := f(b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var cpuModes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

func (h *Host) cpu(b *Batch) error {
	data, err := os.ReadFile(filepath.Join(h.proc, "stat"))
	if err != nil {
		return fmt.Errorf("host cpu: %w", err)
	}
	var total []uint64
	cpus := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			for _, s := range f[1:min(len(f), 1+len(cpuModes))] {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return fmt.Errorf("host cpu: %s: bad number %q", filepath.Join(h.proc, "stat"), s)
				}
				total = append(total, n)
			}
		case strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	if len(total) < 4 {
		return fmt.Errorf("host cpu: no cpu line in %s", filepath.Join(h.proc, "stat"))
	}
	for i, n := range total {
		b.add(famCPUSeconds, float64(n)/userHZ, cpuModes[i])
	}
	b.add(famCPUs, float64(cpus))
	h.mu.Lock()
	prev := h.prevCPU
	h.prevCPU = total
	h.mu.Unlock()
	if len(prev) == len(total) {
		var all, idle uint64
		for i := range total {
			if total[i] < prev[i] {
				return nil // counters went back (a container checkpoint?): no rate this cycle
			}
			d := total[i] - prev[i]
			all += d
			if cpuModes[i] == "idle" || cpuModes[i] == "iowait" {
				idle += d
			}
		}
		if all > 0 {
			b.add(famCPUUsed, float64(all-idle)/float64(all))
		}
	}
	return nil
}

func (h *Host) memory(b *Batch) error {
	data, err := os.ReadFile(filepath.Join(h.proc, "meminfo"))
	if err != nil {
		return fmt.Errorf("host memory: %w", err)
	}
	kv := map[string]float64{}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		kv[name] = n
	}
	total, okT := kv["MemTotal"]
	avail, okA := kv["MemAvailable"]
	if !okT || !okA || total <= 0 {
		return fmt.Errorf("host memory: MemTotal/MemAvailable missing in %s", filepath.Join(h.proc, "meminfo"))
	}
	b.add(famMemTotal, total)
	b.add(famMemAvail, avail)
	b.add(famMemUsed, (total-avail)/total)
	b.add(famSwapTotal, kv["SwapTotal"])
	b.add(famSwapFree, kv["SwapFree"])
	return nil
}

func (h *Host) load(b *Batch) error {
	data, err := os.ReadFile(filepath.Join(h.proc, "loadavg"))
	if err != nil {
		return fmt.Errorf("host load: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return fmt.Errorf("host load: unexpected %s: %q", filepath.Join(h.proc, "loadavg"), data)
	}
	for i, period := range []string{"1m", "5m", "15m"} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return fmt.Errorf("host load: bad number %q", f[i])
		}
		b.add(famLoad, v, period)
	}
	return nil
}

func (h *Host) disks(b *Batch) error {
	mounts, err := readMountPoints(filepath.Join(h.proc, "self", "mountinfo"))
	if err != nil {
		return fmt.Errorf("host disks: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for _, p := range h.paths {
		path, err := existingAncestor(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("host disks: %s: %w", p, err))
			continue
		}
		mount := mountPointOf(mounts, path)
		if seen[mount] {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			errs = append(errs, fmt.Errorf("host disks: statfs %s: %w", path, err))
			continue
		}
		seen[mount] = true
		bs := float64(st.Bsize)
		size := float64(st.Blocks) * bs
		avail := float64(st.Bavail) * bs
		used := float64(st.Blocks-st.Bfree) * bs
		b.add(famDiskSize, size, mount)
		b.add(famDiskAvail, avail, mount)
		if used+avail > 0 {
			b.add(famDiskUsed, used/(used+avail), mount)
		}
	}
	return errors.Join(errs...)
}

// existingAncestor resolves symlinks of the longest existing prefix of p.
func existingAncestor(p string) (string, error) {
	p = filepath.Clean(p)
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return real, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}

// readMountPoints returns the mount points of mountinfo (field 5, octal escapes undone).
func readMountPoints(path string) ([]string, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- procfs
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountPointOf is the longest mount point containing path ("/" when none matches).
func mountPointOf(mounts []string, path string) string {
	best := "/"
	for _, m := range mounts {
		if (path == m || strings.HasPrefix(path, strings.TrimSuffix(m, "/")+"/")) && len(m) > len(best) {
			best = m
		}
	}
	return best
}

func (h *Host) network(b *Batch) error {
	data, err := os.ReadFile(filepath.Join(h.proc, "net", "dev"))
	if err != nil {
		return fmt.Errorf("host network: %w", err)
	}
	type dev struct {
		name   string
		rx, tx float64
	}
	var devs []dev
	for line := range strings.SplitSeq(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if slices.ContainsFunc(virtualNetPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		rx, err1 := strconv.ParseFloat(f[0], 64)
		tx, err2 := strconv.ParseFloat(f[8], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		devs = append(devs, dev{name, rx, tx})
	}
	slices.SortFunc(devs, func(a, b dev) int { return strings.Compare(a.name, b.name) })
	for _, d := range devs[:min(len(devs), maxNetDevices)] {
		b.add(famNetRx, d.rx, d.name)
		b.add(famNetTx, d.tx, d.name)
	}
	return nil
}

// pressure reads /proc/pressure (PSI), where the kernel has it.
func (h *Host) pressure(b *Batch) error {
	for _, res := range []string{"cpu", "memory", "io"} {
		data, err := os.ReadFile(filepath.Join(h.proc, "pressure", res))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
			continue // kernel without PSI (or psi=0)
		}
		if err != nil {
			return fmt.Errorf("host pressure: %w", err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			var total float64
			found := false
			for _, kv := range f[1:] {
				if v, ok := strings.CutPrefix(kv, "total="); ok {
					n, err := strconv.ParseFloat(v, 64)
					if err != nil {
						return fmt.Errorf("host pressure %s: bad total %q", res, v)
					}
					total, found = n/1e6, true // microseconds
				}
			}
			if !found {
				continue
			}
			switch f[0] {
			case "some":
				b.add(famPSIWaiting, total, res)
			case "full":
				b.add(famPSIStalled, total, res)
			}
		}
	}
	return nil
}
