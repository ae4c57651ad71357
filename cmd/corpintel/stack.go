package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/corpintel/corpintel/supervisor/state"
)

// openBackends connects to the Docker Engine (DOCKER_HOST or the local socket) and
// opens the state store of the config's project: what the supervisor runs on, and what
// `status` and `stop` use when no supervisor answers.
func openBackends(ctx context.Context, cfg *config.Config) (*docker.Client, *state.Store, error) {
	eng, err := docker.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := state.Open(ctx, cfg.StateDir)
	if err != nil {
		_ = eng.Close()
		return nil, nil, fmt.Errorf("state store in %s: %w", cfg.StateDir, err)
	}
	return eng, store, nil
}

// offline is the supervisor's own code run by the CLI, straight against the engine,
// for the verbs that must work while no supervisor runs (status, stop): the same
// observation, the same plans, the same state store.
type offline struct {
	*supervisor.Daemon
	close func()
}

func openOffline(ctx context.Context, cfg *config.Config, stderr io.Writer) (*offline, error) {
	eng, store, err := openBackends(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d, err := supervisor.New(supervisor.Options{Config: cfg, Engine: eng, Store: store, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		store.Close()
		eng.Close()
		return nil, err
	}
	return &offline{Daemon: d, close: func() { store.Close(); eng.Close() }}, nil
}
