package config

import (
	"path/filepath"
	"time"
)

// Metrics configures the supervisor's own collectors ([metrics]): host, containers,
// PostgreSQL, Redis, MinIO, the Docker Engine and the API replicas, and the health check
// of the API through the edge that API Down counts.
type Metrics struct {
	// Interval is how often every collector samples, the replicas' /metrics are
	// scraped and the API's /health is checked (default 15s). API Down fires after
	// alerts.rules.api_down.failures checks in a row, so it also sets how fast that is.
	Interval Duration `toml:"interval"`
	// StartGrace: after a service is (re)started — the supervisor's start, `corpintel
	// start`, a scale up from 0 — its failed probes (the API's health checks) count as
	// down only once it answered or this long passed (default 5m): a cold start with
	// image loads, the migrate job and the API's dependency wait is not an outage.
	StartGrace Duration `toml:"start_grace"`
	// DiskPaths are further paths whose filesystems are watched besides /, the state
	// dir, the Docker data root and the backup root (which always are).
	DiskPaths []string `toml:"disk_paths"`
}

func defaultMetrics() Metrics {
	return Metrics{Interval: Duration(15 * time.Second), StartGrace: Duration(5 * time.Minute)}
}

// validateMetrics checks [metrics]; bad reports a problem under a key.
func (m Metrics) validate(bad func(key, format string, args ...any)) {
	if m.Interval < Duration(time.Second) || m.Interval > Duration(5*time.Minute) {
		bad("metrics.interval", "must be between 1s and 5m, got %s", m.Interval)
	}
	if m.StartGrace < 0 || m.StartGrace > Duration(time.Hour) {
		bad("metrics.start_grace", "must be between 0s and 1h, got %s", m.StartGrace)
	}
	for i, p := range m.DiskPaths {
		if !filepath.IsAbs(p) {
			bad("metrics.disk_paths", "entry %d must be an absolute path, got %q", i, p)
		}
	}
}
