package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/corpintel/corpintel/internal/stack"
	"github.com/corpintel/corpintel/supervisor/localapi"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newStatusCmd, newLogsCmd, newRestartCmd, newScaleCmd, newStopCmd, newStartCmd, newCreateAdminVerb, newPsqlCmd, newConfigCmd)
}

// clientFlags find the running supervisor's socket: --socket, else the config's.
type clientFlags struct {
	configFlags
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd, false)
	cmd.Flags().StringVar(&f.socket, "socket", "", "the supervisor's local API socket (default from the config)")
}

func (f *clientFlags) client(cmd *cobra.Command) (*localapi.Client, error) {
	if f.socket != "" {
		return localapi.NewClient(f.socket), nil
	}
	cfg, err := f.load(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	return localapi.NewClient(cfg.Socket), nil
}

// withoutSupervisor runs op with the supervisor's own code straight against the engine
// when no supervisor answers on the socket (it was stopped with Ctrl-C, or systemd is
// restarting it), and says so on stderr. Any other error is returned as it is.
func (f *clientFlags) withoutSupervisor(cmd *cobra.Command, err error, op func(ops localapi.Operations) error) error {
	if !errors.Is(err, localapi.ErrNotRunning) {
		return err
	}
	cfg, cerr := f.load(cmd.ErrOrStderr())
	if cerr != nil {
		return cerr
	}
	off, oerr := openOffline(cmd.Context(), cfg, cmd.ErrOrStderr())
	if oerr != nil {
		return fmt.Errorf("%w; working straight against the Docker Engine failed too: %w", err, oerr)
	}
	defer off.close()
	fmt.Fprintf(cmd.ErrOrStderr(), "corpintel: no supervisor is running (nothing repairs the stack now; start it with `corpintel supervisor` or `systemctl start corpintel`) — answering from the Docker Engine directly\n")
	return op(off)
}

// asUsage turns the supervisor's "bad request" answers into exit status 2.
func asUsage(err error) error {
	var re *localapi.RequestError
	if errors.As(err, &re) {
		return usageError{err}
	}
	return err
}

// checkService validates a service name before anything is asked of the supervisor.
func checkService(svc string) error {
	if err := stack.CheckService(svc); err != nil {
		return usageError{err}
	}
	return nil
}

func newStatusCmd() *cobra.Command {
	var flags clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every service: replicas, state, health, uptime, image, CPU and memory (works without a supervisor too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			show := func(ops localapi.Operations) error {
				rep, err := ops.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return writeStatusJSON(cmd.OutOrStdout(), rep)
				}
				return writeStatusTable(cmd.OutOrStdout(), rep, time.Now())
			}
			if err := show(c); err != nil {
				return flags.withoutSupervisor(cmd, err, show)
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLogsCmd() *cobra.Command {
	var flags clientFlags
	var opts localapi.LogOptions
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] SERVICE",
		Short: "Print (or follow) the logs of a service's containers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkService(args[0]); err != nil {
				return err
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			return asUsage(c.Logs(cmd.Context(), args[0], opts, cmd.OutOrStdout()))
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&opts.Tail, "tail", -1, "number of lines from the end (-1: all)")
	return cmd
}

func newRestartCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "restart SERVICE",
		Short: "Recreate a service's containers (the API one replica at a time); also ends a held recreate or a backoff",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkService(args[0]); err != nil {
				return err
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Restart(cmd.Context(), args[0]); err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s restarted\n", args[0])
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

// parseScale reads "api=3".
func parseScale(arg string) (string, int, error) {
	svc, n, ok := strings.Cut(arg, "=")
	if !ok {
		return "", 0, usagef("want SERVICE=REPLICAS (e.g. api=3), got %q", arg)
	}
	replicas, err := strconv.Atoi(n)
	if err != nil {
		return "", 0, usagef("replicas must be a number between 0 and %d, got %q", stack.MaxScale, n)
	}
	if err := stack.ValidateScale(svc, replicas); err != nil {
		return "", 0, usageError{err}
	}
	return svc, replicas, nil
}

func newScaleCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "scale api=N",
		Short: fmt.Sprintf("Set the number of API replicas (0…%d); kept across supervisor restarts", stack.MaxScale),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, n, err := parseScale(args[0])
			if err != nil {
				return err
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Scale(cmd.Context(), svc, n); err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s scaled to %d\n", svc, n)
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

func newStopCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop every container of the stack, keeping the data, until `corpintel start` (works without a supervisor too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			stop := func(ops localapi.Operations) error { return ops.Stop(cmd.Context()) }
			if err := stop(c); err != nil {
				if err := flags.withoutSupervisor(cmd, err, stop); err != nil {
					return asUsage(err)
				}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "stack stopped (data kept); it stays down, also across supervisor restarts, until `corpintel start`")
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

func newStartCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Bring the stack up again after `corpintel stop` (waits for the reconcile)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Start(cmd.Context()); err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "stack started; `corpintel status` shows it")
			return err
		},
	}
	flags.register(cmd)
	return cmd
}

