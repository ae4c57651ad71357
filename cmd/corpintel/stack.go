package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/supervisor"
)

// newStack builds the reconciler for cfg (wired to supervisor.Reconciler once it lands).
var newStack = func(ctx context.Context, cfg *config.Config, log *slog.Logger) (supervisor.Stack, error) {
	return nil, errors.New("the reconciler is not part of this build yet")
}
