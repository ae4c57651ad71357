//go:build corpintel_testhooks

package supervisor

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// testHooks exists only in binaries built with -tags corpintel_testhooks (the systemd
// test's bundle): SIGUSR2 blocks the reconcile loop until the supervisor stops, so the
// test can watch the systemd watchdog restart a supervisor whose event loop hangs. No
// config key or environment variable reaches it; a production build has no such code.
func testHooks(ctx context.Context, log *slog.Logger) <-chan func() {
	ch := make(chan func())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
			}
			log.Warn("test hook: SIGUSR2 blocks the reconcile loop")
			select {
			case ch <- func() { <-ctx.Done() }:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
