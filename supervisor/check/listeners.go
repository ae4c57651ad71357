package check

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Listener is one listening TCP socket of this network namespace.
type Listener struct {
	IP      net.IP
	Port    int
	Inode   uint64
	PID     int    // 0 when no process of ours holds it (another namespace, not root)
	Process string // the process's comm ("corpintel", "docker-proxy", "sshd")
}

func (l Listener) who() string {
	if l.PID == 0 {
		return "a process this check may not inspect (run it as root)"
	}
	return fmt.Sprintf("%s (pid %d)", l.Process, l.PID)
}

func (l Listener) addr() string { return net.JoinHostPort(l.IP.String(), strconv.Itoa(l.Port)) }

// ReadListeners lists the TCP sockets in LISTEN state (/proc/net/tcp and tcp6) with
// the process holding each (from /proc/<pid>/fd; complete only as root).
func ReadListeners() ([]Listener, error) {
	return readListeners("/proc")
}

func readListeners(proc string) ([]Listener, error) {
	var out []Listener
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		fh, err := os.Open(filepath.Join(proc, f)) // #nosec G304 -- /proc
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ls, err := parseProcNetTCP(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, ls...)
	}
	owners := socketOwners(proc)
	for i := range out {
		if o, ok := owners[out[i].Inode]; ok {
			out[i].PID, out[i].Process = o.pid, o.comm
		}
	}
	return out, nil
}

// parseProcNetTCP reads the LISTEN (state 0A) lines of /proc/net/tcp{,6}.
func parseProcNetTCP(r io.Reader) ([]Listener, error) {
	var out []Listener
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		host, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		ip, err := parseHexIP(host)
		if err != nil {
			return nil, err
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return nil, err
		}
		inode, _ := strconv.ParseUint(f[9], 10, 64)
		out = append(out, Listener{IP: ip, Port: int(p), Inode: inode})
	}
	return out, sc.Err()
}

// parseHexIP decodes the kernel's address: 32-bit words in host byte order
// (little-endian on the machines corpintel runs on).
func parseHexIP(s string) (net.IP, error) {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, fmt.Errorf("address %q", s)
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip, nil
}

type owner struct {
	pid  int
	comm string
}

// socketOwners maps socket inodes to the processes holding them.
func socketOwners(proc string) map[uint64]owner {
	out := map[uint64]owner{}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(proc, e.Name(), "fd"))
		if err != nil {
			continue // not ours to read
		}
		var comm string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(proc, e.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(proc, e.Name(), "comm")) // #nosec G304 -- /proc
				comm = strings.TrimSpace(string(b))
			}
			if _, seen := out[inode]; !seen {
				out[inode] = owner{pid: pid, comm: comm}
			}
		}
	}
	return out
}

// listenerPolicy classifies a non-loopback listener: the edge's ports held by the
// supervisor are what should listen; a published container port (docker-proxy) or
// another port of the supervisor exposes what must stay on the stack network; sshd is
// how the machine is administered; anything else is worth a look.
func listenerPolicy(l Listener, edgePorts []int) (Status, string, string) {
	isEdge := false
	for _, p := range edgePorts {
		isEdge = isEdge || p == l.Port
	}
	switch {
	case isEdge && (l.Process == "corpintel" || l.PID == 0):
		return OK, fmt.Sprintf("%s: the edge (%s)", l.addr(), l.who()), ""
	case l.Process == "docker-proxy":
		return Fail, fmt.Sprintf("%s: a container publishes this port (docker-proxy, pid %d)", l.addr(), l.PID),
			fmt.Sprintf("nothing of the stack publishes ports; find it with `docker ps --filter publish=%d` and remove the -p option", l.Port)
	case l.Process == "corpintel":
		return Fail, fmt.Sprintf("%s: the supervisor listens here beyond the edge", l.addr()),
			"keep `listen` on a loopback address (it serves plain HTTP without TLS or rate limit)"
	case l.Process == "sshd":
		return OK, fmt.Sprintf("%s: sshd", l.addr()), ""
	}
	return Warn, fmt.Sprintf("%s: %s, not part of corpintel", l.addr(), l.who()),
		"make sure this should be reachable from the network, or bind it to 127.0.0.1 / firewall it"
}
