package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corpintel/corpintel/supervisor"
	"github.com/corpintel/corpintel/supervisor/alerts"
)

func init() { commands = append(commands, newAlertsCmd) }

func newAlertsCmd() *cobra.Command {
	var flags clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Show active and recently resolved alerts, silences and notification channels",
		Long: `Show the alerts the supervisor evaluates: active (pending and firing, with why a firing
one is not notified: silenced, inhibited or held during an operation), those resolved in
the last day, the silences and how each notification channel delivers.

  corpintel alerts silence RULE --for 2h --comment "why"   silence a rule (or --match label=value)
  corpintel alerts unsilence ID                            end a silence now
  corpintel alerts test --channel NAME                     send a test notification
  corpintel alerts export --prometheus                     the rules as a Prometheus rule file`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			snap, err := c.Alerts(cmd.Context())
			if err != nil {
				return asUsage(err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(snap)
			}
			return writeAlerts(cmd.OutOrStdout(), snap, time.Now())
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newSilenceCmd(), newUnsilenceCmd(), newAlertTestCmd(), newAlertExportCmd())
	return cmd
}

func newSilenceCmd() *cobra.Command {
	var flags clientFlags
	var forText, comment string
	var matchers []string
	cmd := &cobra.Command{
		Use:   "silence [RULE] --for DURATION --comment TEXT [--match 'label=value']...",
		Short: "Mute a rule's (or the matching) alerts for a while; the author is your unix user",
		Long: `Mute alerts: those of RULE (e.g. DiskSpaceLow; see ` + "`corpintel alerts export --prometheus`" + ` for the
rules), and/or those matching every --match (Alertmanager matchers: mount="/", service=~"api|redis").
The silence ends after --for (e.g. 30m, 2h, 3d) or with ` + "`corpintel alerts unsilence ID`" + `.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := alerts.SilenceRequest{Matchers: matchers, Comment: comment, Author: os.Getenv("SUDO_USER")}
			if len(args) == 1 {
				req.Rule = args[0]
			}
			if req.Rule == "" && len(matchers) == 0 {
				return usagef("name a rule (e.g. `corpintel alerts silence DiskSpaceLow --for 2h --comment ...`) or give --match")
			}
			if forText == "" {
				return usagef("--for is required (how long, e.g. 2h)")
			}
			d, err := parseSilenceDuration(forText)
			if err != nil {
				return err
			}
			req.For = d
			if strings.TrimSpace(comment) == "" {
				return usagef("--comment is required: say why, so the next person knows")
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			sl, err := c.Silence(cmd.Context(), req)
			if err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "silence %s: %s until %s (by %s)\n", sl.ID, sl.Matchers, sl.EndsAt.Local().Format(time.RFC3339), sl.CreatedBy)
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&forText, "for", "", "how long (30m, 2h, 3d)")
	cmd.Flags().StringVar(&comment, "comment", "", "why (required)")
	cmd.Flags().StringArrayVar(&matchers, "match", nil, `label matcher, e.g. mount="/var/backups" (repeatable)`)
	return cmd
}

// parseSilenceDuration reads Go durations and whole days ("3d").
func parseSilenceDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("--for must be a duration like 30m, 2h or 3d, got %q", s)
	}
	return d, nil
}

func newUnsilenceCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "unsilence ID",
		Short: "End a silence now (its id is in `corpintel alerts`)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			sl, err := c.Unsilence(cmd.Context(), args[0])
			if err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "silence %s ended\n", sl.ID)
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

// deliveryError makes `alerts test` exit 1 when the channel did not take the message.
type deliveryError struct{ msg string }

func (e deliveryError) Error() string { return e.msg }

func newAlertTestCmd() *cobra.Command {
	var flags clientFlags
	var channel string
	cmd := &cobra.Command{
		Use:   "test --channel NAME",
		Short: "Send a test notification through one channel and say whether it arrived",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if channel == "" {
				return usagef("--channel is required (the names are in `corpintel alerts`)")
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.TestChannel(cmd.Context(), channel)
			if err != nil {
				return asUsage(err)
			}
			if !res.OK {
				return deliveryError{fmt.Sprintf("test notification through %s failed after %d attempt(s): %s", channel, res.Attempts, res.Error)}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "test notification delivered through %s (%d attempt(s))\n", channel, res.Attempts)
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&channel, "channel", "", "the channel's name")
	return cmd
}

func newAlertExportCmd() *cobra.Command {
	var flags configFlags
	var prom bool
	var output string
	cmd := &cobra.Command{
		Use:   "export --prometheus [--output FILE]",
		Short: "Write the alert rules, as configured, as a Prometheus rule file (needs no running supervisor)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !prom {
				return usagef("say which format: --prometheus")
			}
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ac, err := supervisor.AlertsConfig(cfg)
			if err != nil {
				return usageError{err}
			}
			rules, err := alerts.ExportPrometheusRules(ac)
			if err != nil {
				return err
			}
			if output == "" {
				_, err = cmd.OutOrStdout().Write(rules)
				return err
			}
			if err := os.WriteFile(output, rules, 0o644); err != nil { // #nosec G306 -- a rule file Prometheus reads
				return fmt.Errorf("write %s: %w", output, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "rules written to %s\n", output)
			return err
		},
	}
	flags.register(cmd, true)
	cmd.Flags().BoolVar(&prom, "prometheus", false, "Prometheus rule file (YAML)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

// writeAlerts renders the alerts snapshot for people.
func writeAlerts(w io.Writer, s alerts.Snapshot, now time.Time) error {
	if s.LastError != "" {
		fmt.Fprintf(w, "The last evaluation failed: %s\n\n", s.LastError)
	}
	if op := s.Operation; op != nil {
		fmt.Fprintf(w, "Operation %s running since %s", op.Kind, op.Started.Local().Format(time.RFC3339))
		if !op.ExpectedEnd.IsZero() {
			fmt.Fprintf(w, ", expected to end %s", op.ExpectedEnd.Local().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(s.Active) == 0 {
		fmt.Fprintln(tw, "No active alerts.")
	} else {
		fmt.Fprintln(tw, "STATE\tSEVERITY\tALERT\tLABELS\tSINCE\tSUMMARY")
		for _, a := range s.Active {
			since := a.ActiveAt
			if !a.FiredAt.IsZero() {
				since = a.FiredAt
			}
			state := a.State
			if a.MutedBy != "" {
				state += " (muted)"
			}
			summary := a.Annotations["summary"]
			if a.MutedBy != "" {
				summary = strings.TrimPrefix(summary+" — "+a.MutedBy, " — ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\n", state, a.Labels["severity"], a.Rule, otherLabels(a.Labels), humanDuration(now.Sub(since)), cmp.Or(summary, "-"))
		}
	}
	if len(s.Recent) > 0 {
		fmt.Fprintln(tw, "\nRESOLVED\tSEVERITY\tALERT\tLABELS\tAT\tSUMMARY")
		for _, a := range s.Recent {
			fmt.Fprintf(tw, "resolved\t%s\t%s\t%s\t%s ago\t%s\n", a.Labels["severity"], a.Rule, otherLabels(a.Labels), humanDuration(now.Sub(a.ResolvedAt)),
				cmp.Or(a.Annotations["summary"], "-"))
		}
	}
	if len(s.Silences) > 0 {
		fmt.Fprintln(tw, "\nSILENCE\tSTATUS\tMATCHERS\tENDS\tBY\tCOMMENT")
		for _, sl := range s.Silences {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sl.ID, sl.Status, sl.Matchers, sl.EndsAt.Local().Format(time.RFC3339), sl.CreatedBy, sl.Comment)
		}
	}
	if len(s.Channels) > 0 {
		fmt.Fprintln(tw, "\nCHANNEL\tTYPE\tSTATE\tSENT\tFAILED\tLAST SUCCESS\tLAST ERROR")
		for _, c := range s.Channels {
			state := "ok"
			if !c.Healthy() {
				state = fmt.Sprintf("FAILING (%d in a row)", c.ConsecutiveFailures)
			}
			last := "-"
			if !c.LastSuccess.IsZero() {
				last = humanDuration(now.Sub(c.LastSuccess)) + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", c.Name, c.Type, state, c.Sent, c.Failed, last, cmp.Or(c.LastError, "-"))
		}
	} else {
		fmt.Fprintln(tw, "\nNo notification channels are configured: alerts are evaluated and listed here, but nobody is told. Add [[alerts.channels]] to the config.")
	}
	return tw.Flush()
}

// otherLabels prints the labels besides alertname and severity ("mount=/var").
func otherLabels(l alerts.Labels) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k != "alertname" && k != "severity" {
			parts = append(parts, k+"="+l[k])
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
