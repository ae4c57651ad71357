package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/corpintel/corpintel/jobs/kit"
)

// Format is the PostgreSQL dump format.
type Format string

// Dump formats. Custom is the default: `pg_restore -j` restores it in parallel from the
// stored file (a plain SQL stream can only be replayed by one psql). SQL is the seed's
// gzipped plain dump, kept for operators who want to read or grep their backups.
const (
	FormatCustom Format = "custom" // pg_dump -Fc -Z0, compressed with zstd: postgres.dump.zst
	FormatSQL    Format = "sql"    // pg_dump -Fp, compressed with gzip: postgres.sql.gz
)

// Config is what a Runner backs up and where to.
type Config struct {
	Root      string // backup root, e.g. /var/backups/corporate-intel
	Host      string // recorded in the manifest; default: os.Hostname
	Corpintel string // corpintel version recorded in the manifest

	Postgres PostgresSource
	Redis    *RedisSource // nil: not backed up
	MinIO    *MinIOSource // nil: not backed up
	Kit      KitSource

	Format Format // default FormatCustom
	// Encrypt encrypts every file of the backup and every stored object to
	// Kit.Recipient (the manifest stays readable, so listing works without the key).
	Encrypt bool
	// CompressionWorkers is zstd's concurrency (default: GOMAXPROCS, at most 4).
	CompressionWorkers int

	Sanity Sanity
	// MinFreeBytes must stay free on the backup filesystem on top of the estimate from
	// the previous backup (default 64 MiB).
	MinFreeBytes int64
	// RedisSaveTimeout bounds the wait for BGSAVE (default 10 min).
	RedisSaveTimeout time.Duration
}

// PostgresSource is how to reach the database from inside its container.
type PostgresSource struct {
	Container string // where pg_dump runs
	OSUser    string // user inside the container (default "postgres")
	Database  string
	User      string // role
	Password  string // passed as PGPASSWORD in the exec's environment; "" for peer/trust auth
	Host      string // "" = the container's unix socket
	Port      int    // 0 = 5432
}

// RedisSource is how to reach Redis from inside its container.
type RedisSource struct {
	Container string
	OSUser    string
	Password  string // passed as REDISCLI_AUTH in the exec's environment
	Host      string // default 127.0.0.1
	Port      int    // default 6379
	RDBPath   string // path of the RDB file inside the container; "" = ask Redis (CONFIG GET)
}

// MinIOSource is the S3 API the objects are copied from.
type MinIOSource struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Secure    bool
	Buckets   []string // empty: every bucket
	Version   string   // recorded in the manifest (the image's version; S3 does not tell)
}

// KitSource is what goes into the recovery kit.
type KitSource struct {
	ConfigFile string // copied as is; "" = none
	StateDB    string // the supervisor's SQLite store, copied with VACUUM INTO; "" = none
	SecretsDir string // tarred and encrypted to Recipient; "" = none
	Recipient  string // age public key (age1…)
	// IdentityFile is the copy of the identity kept on the machine (for drills and for
	// verifying encrypted parts); "" = encrypted parts are checked by checksum only.
	IdentityFile string
}

// Sanity are the limits of the comparison with the previous backup of the tier.
type Sanity struct {
	MaxDumpShrink  float64 // flag a dump smaller than (1-x) × the previous one (default 0.5)
	MaxTableLoss   float64 // flag a table that lost more than this fraction of its rows (default 0.5)
	MinTableRows   int64   // tables smaller than this are not compared (default 100)
	MaxObjectsLoss float64 // flag when the object count fell by more than this (default 0.5)
}

var tierName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidTier reports whether t can name a tier directory.
func ValidTier(t string) error {
	if !tierName.MatchString(t) {
		return fmt.Errorf("backup: tier %q: use lowercase letters, digits and '-' (daily, weekly, monthly)", t)
	}
	return nil
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Root == "" {
		errs = append(errs, errors.New("root is empty"))
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.Format == "" {
		c.Format = FormatCustom
	}
	if c.Format != FormatCustom && c.Format != FormatSQL {
		errs = append(errs, fmt.Errorf("format %q: use %q or %q", c.Format, FormatCustom, FormatSQL))
	}
	if c.Postgres.Container == "" || c.Postgres.Database == "" {
		errs = append(errs, errors.New("postgres: container and database are required"))
	}
	if c.Postgres.OSUser == "" {
		c.Postgres.OSUser = "postgres"
	}
	if c.Redis != nil {
		r := *c.Redis
		if r.Container == "" {
			errs = append(errs, errors.New("redis: container is required"))
		}
		if r.Host == "" {
			r.Host = "127.0.0.1"
		}
		if r.Port == 0 {
			r.Port = 6379
		}
		c.Redis = &r
	}
	if c.MinIO != nil && c.MinIO.Endpoint == "" {
		errs = append(errs, errors.New("minio: endpoint is required"))
	}
	if c.Kit.Recipient != "" {
		if _, err := kit.ParseRecipient(c.Kit.Recipient); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Kit.SecretsDir != "" && c.Kit.Recipient == "" {
		errs = append(errs, errors.New("kit: the secrets are only ever stored encrypted: set the kit recipient (create an identity with `corpintel backup kit-key --init`)"))
	}
	if c.Encrypt && c.Kit.Recipient == "" {
		errs = append(errs, errors.New("encryption at rest needs the kit recipient"))
	}
	if c.CompressionWorkers <= 0 {
		c.CompressionWorkers = 4
	}
	s := &c.Sanity
	if s.MaxDumpShrink == 0 {
		s.MaxDumpShrink = 0.5
	}
	if s.MaxTableLoss == 0 {
		s.MaxTableLoss = 0.5
	}
	if s.MinTableRows == 0 {
		s.MinTableRows = 100
	}
	if s.MaxObjectsLoss == 0 {
		s.MaxObjectsLoss = 0.5
	}
	for name, f := range map[string]float64{"max dump shrink": s.MaxDumpShrink, "max table loss": s.MaxTableLoss, "max objects loss": s.MaxObjectsLoss} {
		if f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("sanity: %s %s is not a fraction between 0 and 1", name, strconv.FormatFloat(f, 'g', -1, 64)))
		}
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 64 << 20
	}
	if c.RedisSaveTimeout == 0 {
		c.RedisSaveTimeout = 10 * time.Minute
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("backup config: %w", errors.Join(errs...))
	}
	return c, nil
}

// Deps are the Runner's collaborators.
type Deps struct {
	Exec     Exec
	Tools    Tools  // nil: pg_restore --list is skipped and the backup is not verified
	Lock     Locker // nil: no lock (tests of the pure parts only)
	Clock    Clock  // default time.Now
	Log      *slog.Logger
	Progress func(Progress) // called at most every ProgressEvery
	// ProgressEvery throttles Progress (default 1 s).
	ProgressEvery time.Duration
	// Poll waits between checks of a running BGSAVE (default: 100 ms timer); tests
	// inject one that returns at once.
	Poll func(ctx context.Context) error
}

func (c Config) recipient() (age.Recipient, error) {
	if c.Kit.Recipient == "" {
		return nil, nil
	}
	return kit.ParseRecipient(c.Kit.Recipient)
}
