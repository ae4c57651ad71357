package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/corpintel/corpintel/supervisor/health"
)

// writeStatusTable renders a status report for people.
func writeStatusTable(w io.Writer, r health.StatusReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREPLICAS\tSTATE\tHEALTH\tUPTIME\tRESTARTS\tIMAGE\tCPU %\tMEMORY")
	for _, s := range r.Services {
		uptime := "-"
		if !s.StartedAt.IsZero() && s.Running > 0 {
			uptime = humanDuration(now.Sub(s.StartedAt))
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%d\t%s\t%.1f\t%s\n", s.Service, s.Running, s.Desired, s.State,
			s.Health, uptime, s.Restarts, cmp.Or(s.Image, "-"), s.CPUPercent, humanBytes(s.MemoryBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Services {
		switch {
		case s.Backoff != "" && !s.NextAttempt.IsZero():
			fmt.Fprintf(w, "\n%s: backing off — next attempt at %s (in %s): %s\n", s.Service,
				s.NextAttempt.UTC().Format(time.RFC3339), humanDuration(s.NextAttempt.Sub(now)), s.Backoff)
		case s.Backoff != "":
			fmt.Fprintf(w, "\n%s: backing off: %s\n", s.Service, s.Backoff)
		}
		if s.Held != "" {
			fmt.Fprintf(w, "\n%s: held: %s\n", s.Service, s.Held)
		}
	}
	if op := r.Operation; op != nil {
		fmt.Fprintf(w, "\nOperation: %s running since %s (%s ago)", op.Name(), op.StartedAt.UTC().Format(time.RFC3339), humanDuration(now.Sub(op.StartedAt)))
		if st := op.LastStep(); st != "" {
			fmt.Fprintf(w, ", step %s", st)
		}
		if len(op.Services) > 0 {
			fmt.Fprintf(w, "; owns %v", op.Services)
		}
		fmt.Fprintln(w)
	}
	if r.Maintenance != "" {
		fmt.Fprintf(w, "\nMaintenance: the API answers 503 while %s runs\n", r.Maintenance)
	}
	if r.TLS != nil {
		fmt.Fprintf(w, "\nTLS (%s):", r.TLS.Mode)
		served := map[string]time.Time{}
		for _, p := range r.TLSServed {
			if p.Error == "" {
				served[p.Name] = p.NotAfter
			}
		}
		for _, c := range r.TLS.Certificates {
			line := fmt.Sprintf(" %s expires %s", c.Name, c.NotAfter.UTC().Format(time.RFC3339))
			if na, ok := served[c.Name]; ok && !na.Equal(c.NotAfter) {
				line += fmt.Sprintf(" (served: %s)", na.UTC().Format(time.RFC3339))
			}
			if c.LastError != "" {
				line += fmt.Sprintf("; last renewal attempt %s failed: %s", c.LastAttempt.UTC().Format(time.RFC3339), c.LastError)
			}
			fmt.Fprint(w, "\n  "+line)
		}
		fmt.Fprintln(w)
	}
	for _, op := range r.Interrupted {
		fmt.Fprintf(w, "\nInterrupted: %s (started %s) — %s\n", op.Name(), op.StartedAt.UTC().Format(time.RFC3339), op.Error)
	}
	switch {
	case !r.Supervisor:
		fmt.Fprintln(w, "\nNo supervisor is running: nothing repairs the stack. Start it with `corpintel supervisor` or `systemctl start corpintel`.")
	}
	switch {
	case r.Stopped:
		fmt.Fprintln(w, "\nThe stack was stopped with `corpintel stop`; `corpintel start` brings it up again.")
	case r.LastError != "":
		fmt.Fprintf(w, "\nLast reconcile failed: %s\n", r.LastError)
	}
	_, err := fmt.Fprintf(w, "\nAPI: http://%s (health: /health)\n", r.Listen)
	return err
}

// writeStatusJSON renders a status report for scripts.
func writeStatusJSON(w io.Writer, r health.StatusReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
