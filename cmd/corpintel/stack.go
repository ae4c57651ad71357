package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/supervisor"
	"github.com/corpintel/corpintel/supervisor/state"
)

// stackFactory builds reconcilers over one engine connection and one state store, so
// that a reload (SIGHUP) swaps the config without reopening either.
type stackFactory struct {
	eng   *docker.Client
	store *state.Store
	log   *slog.Logger
}

func openStackFactory(ctx context.Context, cfg *config.Config, log *slog.Logger) (*stackFactory, error) {
	eng, err := docker.New(ctx)
	if err != nil {
		return nil, err
	}
	store, err := state.Open(ctx, cfg.StateDir)
	if err != nil {
		_ = eng.Close()
		return nil, fmt.Errorf("state store in %s: %w", cfg.StateDir, err)
	}
	return &stackFactory{eng: eng, store: store, log: log}, nil
}

func (f *stackFactory) build(cfg *config.Config) (supervisor.Stack, error) {
	return supervisor.NewReconciler(cfg, f.eng, f.store, f.log)
}

func (f *stackFactory) Close() error {
	err := f.store.Close()
	if cerr := f.eng.Close(); err == nil {
		err = cerr
	}
	return err
}
