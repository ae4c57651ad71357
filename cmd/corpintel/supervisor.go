package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { commands = append(commands, newSupervisorCmd) }

// configFlags are the flags every verb uses to find the config (and so the socket).
type configFlags struct {
	path, profile, project, socket string
}

func (f *configFlags) register(cmd *cobra.Command, withProfile bool) {
	cmd.Flags().StringVar(&f.path, "config", "", "config file (default $CORPINTEL_CONFIG or "+config.DefaultPath+")")
	cmd.Flags().StringVar(&f.project, "project", "", "project name; prefixes every container, volume, port and path (default corporate-intel)")
	if withProfile {
		cmd.Flags().StringVar(&f.profile, "profile", "", "profile: dev, staging or prod")
	}
}

// load reads the config as the flags say. A config problem exits with status 2.
func (f *configFlags) load(stderr io.Writer) (*config.Config, error) {
	env := os.Environ()
	if f.project != "" {
		// Through the environment so that the names derived from the project (socket,
		// state dir) follow it.
		env = append(env, config.EnvName("project")+"="+f.project)
	}
	cfg, warnings, err := config.Load(config.Options{Path: f.path, Environ: env, Profile: f.profile})
	for _, w := range warnings {
		fmt.Fprintln(stderr, "corpintel: warning:", w)
	}
	if err != nil {
		if config.IsConfigError(err) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return cfg, nil
}

func newSupervisorCmd() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Run the supervisor in the foreground: reconcile the stack, proxy the API, serve the CLI",
		Long: `Run the supervisor in the foreground. It brings up PostgreSQL, Redis, MinIO and the API
replicas as containers, keeps them healthy, proxies the loopback port to the API and
answers the other corpintel verbs on a unix socket. Stopping it leaves the stack running;
SIGHUP re-reads the config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSupervisor(cmd.Context(), &flags, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	flags.register(cmd, true)
	return cmd
}

// newLogger logs JSON when stderr is not a terminal (systemd, CI), text otherwise.
func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// isTerminal asks the terminal driver (a character device such as /dev/null is not one).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS) // #nosec G115 -- file descriptors fit in int
	return err == nil
}

// newDockerClient connects to the engine named by DOCKER_HOST (default the local
// socket), negotiating the API version, and checks that it answers.
func newDockerClient(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cannot reach the Docker Engine at %s — is dockerd running? (`systemctl start docker`, or set DOCKER_HOST): %w", c.DaemonHost(), err)
	}
	return c, nil
}

func runSupervisor(ctx context.Context, flags *configFlags, stdout, stderr io.Writer) error {
	cfg, err := flags.load(stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	dc, err := newDockerClient(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()

	stacks, err := openStackFactory(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stacks.Close()
	stack, err := stacks.build(cfg)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := supervisor.NewDaemon(supervisor.Options{
		Project: cfg.Project, Profile: cfg.Profile, Listen: cfg.Listen, Socket: cfg.Socket,
		Docker: dc, Stack: stack, Hangup: hup, Log: log,
		Reload: func() (supervisor.Stack, error) {
			next, err := flags.load(stderr)
			if err != nil {
				return nil, err
			}
			if next.Project != cfg.Project || next.Listen != cfg.Listen || next.Socket != cfg.Socket {
				return nil, errors.New("project, listen and socket cannot change on reload; restart the supervisor")
			}
			return stacks.build(next)
		},
		Ready: func(apiURL string) {
			fmt.Fprintf(stdout, "API: %s (health: /health)\nCLI socket: %s\n", apiURL, cfg.Socket)
		},
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// serviceList renders the valid service names for error messages.
func serviceList() string { return strings.Join(supervisor.Services, ", ") }
