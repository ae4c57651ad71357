package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"golang.org/x/sys/unix"
)

// EngineInfo is the Docker Engine as the preflight sees it (internal/docker.Client).
type EngineInfo interface {
	Info(ctx context.Context) (docker.EngineInfo, error)
}

// Host is what the preflight reads of the machine; RealHost reads the real one.
type Host struct {
	CPUs      func() int
	Memory    func() (uint64, error)
	DiskFree  func(path string) (free, total uint64, err error)
	Clock     func() (synced bool, maxError time.Duration, err error)
	Listeners func() ([]Listener, error)
	Lookup    func(ctx context.Context, name string) ([]net.IP, error)
	LocalIPs  func() ([]net.IP, error)
	// Fsync measures the latency of small synchronous writes in dir.
	Fsync func(dir string, n int) ([]time.Duration, error)
}

// RealHost reads this machine.
func RealHost() Host {
	return Host{
		CPUs: runtime.NumCPU,
		Memory: func() (uint64, error) {
			var si unix.Sysinfo_t
			if err := unix.Sysinfo(&si); err != nil {
				return 0, err
			}
			return uint64(si.Totalram) * uint64(si.Unit), nil // #nosec G115 -- kernel counters
		},
		DiskFree:  diskFree,
		Clock:     clockSynced,
		Listeners: ReadListeners,
		Lookup: func(ctx context.Context, name string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", name)
		},
		LocalIPs: func() ([]net.IP, error) {
			addrs, err := net.InterfaceAddrs()
			var ips []net.IP
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					ips = append(ips, n.IP)
				}
			}
			return ips, err
		},
		Fsync: fsyncLatency,
	}
}

func diskFree(path string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize) // #nosec G115 -- block sizes are positive
	return st.Bavail * bs, st.Blocks * bs, nil
}

// clockSynced asks the kernel (adjtimex, read only) whether the clock is disciplined
// by NTP: chrony, systemd-timesyncd and ntpd all clear STA_UNSYNC.
func clockSynced() (bool, time.Duration, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, 0, err
	}
	synced := state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
	return synced, time.Duration(tx.Maxerror) * time.Microsecond, nil
}

// fsyncLatency writes n 4 KiB blocks to a temporary file in dir, each followed by
// fdatasync, and returns the latencies (what PostgreSQL's WAL and SQLite feel).
func fsyncLatency(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, ".corpintel-fsync-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	out := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if _, err := f.Write(block); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil { // #nosec G115 -- file descriptors fit in int
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

// PreOptions are the preflight's inputs.
type PreOptions struct {
	Config *config.Config
	// Engine is the connected engine, or nil with EngineErr saying why not.
	Engine    EngineInfo
	EngineErr error
	Host      Host
	// BackupDir is where backups go ("" when the config has no backup section yet).
	BackupDir string
	Now       func() time.Time
}

// Pre runs the preflight.
func Pre(ctx context.Context, o PreOptions) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	start := o.Now()
	c := &collector{}
	cfg := o.Config
	dockerRoot := preDocker(ctx, c, o)
	preResources(c, o, dockerRoot)
	prePorts(c, o)
	preClock(c, o.Host)
	preDirs(c, o, dockerRoot)
	preDomain(ctx, c, cfg, o.Host)
	return Report{Kind: "pre", At: start.UTC(), Took: o.Now().Sub(start), Results: c.results}
}

// dockerMinVersion is the oldest engine corpintel is tested with (API 1.41).
const dockerMinVersion = 20

func preDocker(ctx context.Context, c *collector, o PreOptions) string {
	if o.Engine == nil {
		c.add("docker", Fail, fmt.Sprintf("the Docker Engine does not answer: %v", o.EngineErr),
			"install Docker Engine from your distribution (Debian/Ubuntu: apt-get install docker.io; Fedora: dnf install moby-engine; RHEL: Docker's docker-ce repository), then systemctl enable --now docker")
		return ""
	}
	info, err := o.Engine.Info(ctx)
	if err != nil {
		c.add("docker", Fail, "the Docker Engine does not describe itself: "+err.Error(), "check `docker info` and the daemon's log (journalctl -u docker)")
		return ""
	}
	major, _ := strconv.Atoi(strings.SplitN(info.Version, ".", 2)[0])
	msg := fmt.Sprintf("Docker Engine %s (API %s, %s storage, data in %s)", info.Version, info.APIVersion, info.StorageDriver, info.RootDir)
	switch {
	case major > 0 && major < dockerMinVersion:
		c.add("docker", Fail, msg+": older than 20.10", "upgrade Docker Engine to 20.10 or newer")
	case info.StorageDriver == "vfs":
		c.add("docker", Warn, msg+": vfs copies every layer in full (slow, large)", "use overlay2 (the default on ext4 and xfs) unless Docker runs nested")
	default:
		c.ok("docker", "%s", msg)
	}
	return info.RootDir
}

