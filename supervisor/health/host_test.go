package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// values returns a batch's values as "name{v1,v2} value".
func batchValues(b *Batch) map[string]float64 {
	out := map[string]float64{}
	for _, v := range b.values {
		out[v.fam.name+"{"+strings.Join(v.labels, ",")+"}"] = v.v
	}
	return out
}

func writeProc(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHostFromProc(t *testing.T) {
	proc := t.TempDir()
	data := t.TempDir()
	spaced := filepath.Join(data, "with space")
	if err := os.Mkdir(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	escaped := strings.ReplaceAll(spaced, " ", `\040`)
	writeProc(t, proc, map[string]string{
		"stat": "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2\n",
		"meminfo": "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nSwapTotal:       0 kB\nSwapFree:        0 kB\n" +
			"HugePages_Total:       0\n",
		"loadavg": "0.50 0.25 0.10 1/100 1234\n",
		"self/mountinfo": "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" +
			"30 22 0:40 / " + escaped + " rw - tmpfs tmpfs rw\n",
		"net/dev": "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n" +
			"    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n" +
			"  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n" +
			"vethabcdef0123: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n" +
			"docker0: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n",
		"pressure/cpu":    "some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"pressure/memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
		// no pressure/io: a kernel without it for that resource
	})
	h := NewHost(HostOptions{Proc: proc, Paths: []string{"/", spaced, filepath.Join(spaced, "not", "yet"), data}})
	b := &Batch{}
	if err := h.Collect(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := batchValues(b)
	want := map[string]float64{
		"corpintel_host_cpu_seconds_total{user}":                1,
		"corpintel_host_cpu_seconds_total{idle}":                8,
		"corpintel_host_cpus{}":                                 2,
		"corpintel_host_load_average{1m}":                       0.5,
		"corpintel_host_load_average{15m}":                      0.1,
		"corpintel_host_memory_total_bytes{}":                   1000 * 1024,
		"corpintel_memory_used_ratio{}":                         0.75,
		"corpintel_host_network_receive_bytes_total{eth0}":      1000,
		"corpintel_host_network_transmit_bytes_total{eth0}":     2000,
		"corpintel_host_pressure_waiting_seconds_total{cpu}":    2.5,
		"corpintel_host_pressure_stalled_seconds_total{cpu}":    0,
		"corpintel_host_pressure_stalled_seconds_total{memory}": 0.5,
		"corpintel_host_pressure_waiting_seconds_total{memory}": 1,
		"corpintel_host_swap_total_bytes{}":                     0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "{lo}") || strings.Contains(k, "veth") || strings.Contains(k, "docker0") || strings.Contains(k, "{io}") {
			t.Errorf("unexpected series %s", k)
		}
	}
	if _, ok := got["corpintel_host_cpu_used_ratio{}"]; ok {
		t.Error("a CPU rate from a single reading")
	}
	// The mounts: "/" (which also holds data), and the escaped one holding the path
	// that does not exist yet — each once.
	mounts := map[string]bool{}
	for _, v := range b.values {
		if v.fam == famDiskUsed {
			mounts[v.labels[0]] = true
			if v.v < 0 || v.v > 1 {
				t.Errorf("used ratio of %s: %v", v.labels[0], v.v)
			}
		}
	}
	if len(mounts) != 2 || !mounts["/"] || !mounts[spaced] {
		t.Errorf("mounts %v", mounts)
	}

	// Second reading: 100 more ticks, 25 of them idle or iowait.
	writeProc(t, proc, map[string]string{"stat": "cpu  150 0 75 820 55 0 0 0 0 0\ncpu0 1\ncpu1 1\n"})
	b = &Batch{}
	if err := h.Collect(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := batchValues(b)["corpintel_host_cpu_used_ratio{}"]; got != 0.75 {
		t.Errorf("cpu used ratio %v, want 0.75", got)
	}
	// Counters that went back give no rate (and no error).
	writeProc(t, proc, map[string]string{"stat": "cpu  1 0 1 1 1 0 0 0 0 0\n"})
	b = &Batch{}
	if err := h.Collect(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, ok := batchValues(b)["corpintel_host_cpu_used_ratio{}"]; ok {
		t.Error("a rate across counters that went back")
	}
}

func TestHostErrors(t *testing.T) {
	proc := t.TempDir()
	h := NewHost(HostOptions{Proc: proc, Paths: []string{"/"}})
	err := h.Collect(context.Background(), &Batch{})
	for _, part := range []string{"host cpu", "host memory", "host load", "host disks", "host network"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("empty procfs: %v lacks %q", err, part)
		}
	}
	writeProc(t, proc, map[string]string{
		"stat":           "cpu  x 0 0 0\n",
		"meminfo":        "MemFree: 1 kB\n",
		"loadavg":        "0.1\n",
		"self/mountinfo": "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
		"net/dev":        "",
		"pressure/cpu":   "some total=zz\n",
	})
	b := &Batch{}
	err = h.Collect(context.Background(), b)
	for _, part := range []string{"bad number", "MemTotal/MemAvailable missing", "unexpected", "bad total"} {
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("bad procfs: %v lacks %q", err, part)
		}
	}
	if _, ok := batchValues(b)["corpintel_disk_used_ratio{/}"]; !ok {
		t.Error("one broken file stopped the others")
	}
	if NewHost(HostOptions{}).proc != "/proc" {
		t.Error("default procfs")
	}
}

func TestHostRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Skip("no procfs")
	}
	h := NewHost(HostOptions{Paths: []string{"/", t.TempDir()}})
	b := &Batch{}
	if err := h.Collect(context.Background(), b); err != nil {
		t.Fatalf("this machine's /proc: %v", err)
	}
	got := batchValues(b)
	if got["corpintel_host_cpus{}"] < 1 || got["corpintel_memory_used_ratio{}"] <= 0 {
		t.Errorf("cpus %v, memory %v", got["corpintel_host_cpus{}"], got["corpintel_memory_used_ratio{}"])
	}
	if _, ok := got["corpintel_disk_used_ratio{/}"]; !ok {
		t.Errorf("no / in %v", got)
	}
}

func TestMountHelpers(t *testing.T) {
	mounts := []string{"/", "/var", "/var/lib/docker", "/srv/"}
	for path, want := range map[string]string{"/var/lib/docker/volumes": "/var/lib/docker", "/var/lib": "/var", "/variable": "/",
		"/srv/x": "/srv/", "/": "/"} {
		if got := mountPointOf(mounts, path); got != want {
			t.Errorf("mountPointOf(%s) = %s, want %s", path, got, want)
		}
	}
	if got := unescapeMount(`/a\040b\011c\\x`); got != "/a b\tc\\\\x" {
		t.Errorf("unescape %q", got)
	}
	dir := t.TempDir()
	if got, err := existingAncestor(filepath.Join(dir, "a", "b")); err != nil || got != dir {
		t.Errorf("existingAncestor = %q, %v; want %q", got, err, dir)
	}
}
