// Package check is `corpintel check`, the seed's validate-deployment.sh: a preflight
// of the host before anything is installed (Pre: Docker, CPU/RAM/disk against the
// seed's resource table and the hard minimums, ports 80/443, clock, the data and backup
// directories, the data disk's fsync latency, the domain) and a post-deploy check of
// the running appliance (Post: the supervisor and every service, an API smoke test
// with a dedicated check account, the TLS chain with HSTS and the certificate's
// lifetime, the last backup per tier, the last restore drill, the alert channels, and
// nothing but the edge listening on non-loopback addresses).
//
// Every result is ok, warn, fail or "not configured" — the last for checks whose
// feature is not there (the supervisor's status has no backups yet, no alert routes):
// such a check never says ok. A report's exit code is 0 (ok), 1 (warnings) or 2
// (failures); every warning and failure says what to do next.
package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Status of one result.
type Status string

// The statuses, in rising order of severity ("not configured" counts like ok for the
// exit code: the feature is absent, nothing is wrong with the deployment).
const (
	OK            Status = "ok"
	NotConfigured Status = "not configured"
	Warn          Status = "warn"
	Fail          Status = "fail"
)

// Result is one line of a report.
type Result struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do next (warnings, failures, not configured).
	Fix string `json:"fix,omitempty"`
}

// Report is a whole check run.
type Report struct {
	Kind    string        `json:"kind"` // "pre" or "post"
	At      time.Time     `json:"at"`
	Took    time.Duration `json:"took_ns"`
	Results []Result      `json:"results"`
}

// ExitCode is 0 when nothing is wrong, 1 with warnings, 2 with failures.
func (r Report) ExitCode() int {
	code := 0
	for _, res := range r.Results {
		switch res.Status {
		case Fail:
			return 2
		case Warn:
			code = 1
		}
	}
	return code
}

// Counts says how many results have each status.
func (r Report) Counts() map[Status]int {
	m := map[Status]int{}
	for _, res := range r.Results {
		m[res.Status]++
	}
	return m
}

// Find returns the first result of a check (tests, scripts).
func (r Report) Find(check string) (Result, bool) {
	for _, res := range r.Results {
		if res.Check == check {
			return res, true
		}
	}
	return Result{}, false
}

// WriteTable renders the report for people: one line per check, then the fixes.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Check, strings.ToUpper(string(res.Status)), res.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var fixes []string
	for _, res := range r.Results {
		if res.Fix != "" && res.Status != OK {
			fixes = append(fixes, fmt.Sprintf("  %s: %s", res.Check, res.Fix))
		}
	}
	if len(fixes) > 0 {
		fmt.Fprintf(w, "\nwhat to do:\n%s\n", strings.Join(fixes, "\n"))
	}
	c := r.Counts()
	verdict := map[int]string{0: "ok", 1: "warnings", 2: "failures"}[r.ExitCode()]
	_, err := fmt.Fprintf(w, "\n%s check: %s (%d ok, %d warnings, %d failures, %d not configured) in %s\n", r.Kind, verdict,
		c[OK], c[Warn], c[Fail], c[NotConfigured], r.Took.Round(time.Millisecond))
	return err
}

// WriteJSON renders the report for scripts.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Report
		ExitCode int `json:"exit_code"`
	}{r, r.ExitCode()})
}

// collector accumulates results.
type collector struct{ results []Result }

func (c *collector) add(check string, st Status, msg, fix string) {
	c.results = append(c.results, Result{Check: check, Status: st, Message: msg, Fix: fix})
}

func (c *collector) ok(check, format string, args ...any) {
	c.add(check, OK, fmt.Sprintf(format, args...), "")
}

// Resource table of the seed (recommended) and the hard minimums (DESIGN.md).
const (
	minCPUs     = 2
	minMemory   = 4 << 30
	minDiskFree = 20 << 30
	// Recommended without the monitoring containers (API, PostgreSQL, Redis, MinIO)
	// and with them (+2 cores, 4 GB, 50 GB).
	recCPUs, recCPUsMonitoring     = 6, 8
	recMemory, recMemoryMonitoring = 12 << 30, 16 << 30
	recDisk, recDiskMonitoring     = 320 << 30, 370 << 30
)

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", n>>10)
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + humanDuration(-d)
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.0f h", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return d.Round(time.Second).String()
}