func preResources(c *collector, o PreOptions, dockerRoot string) {
	recC, recM, recD := recCPUs, uint64(recMemory), uint64(recDisk)
	if o.Config.Monitoring {
		recC, recM, recD = recCPUsMonitoring, recMemoryMonitoring, recDiskMonitoring
	}
	cpus := o.Host.CPUs()
	switch {
	case cpus < minCPUs:
		c.add("cpu", Fail, fmt.Sprintf("%d core(s); the minimum is %d", cpus, minCPUs), "give the machine at least 2 cores")
	case cpus < recC:
		c.add("cpu", Warn, fmt.Sprintf("%d cores; the seed's resource table recommends %d", cpus, recC), "fine for small loads; add cores before production traffic")
	default:
		c.ok("cpu", "%d cores (recommended %d)", cpus, recC)
	}
	mem, err := o.Host.Memory()
	switch {
	case err != nil:
		c.add("memory", Warn, "cannot read the memory size: "+err.Error(), "check /proc is mounted")
	case mem < minMemory:
		c.add("memory", Fail, fmt.Sprintf("%s; the minimum is 4 GB", humanBytes(mem)), "give the machine at least 4 GB of RAM")
	case mem < recM:
		c.add("memory", Warn, fmt.Sprintf("%s; the seed's resource table recommends %s", humanBytes(mem), humanBytes(recM)), "lower the services' memory limits in the config, or add RAM")
	default:
		c.ok("memory", "%s (recommended %s)", humanBytes(mem), humanBytes(recM))
	}
	if dockerRoot == "" {
		return
	}
	free, total, err := o.Host.DiskFree(dockerRoot)
	switch {
	case err != nil:
		c.add("disk", Warn, fmt.Sprintf("cannot read the free space of %s: %v", dockerRoot, err), "check the Docker data root exists")
	case free < minDiskFree:
		c.add("disk", Fail, fmt.Sprintf("%s free on %s (Docker's data: images and volumes); the minimum is 20 GB", humanBytes(free), dockerRoot), "free space or move Docker's data-root to a bigger disk")
	case total < recD:
		c.add("disk", Warn, fmt.Sprintf("%s free of %s on %s; the seed's resource table recommends %s", humanBytes(free), humanBytes(total), dockerRoot, humanBytes(recD)), "plan a bigger disk before the data grows (PostgreSQL 100 GB, MinIO 200 GB in the seed)")
	default:
		c.ok("disk", "%s free of %s on %s", humanBytes(free), humanBytes(total), dockerRoot)
	}
}

// prePorts checks that the public ports are free (or already the supervisor's).
func prePorts(c *collector, o PreOptions) {
	var ls []Listener
	if o.Host.Listeners != nil {
		ls, _ = o.Host.Listeners()
	}
	for _, addr := range []string{o.Config.Edge.HTTPS, o.Config.Edge.HTTP} {
		if addr == "" {
			continue
		}
		name := "port " + addr
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if owner, ok := portOwner(ls, port); ok {
			if owner.Process == "corpintel" {
				c.ok(name, "in use by the corpintel supervisor (pid %d)", owner.PID)
			} else {
				c.add(name, Fail, fmt.Sprintf("in use by %s", owner.who()), fmt.Sprintf("stop what listens on port %d (ss -ltnp 'sport = :%d'), or set edge.https/edge.http to other addresses", port, port))
			}
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fix := fmt.Sprintf("free port %d, or set edge.https/edge.http", port)
			if errors.Is(err, unix.EACCES) {
				fix = "run the check as root (ports below 1024)"
			}
			c.add(name, Fail, "cannot bind: "+err.Error(), fix)
			continue
		}
		_ = ln.Close()
		c.ok(name, "free")
	}
}

func portOwner(ls []Listener, port int) (Listener, bool) {
	for _, l := range ls {
		if l.Port == port {
			return l, true
		}
	}
	return Listener{}, false
}

func preClock(c *collector, h Host) {
	synced, maxErr, err := h.Clock()
	switch {
	case err != nil:
		c.add("clock", Warn, "cannot ask the kernel about time synchronisation: "+err.Error(), "check timedatectl")
	case !synced:
		c.add("clock", Warn, "the clock is not synchronised (no NTP discipline): certificates, tokens and backup schedules depend on it",
			"enable time synchronisation: timedatectl set-ntp true (systemd-timesyncd) or install chrony")
	default:
		c.ok("clock", "synchronised (estimated error %s)", maxErr.Round(time.Millisecond))
	}
}

