package app

import (
	"log/slog"
	"time"

	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/cache"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Deps are the shared dependencies every module is built from.
type Deps struct {
	Pool   *pgxpool.Pool
	Redis  redis.UniversalClient
	Cache  *cache.Cache
	Blob   *blob.Store
	Log    *slog.Logger
	Reg    prometheus.Registerer
	Audit  web.Auditor
	Config Config
	Now    func() time.Time
}

// WithDefaults fills what a module may leave unset in tests: the clock and a logger that
// discards.
func (d Deps) WithDefaults() Deps {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return d
}
