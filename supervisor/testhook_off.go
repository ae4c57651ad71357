//go:build !corpintel_testhooks

package supervisor

import (
	"context"
	"log/slog"
)

// testHooks is nil in production builds: nothing but the tests' own channel can run
// code on the reconcile loop (see testhook_on.go for the tagged test build).
func testHooks(context.Context, *slog.Logger) <-chan func() { return nil }