// preDirs checks that the state and backup directories can be created and written,
// their free space, and the fsync latency of the data disks.
func preDirs(c *collector, o PreOptions, dockerRoot string) {
	dirs := []struct{ check, dir string }{{"state dir", o.Config.StateDir}}
	if o.BackupDir != "" {
		dirs = append(dirs, struct{ check, dir string }{"backup dir", o.BackupDir})
	} else {
		c.add("backup dir", NotConfigured, "the config has no backup section (backups are not part of this build)", "")
	}
	fsyncDirs := map[string]string{}
	for _, d := range dirs {
		at, err := writable(d.dir)
		if err != nil {
			c.add(d.check, Fail, fmt.Sprintf("%s: %v", d.dir, err), "create it (or its parent) writable by root, on a local disk")
			continue
		}
		free, _, err := o.Host.DiskFree(at)
		switch {
		case err != nil:
			c.add(d.check, Warn, fmt.Sprintf("%s is writable; free space unknown: %v", d.dir, err), "")
		case free < minDiskFree:
			c.add(d.check, Warn, fmt.Sprintf("%s is writable; %s free", d.dir, humanBytes(free)), "backups and the state need room: free space or choose another disk")
		default:
			c.ok(d.check, "%s is writable, %s free", d.dir, humanBytes(free))
		}
		fsyncDirs[d.check] = at
	}
	if dockerRoot != "" {
		if st, err := os.Stat(dockerRoot); err == nil && st.IsDir() {
			fsyncDirs["docker data"] = dockerRoot
		}
	}
	// One measurement per file system.
	seen := map[uint64]bool{}
	names := make([]string, 0, len(fsyncDirs))
	for n := range fsyncDirs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dir := fsyncDirs[n]
		var st unix.Stat_t
		if unix.Stat(dir, &st) == nil {
			if seen[st.Dev] {
				continue
			}
			seen[st.Dev] = true
		}
		fsyncCheck(c, o.Host, "fsync "+n, dir)
	}
}

// writable returns the directory a write test ran in: dir itself, or the nearest
// existing parent when dir does not exist yet (the installer creates it).
func writable(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", errors.New("not an absolute path")
	}
	at := dir
	for {
		st, err := os.Stat(at)
		if err == nil {
			if !st.IsDir() {
				return "", fmt.Errorf("%s is not a directory", at)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || at == "/" {
			return "", err
		}
		at = filepath.Dir(at)
	}
	f, err := os.CreateTemp(at, ".corpintel-check-")
	if err != nil {
		return "", fmt.Errorf("not writable: %w", err)
	}
	name := f.Name()
	_, werr := f.WriteString("corpintel check\n")
	err = errors.Join(werr, f.Sync(), f.Close(), os.Remove(name))
	if err != nil {
		return "", fmt.Errorf("write test: %w", err)
	}
	return at, nil
}

// Thresholds of the fsync check: SSDs and cloud block storage answer in well under a
// millisecond to a few; spinning disks and overloaded network storage take 10 ms and
// more, which PostgreSQL's commits and the state store feel directly.
const (
	fsyncSamples = 20
	fsyncWarn    = 10 * time.Millisecond
)

func fsyncCheck(c *collector, h Host, name, dir string) {
	lat, err := h.Fsync(dir, fsyncSamples)
	if err != nil || len(lat) == 0 {
		c.add(name, Warn, fmt.Sprintf("cannot measure in %s: %v", dir, err), "")
		return
	}
	slices.Sort(lat)
	p50, worst := lat[len(lat)/2], lat[len(lat)-1]
	msg := fmt.Sprintf("%s: median %s, worst %s over %d synchronous 4 KiB writes", dir, p50.Round(10*time.Microsecond), worst.Round(10*time.Microsecond), len(lat))
	if p50 > fsyncWarn {
		c.add(name, Warn, msg, "put the data on an SSD or faster block storage: every database commit waits for one of these")
		return
	}
	c.ok(name, "%s", msg)
}

// preDomain checks that the configured names resolve to this machine.
func preDomain(ctx context.Context, c *collector, cfg *config.Config, h Host) {
	var names []string
	for _, n := range cfg.TLS.Names {
		if net.ParseIP(n) == nil && n != "localhost" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		if cfg.TLS.Mode == "acme" {
			c.add("domain", Warn, "no domain configured (tls.names): the edge serves a self-signed certificate", "set the domain: INSTALL_CORPINTEL_DOMAIN=… for the installer, or tls.names in the config")
		} else {
			c.add("domain", NotConfigured, fmt.Sprintf("no domain configured (tls.mode %s)", cfg.TLS.Mode), "")
		}
		return
	}
	local, _ := h.LocalIPs()
	for _, n := range names {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ips, err := h.Lookup(lctx, n)
		cancel()
		check := "domain " + n
		sev := Warn
		if cfg.TLS.Mode == "acme" {
			sev = Fail // no certificate without it
		}
		if err != nil || len(ips) == 0 {
			c.add(check, sev, fmt.Sprintf("does not resolve: %v", err), "create the DNS A/AAAA record pointing at this machine's public address")
			continue
		}
		if slices.ContainsFunc(ips, func(ip net.IP) bool { return slices.ContainsFunc(local, ip.Equal) }) {
			c.ok(check, "resolves to %s, an address of this machine", joinIPs(ips))
			continue
		}
		c.add(check, Warn, fmt.Sprintf("resolves to %s, not an address of this machine", joinIPs(ips)),
			"behind NAT that is expected if ports 80 and 443 are forwarded here; otherwise fix the DNS record")
	}
}

func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