func newCreateAdminVerb() *cobra.Command {
	var flags clientFlags
	var email, passwordFile string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "create-admin --email E (--password-stdin | --password-file F)",
		Short: "Create an API admin user (runs as a one-shot job on the stack; the password never goes into argv)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" {
				return usagef("create-admin: --email is required")
			}
			if fromStdin == (passwordFile != "") {
				return usagef("create-admin: give exactly one of --password-stdin or --password-file")
			}
			pw, err := readPassword(cmd.InOrStdin(), fromStdin, passwordFile)
			if err != nil {
				return err
			}
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			if err := c.CreateAdmin(cmd.Context(), email, pw); err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "admin %s created; log in at the API's /api/v1/auth/login\n", email)
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the admin's e-mail address (the login name)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "read the password from this file")
	return cmd
}

// minPasswordLen is the API's minimum for an admin password.
const minPasswordLen = 12

// readPassword reads a password from the first line of stdin or from a file; trailing
// newlines are not part of it.
func readPassword(in io.Reader, fromStdin bool, file string) ([]byte, error) {
	var raw []byte
	var err error
	if fromStdin {
		raw, err = bufio.NewReader(io.LimitReader(in, 4096)).ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			err = nil
		}
	} else {
		raw, err = os.ReadFile(file) // #nosec G304 -- the operator names the file
	}
	if err != nil {
		return nil, fmt.Errorf("create-admin: read the password: %w", err)
	}
	pw := bytes.TrimRight(raw, "\r\n")
	if len(pw) < minPasswordLen {
		return nil, usagef("create-admin: the password must have at least %d characters", minPasswordLen)
	}
	return pw, nil
}

// psqlArgs builds the docker CLI call for an interactive psql in the postgres container.
func psqlArgs(container, user, db string, tty bool, extra []string) []string {
	args := []string{"exec", "-i"}
	if tty {
		args = append(args, "-t")
	}
	args = append(args, container, "psql", "-U", user, "-d", db)
	return append(args, extra...)
}

func newPsqlCmd() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "psql [-- PSQL-ARGS...]",
		Short: "Open psql inside the postgres container as the application user",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			docker, err := exec.LookPath("docker")
			if err != nil {
				return errors.New("psql needs the docker CLI on PATH (apt-get install docker.io)")
			}
			name := stack.ContainerName(cfg.Project, stack.ServicePostgres, 1)
			c := exec.CommandContext(cmd.Context(), docker, psqlArgs(name, cfg.Postgres.User, cfg.Postgres.DB, isTerminal(os.Stdin), args)...) // #nosec G204 -- fixed binary, arguments from config
			c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitCode(ee.ExitCode())
				}
				return fmt.Errorf("psql in %s: %w (is the stack up? `corpintel status`)", name, err)
			}
			return nil
		},
	}
	flags.register(cmd, true)
	return cmd
}

// exitCode passes a child's exit status through.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitCode) ExitCode() int { return int(e) }

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("config needs a subcommand: check")
		},
	}
	var flags configFlags
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the config and print the effective values (profile defaults, file, environment); secrets live in the state dir and are never printed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			src := cfg.File
			if src == "" {
				src = "no file, defaults of the profile"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "# config OK (%s)\n", src)
			return toml.NewEncoder(out).Encode(cfg)
		},
	}
	flags.register(check, true)
	cmd.AddCommand(check, newConfigKeysCmd())
	return cmd
}
