package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor/check"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newCheckCmd) }

// checkExit is a check's verdict as the exit status (1 warnings, 2 failures).
type checkExit struct {
	code int
	msg  string
}

func (e checkExit) Error() string { return e.msg }
func (e checkExit) ExitCode() int { return e.code }

func verdict(r check.Report) error {
	c := r.Counts()
	switch r.ExitCode() {
	case 2:
		return checkExit{2, fmt.Sprintf("check: %d failure(s), %d warning(s)", c[check.Fail], c[check.Warn])}
	case 1:
		return checkExit{1, fmt.Sprintf("check: %d warning(s)", c[check.Warn])}
	}
	return nil
}

type checkFlags struct {
	clientFlags
	pre, asJSON, setup                   bool
	backupDir, accountFile               string
	adminEmail, adminPasswordFile, email string
	waitHealthy                          time.Duration
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check [--pre] [--json]",
		Short: "Check the deployment: --pre before installing (host, Docker, ports, disks), otherwise the running appliance (exit 0 ok, 1 warnings, 2 failures)",
		Long: `Check the deployment (the seed's validate-deployment.sh).

  corpintel check --pre   before installing: Docker and its version, CPU/RAM/disk against
                          the seed's resource table (warnings) and the hard minimums
                          (failures: 2 cores, 4 GB RAM, 20 GB free), ports 80/443 free,
                          clock synchronised, state and backup dirs writable, the data
                          disk's fsync latency, the domain resolving here
  corpintel check         the running appliance: the supervisor and every service, an API
                          smoke test with the check account, TLS (chain, lifetime, HSTS),
                          backups per tier, the last restore drill, alert channels, and
                          nothing but the edge listening on non-loopback addresses
  corpintel check tls     the ACME preflight of the certificate manager

Checks whose feature this build lacks say "not configured", never "ok". Every warning
and failure says what to do next. Exit status: 0 ok, 1 warnings, 2 failures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, &f) },
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.profile, "profile", "", "profile: dev, staging or prod")
	cmd.Flags().BoolVar(&f.pre, "pre", false, "preflight of the host before installing (no supervisor needed)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&f.backupDir, "backup-dir", "", "the backup root to check (default: the config's backup.root)")
	cmd.Flags().StringVar(&f.accountFile, "account-file", check.DefaultAccountFile, "the check account of the API smoke test")
	cmd.Flags().DurationVar(&f.waitHealthy, "wait-healthy", 0, "wait up to this long for the supervisor and every service to be healthy, then exit (0 healthy, 2 not in time)")
	cmd.Flags().BoolVar(&f.setup, "setup-account", false, "create the check account (an analyst) with an admin's credentials, and exit")
	cmd.Flags().StringVar(&f.adminEmail, "admin-email", "", "with --setup-account: an admin's e-mail")
	cmd.Flags().StringVar(&f.adminPasswordFile, "admin-password-file", "", "with --setup-account: a file with that admin's password")
	cmd.Flags().StringVar(&f.email, "email", "", "with --setup-account: the check account's e-mail (default corpintel-check@localhost)")
	cmd.AddCommand(newCheckTLSCmd())
	return cmd
}

func runCheck(cmd *cobra.Command, f *checkFlags) error {
	cfg, err := f.load(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	switch {
	case f.setup:
		return setupCheckAccount(ctx, cfg, f, out)
	case f.waitHealthy > 0:
		return waitHealthy(ctx, cfg, f, cmd.ErrOrStderr())
	}
	var rep check.Report
	if f.pre {
		o := check.PreOptions{Config: cfg, Host: check.RealHost(), BackupDir: f.backupDir}
		if o.BackupDir == "" {
			o.BackupDir = configValue(cfg, "backup", "root")
		}
		eng, err := docker.New(ctx)
		if err != nil {
			o.EngineErr = err
		} else {
			defer eng.Close()
			o.Engine = eng
		}
		rep = check.Pre(ctx, o)
	} else {
		rep = check.Post(ctx, check.PostOptions{Config: cfg, Supervisor: f.supervisor(cfg), Host: check.RealHost(), AccountFile: f.accountFile})
	}
	if f.asJSON {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteTable(out)
	}
	if err != nil {
		return err
	}
	return verdict(rep)
}

func (f *checkFlags) supervisor(cfg *config.Config) *localapi.Client {
	if f.socket != "" {
		return localapi.NewClient(f.socket)
	}
	return localapi.NewClient(cfg.Socket)
}

// waitHealthy polls the post-deploy check's supervisor and service results until they
// pass or the time is up (the installer's wait for a healthy stack).
func waitHealthy(ctx context.Context, cfg *config.Config, f *checkFlags, stderr io.Writer) error {
	deadline := time.Now().Add(f.waitHealthy)
	sup := f.supervisor(cfg)
	var last check.Report
	for {
		last = check.Post(ctx, check.PostOptions{Config: cfg, Supervisor: sup, StackOnly: true})
		bad := stackProblems(last)
		if len(bad) == 0 {
			fmt.Fprintf(stderr, "corpintel: the supervisor and every service are healthy\n")
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			for _, r := range bad {
				fmt.Fprintf(stderr, "  %s: %s\n", r.Check, r.Message)
			}
			return checkExit{2, fmt.Sprintf("check: not healthy within %s", f.waitHealthy)}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second): // polling interval
		}
	}
}

// stackProblems are the supervisor's and the services' results that are not ok.
func stackProblems(r check.Report) []check.Result {
	var bad []check.Result
	for _, res := range r.Results {
		if (res.Check == "supervisor" || res.Check == "services" || strings.HasPrefix(res.Check, "service ")) && res.Status != check.OK {
			bad = append(bad, res)
		}
	}
	return bad
}

func setupCheckAccount(ctx context.Context, cfg *config.Config, f *checkFlags, out io.Writer) error {
	if f.adminEmail == "" || f.adminPasswordFile == "" {
		return usagef("--setup-account needs --admin-email and --admin-password-file")
	}
	pw, err := os.ReadFile(f.adminPasswordFile)
	if err != nil {
		return fmt.Errorf("admin password: %w", err)
	}
	a, err := check.SetupAccount(ctx, check.SetupOptions{API: "http://" + cfg.Listen, AdminEmail: f.adminEmail,
		AdminPassword: string(bytes.TrimRight(pw, "\r\n")), Email: f.email, File: f.accountFile})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "check account %s ready (%s)\n", a.Email, f.accountFile)
	return err
}

// configValue reads a key of the config by its TOML path, whatever struct holds it
// (sections added by other parts, like [backup], need no code here).
func configValue(cfg *config.Config, path ...string) string {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return ""
	}
	var m map[string]any
	if _, err := toml.Decode(buf.String(), &m); err != nil {
		return ""
	}
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}
