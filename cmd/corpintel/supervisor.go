package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/sdnotify"
	"github.com/corpintel/corpintel/supervisor"
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
	if err == nil {
		_, err = supervisor.AlertsConfig(cfg) // the [alerts] table's schema is the engine's
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

func runSupervisor(ctx context.Context, flags *configFlags, stdout, stderr io.Writer) error {
	cfg, err := flags.load(stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	eng, store, err := openBackends(ctx, cfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	defer store.Close()
	// Under systemd (Type=notify): READY, STATUS and the watchdog. The variables are
	// unset so that nothing the supervisor starts notifies on its behalf.
	notify, err := sdnotify.FromEnv(true)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cons, err := newConsoleSetup(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	var admin http.Handler
	if cons != nil {
		admin = cons.console
	}
	d, err := supervisor.New(supervisor.Options{
		Config: cfg, Engine: eng, Store: store, Log: log, Hangup: hup, Notify: notify, Admin: admin,
		Reload: func() (*config.Config, error) { return flags.load(stderr) },
		Ready: func(ep supervisor.Endpoints) {
			fmt.Fprintf(stdout, "API: %s (health: /health)\n", ep.API)
			if ep.HTTPS != "" {
				fmt.Fprintf(stdout, "HTTPS: %s (certificate: tls.mode %s; `corpintel tls ca` prints the local CA in self-signed mode)\n", ep.HTTPS, cfg.TLS.Mode)
			}
			if ep.HTTP != "" {
				fmt.Fprintf(stdout, "HTTP: %s (ACME challenges; everything else redirects to HTTPS)\n", ep.HTTP)
			}
			fmt.Fprintf(stdout, "CLI socket: %s\n", ep.Socket)
			cons.printConsole(stdout, ep)
		},
	})
	if err != nil {
		return err
	}
	if cons != nil {
		cons.ops.d = d
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go cons.console.Run(ctx)
	}
	return d.Run(ctx)
}
