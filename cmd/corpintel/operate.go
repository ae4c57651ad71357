package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/spf13/cobra"
)

func init() {
	commands = append(commands, newStatusCmd, newLogsCmd, newRestartCmd, newScaleCmd, newStopCmd, newStartCmd, newPsqlCmd, newConfigCmd)
}

// clientFlags find the running supervisor's socket: --socket, else the config's.
type clientFlags struct {
	configFlags
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd, false)
	cmd.Flags().StringVar(&f.socket, "socket", "", "the supervisor's local API socket (default from the config)")
}

func (f *clientFlags) client(cmd *cobra.Command) (*supervisor.Client, error) {
	if f.socket != "" {
		return supervisor.NewClient(f.socket), nil
	}
	cfg, err := f.load(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	return supervisor.NewClient(cfg.Socket), nil
}

// asUsage turns the supervisor's "bad request" answers into exit status 2.
func asUsage(err error) error {
	var re *supervisor.RequestError
	if errors.As(err, &re) {
		return usageError{err}
	}
	return err
}

// checkService validates a service name before anything is asked of the supervisor.
func checkService(svc string) error {
	if !slices.Contains(supervisor.Services, svc) {
		return usagef("unknown service %q (valid: %s)", svc, serviceList())
	}
	return nil
}

func newStatusCmd() *cobra.Command {
	var flags clientFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every service: replicas, state, health, uptime, image, CPU and memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return rep.WriteJSON(cmd.OutOrStdout())
			}
			return rep.WriteTable(cmd.OutOrStdout(), time.Now())
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLogsCmd() *cobra.Command {
	var flags clientFlags
	var opts supervisor.LogOptions
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
		Short: "Recreate a service's containers (the API one replica at a time)",
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
	if err := checkService(svc); err != nil {
		return "", 0, err
	}
	if svc != supervisor.ServiceAPI {
		return "", 0, usagef("only %s can be scaled; %s runs exactly one container", supervisor.ServiceAPI, svc)
	}
	replicas, err := strconv.Atoi(n)
	if err != nil || replicas < 0 || replicas > supervisor.MaxScale {
		return "", 0, usagef("replicas must be a number between 0 and %d, got %q", supervisor.MaxScale, n)
	}
	return svc, replicas, nil
}

func newScaleCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "scale api=N",
		Short: fmt.Sprintf("Set the number of API replicas (0…%d); kept across supervisor restarts", supervisor.MaxScale),
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
	return stackVerb("stop", "Stop every container of the stack, keeping the data; `corpintel start` brings it up again",
		(*supervisor.Client).Stop, "stack stopped (data kept); `corpintel start` brings it up again")
}

func newStartCmd() *cobra.Command {
	return stackVerb("start", "Bring the stack up again after `corpintel stop` (waits for the reconcile)",
		(*supervisor.Client).Start, "stack started; `corpintel status` shows it")
}

// stackVerb is a verb without arguments that makes one local API call and says done.
func stackVerb(use, short string, call func(*supervisor.Client, context.Context) error, done string) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client(cmd)
			if err != nil {
				return err
			}
			if err := call(c, cmd.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), done)
			return err
		},
	}
	flags.register(cmd)
	return cmd
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
			name := supervisor.ContainerName(cfg.Project, supervisor.ServicePostgres, 1)
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
	cmd.AddCommand(check)
	return cmd
}
