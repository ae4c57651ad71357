package reconcile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// HostResources returns the host's usable cores (respecting CPU affinity) and total
// memory in bytes, for clamping limits and deriving settings.
func HostResources() (cpus int, memory int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return runtime.NumCPU(), 0, fmt.Errorf("host memory: %w", err)
	}
	defer f.Close()
	memory, err = parseMemTotal(f)
	return runtime.NumCPU(), memory, err
}

// parseMemTotal reads MemTotal (kB) from /proc/meminfo.
func parseMemTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("host memory: parse %q: %w", sc.Text(), err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("host memory: %w", err)
	}
	return 0, fmt.Errorf("host memory: no MemTotal in /proc/meminfo")
}
