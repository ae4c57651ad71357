// Package config loads the supervisor's configuration: one TOML file (default
// /etc/corpintel/corpintel.toml), a profile (dev, staging, prod) that supplies the
// defaults, and CORPINTEL_* environment variables that override scalar keys.
//
// Precedence, lowest first: profile defaults → file → environment → [Options.Profile]
// (the --profile flag, which also picks the defaults). Names that derive from the
// project name (state dir, socket) are filled in after merging when left empty.
//
// Every key of the file has an environment variable: the key path upper-cased with
// dots turned into underscores and the prefix CORPINTEL_ ("api.replicas" →
// CORPINTEL_API_REPLICAS). Unknown CORPINTEL_* variables are reported as warnings,
// not errors, because the API containers' variables share the prefix.
//
// Sizes are strings with binary units, as Docker and PostgreSQL read them:
// "512MiB", "512MB", "512M" and "536870912" all mean 512×1024×1024 bytes.
//
// A config problem is an [*Error] (file, key, problem); [IsConfigError] tells the
// CLI to exit with status 2.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/corpintel/corpintel/internal/stack"
)

// DefaultPath is read when no --config is given; its absence means "all defaults".
const DefaultPath = "/etc/corpintel/corpintel.toml"

// DefaultProject gives the seed's names (corporate-intel-postgres, …).
const DefaultProject = "corporate-intel"

// MaxReplicas bounds api.replicas and `scale api=N`.
const MaxReplicas = stack.MaxScale

// EnvPrefix starts every environment override.
const EnvPrefix = "CORPINTEL_"

// envConfigPath names the config file (like --config); it is not a key.
const envConfigPath = "CORPINTEL_CONFIG"

// Profiles lists the valid profiles, in the order the docs show them.
var Profiles = []string{"dev", "staging", "prod"}

// Config is the merged, validated configuration.
type Config struct {
	// Profile is dev, staging or prod.
	Profile string `toml:"profile"`
	// Project prefixes every engine-wide and host-wide name.
	Project string `toml:"project"`
	// Listen is the supervisor's loopback HTTP address that proxies to the API. It must
	// be a loopback address: it serves plain HTTP without the edge's TLS and rate limit.
	Listen string `toml:"listen"`
	// Socket is the local API's unix socket (default /run/corpintel/<project>.sock).
	Socket string `toml:"socket"`
	// StateDir holds secrets and the state store (default /var/lib/corpintel/<project>).
	StateDir string `toml:"state_dir"`
	// LogLevel is debug, info, warn or error; it applies to the supervisor and the API.
	LogLevel string `toml:"log_level"`
	// Monitoring switches the monitoring containers (none exist yet).
	Monitoring bool `toml:"monitoring"`
	// SampleData seeds sample companies on the first start.
	SampleData bool `toml:"sample_data"`

	API      API      `toml:"api"`
	Postgres Postgres `toml:"postgres"`
	Redis    Redis    `toml:"redis"`
	MinIO    MinIO    `toml:"minio"`
	Edge     Edge     `toml:"edge"`
	TLS      TLS      `toml:"tls"`
	Metrics  Metrics  `toml:"metrics"`
	Alerts   Alerts   `toml:"alerts"`
	Console  Console  `toml:"console"`

	// File is the config file that was read, "" when none was.
	File string `toml:"-"`

	// fromEnv holds the keys the environment set, so errors name the variable.
	fromEnv map[string]bool
}

// Resources are the per-service image and limits (seed's resource table).
type Resources struct {
	Image  string   `toml:"image"`
	CPUs   float64  `toml:"cpus"`
	Memory ByteSize `toml:"memory"`
}

// API configures the API replicas.
type API struct {
	Resources
	Replicas       int      `toml:"replicas"`
	CORSOrigins    []string `toml:"cors_origins"`
	UploadMaxBytes int64    `toml:"upload_max_bytes"`
	JWTIssuer      string   `toml:"jwt_issuer"`
	JWTAudience    string   `toml:"jwt_audience"`
	OTLPEndpoint   string   `toml:"otlp_endpoint"`
	// MigrateTimeout bounds the migrate job that runs before API replicas start (a
	// migration past it is stopped and reported, and the next pass tries again).
	MigrateTimeout Duration `toml:"migrate_timeout"`
}

// Postgres configures PostgreSQL. Zero sizes are derived from the memory limit.
type Postgres struct {
	Resources
	DB                         string   `toml:"db"`
	User                       string   `toml:"user"`
	MaxConnections             int      `toml:"max_connections"`
	ReservedConnections        int      `toml:"reserved_connections"`
	SharedBuffers              ByteSize `toml:"shared_buffers"`
	EffectiveCacheSize         ByteSize `toml:"effective_cache_size"`
	WorkMem                    ByteSize `toml:"work_mem"`
	MaintenanceWorkMem         ByteSize `toml:"maintenance_work_mem"`
	WALBuffers                 ByteSize `toml:"wal_buffers"`
	RandomPageCost             float64  `toml:"random_page_cost"`
	CheckpointCompletionTarget float64  `toml:"checkpoint_completion_target"`
}

// Redis configures Redis. MaxMemory 0 means 70 % of the memory limit.
type Redis struct {
	Resources
	MaxMemory ByteSize `toml:"maxmemory"`
}

// MinIO configures MinIO.
type MinIO struct {
	Resources
	Bucket string `toml:"bucket"`
}

// Options say where to load from.
type Options struct {
	// Path is the --config flag; "" means $CORPINTEL_CONFIG or DefaultPath, whose
	// absence is fine. An explicit path that does not exist is an error.
	Path string
	// Environ is os.Environ() (nil means none).
	Environ []string
	// Profile is the --profile flag; it wins over file and environment.
	Profile string
}

// Default returns the defaults of a profile (an unknown profile gets dev's).
func Default(profile string) *Config {
	c := &Config{
		Profile:  profile,
		Project:  DefaultProject,
		Listen:   "127.0.0.1:8000",
		LogLevel: "info",
		API: API{
			Resources:      Resources{Image: "corpintel/api:latest", CPUs: 2, Memory: 4 * GiB},
			Replicas:       2,
			UploadMaxBytes: 100 << 20,
			JWTIssuer:      "corpintel",
			JWTAudience:    "corpintel-api",
			MigrateTimeout: Duration(10 * time.Minute),
		},
		Postgres: Postgres{
			Resources:                  Resources{Image: "corpintel/postgres:15", CPUs: 2, Memory: 4 * GiB},
			MaxConnections:             200,
			ReservedConnections:        20,
			WorkMem:                    16 * MiB,
			WALBuffers:                 16 * MiB,
			RandomPageCost:             1.1,
			CheckpointCompletionTarget: 0.9,
		},
		Redis: Redis{Resources: Resources{Image: "corpintel/redis:7", CPUs: 1, Memory: 2 * GiB}},
		MinIO: MinIO{Resources: Resources{Image: "corpintel/minio:latest", CPUs: 1, Memory: 2 * GiB}, Bucket: "corporate-documents"},
	}
	c.Edge, c.TLS = defaultEdge(profile), defaultTLS(profile)
	c.Metrics = defaultMetrics()
	c.Console = defaultConsole()
	switch profile {
	case "prod":
		c.Monitoring = true
		c.Postgres.DB, c.Postgres.User = "corporate_intel_prod", "intel_prod_user"
	case "staging":
		c.Monitoring = true
		c.Postgres.DB, c.Postgres.User = "corporate_intel_staging", "intel_staging_user"
	default: // dev
		c.LogLevel = "debug"
		c.SampleData = true
		c.API.Replicas = 1
		c.Postgres.DB, c.Postgres.User = "corporate_intel", "intel_user"
	}
	return c
}

// Load reads, merges and validates the configuration. Warnings (unknown CORPINTEL_*
// variables) are returned even when err is nil.
func Load(opts Options) (*Config, []string, error) {
	env := envMap(opts.Environ)
	path, explicit := opts.Path, opts.Path != ""
	if !explicit {
		if p := env[envConfigPath]; p != "" {
			path, explicit = p, true
		} else {
			path = DefaultPath
		}
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the operator names the config file
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		path, data = "", nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, &Error{File: path, Problem: "file does not exist (create it or drop --config)"}
	default:
		return nil, nil, &Error{File: path, Problem: fmt.Sprintf("cannot read: %v", err)}
	}

	profile, err := peekProfile(path, data)
	if err != nil {
		return nil, nil, err
	}
	if p := env[EnvPrefix+"PROFILE"]; p != "" {
		profile = p
	}
	if opts.Profile != "" {
		profile = opts.Profile
	}
	if !slices.Contains(Profiles, profile) {
		return nil, nil, &Error{File: sourceName(path), Key: "profile", Problem: fmt.Sprintf("must be one of %s, got %q", strings.Join(Profiles, ", "), profile)}
	}

	cfg := Default(profile)
	cfg.File = path
	if data != nil {
		md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
		if err != nil {
			return nil, nil, decodeError(path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			errs := make([]error, 0, len(und))
			for _, k := range und {
				errs = append(errs, &Error{File: path, Key: k.String(), Problem: "unknown key"})
			}
			return nil, nil, errors.Join(errs...)
		}
	}
	warnings, err := applyEnv(cfg, env)
	if err != nil {
		return nil, warnings, err
	}
	cfg.Profile = profile
	cfg.fillDerived()
	if err := cfg.validate(); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

// fillDerived sets the names that derive from the project when left empty.
func (c *Config) fillDerived() {
	if c.StateDir == "" {
		c.StateDir = stack.StateDir(c.Project)
	}
	if c.Socket == "" {
		c.Socket = stack.SocketPath(c.Project)
	}
}

// Validate checks a Config built in code (Load validates already).
func (c *Config) Validate() error {
	c.fillDerived()
	return c.validate()
}

func peekProfile(path string, data []byte) (string, error) {
	var p struct {
		Profile string `toml:"profile"`
	}
	if data != nil {
		if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p); err != nil {
			return "", decodeError(path, err)
		}
	}
	if p.Profile == "" {
		p.Profile = "dev"
	}
	return p.Profile, nil
}

func decodeError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: path, Key: pe.LastKey, Problem: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
	}
	// Type mismatches come back as plain errors of the form "toml: line N (last key "k"): …".
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		return &Error{File: path, Key: m[2], Problem: "line " + m[1] + ": " + m[3]}
	}
	return &Error{File: path, Problem: msg}
}

var lastKeyRE = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): (.*)$`)

func envMap(environ []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			m[k] = v
		}
	}
	return m
}

// field is one settable key of Config.
type field struct {
	key string
	v   reflect.Value
}

// fields lists every TOML key of cfg with the value it decodes into.
func fields(cfg *Config) []field {
	var out []field
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			fv := v.Field(i)
			if sf.Anonymous {
				walk(prefix, fv)
				continue
			}
			name := strings.Split(sf.Tag.Get("toml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			if fv.Kind() == reflect.Map {
				continue // a table decoded by its owner ([alerts]), no variables
			}
			if fv.Kind() == reflect.Struct && !isText(fv) {
				walk(key+".", fv)
				continue
			}
			out = append(out, field{key: key, v: fv})
		}
	}
	walk("", reflect.ValueOf(cfg).Elem())
	return out
}

func isText(v reflect.Value) bool {
	_, ok := v.Addr().Interface().(interface{ UnmarshalText([]byte) error })
	return ok
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every config key (for docs and `corpintel config`).
func Keys() []string {
	var keys []string
	for _, f := range fields(Default("dev")) {
		keys = append(keys, f.key)
	}
	return keys
}

// toolEnv are CORPINTEL_* variables of the build, install and test tooling (the tools
// cache, image builds, test servers); they are not configuration, and the supervisor
// started by `make run` inherits them, so they draw no warning.
var toolEnv = []string{"CORPINTEL_APT_PACKAGES", "CORPINTEL_BIN", "CORPINTEL_CACHE", "CORPINTEL_COVERDIR",
	"CORPINTEL_DEPS", "CORPINTEL_IMAGES", "CORPINTEL_IMAGES_FORCE", "CORPINTEL_MINIO_BIN", "CORPINTEL_PG_BINDIR",
	"CORPINTEL_REDIS_BIN", "CORPINTEL_SOURCE_URL", "CORPINTEL_TEST_BIN"}

func applyEnv(cfg *Config, env map[string]string) ([]string, error) {
	known := map[string]bool{envConfigPath: true}
	for _, name := range toolEnv {
		known[name] = true
	}
	var errs []error
	for _, f := range fields(cfg) {
		name := EnvName(f.key)
		known[name] = true
		s, ok := env[name]
		if !ok {
			continue
		}
		if err := setFromString(f.v, s); err != nil {
			errs = append(errs, &Error{File: "environment", Key: name, Problem: err.Error()})
		}
		if cfg.fromEnv == nil {
			cfg.fromEnv = make(map[string]bool)
		}
		cfg.fromEnv[f.key] = true
	}
	var warnings []string
	for name := range env {
		if !known[name] {
			warnings = append(warnings, fmt.Sprintf("ignoring unknown environment variable %s (not a config key)", name))
		}
	}
	slices.Sort(warnings)
	return warnings, errors.Join(errs...)
}

func setFromString(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("must be a number, got %q", s)
		}
		v.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", s)
		}
		v.SetBool(b)
	case reflect.Slice: // []string: comma-separated
		var items []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// ServiceResources returns the resources of a service by name.
func (c *Config) ServiceResources(service string) (Resources, bool) {
	switch service {
	case "api":
		return c.API.Resources, true
	case "postgres":
		return c.Postgres.Resources, true
	case "redis":
		return c.Redis.Resources, true
	case "minio":
		return c.MinIO.Resources, true
	}
	return Resources{}, false
}

func sourceName(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

var (
	projectRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	identRE      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	bucketRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	imageRE      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$`)
	logLevels    = []string{"debug", "info", "warn", "error"}
	minMemory    = 64 * MiB
	minPGMemory  = 256 * MiB
	maxCPUs      = 256.0
	redisMaxFrac = 0.70
)

// systemDirs are directories a state_dir must never be: the state dir is chmodded
// 0700 and filled with secrets.
var systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
	"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/var",
	"/var/lib", "/var/log", "/var/run", "/var/tmp", "/var/cache", "/var/spool", "/var/lib/docker"}

func systemDir(dir string) bool { return slices.Contains(systemDirs, filepath.Clean(dir)) }

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		e := &Error{File: sourceName(c.File), Key: key, Problem: fmt.Sprintf(format, args...)}
		if c.fromEnv[key] {
			e.File, e.Key = "environment", EnvName(key)
		}
		errs = append(errs, e)
	}
	if !projectRE.MatchString(c.Project) {
		bad("project", "must be 1–40 of a-z, 0-9 and '-', starting with a letter or digit, got %q", c.Project)
	}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "must be host:port, got %q", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		bad("listen", "port must be 1…65535, got %q", port)
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		bad("listen", "must be a loopback address such as 127.0.0.1:8000 (it serves plain HTTP without TLS or rate limit; public traffic goes through the edge), got %q", c.Listen)
	}
	if !filepath.IsAbs(c.Socket) {
		bad("socket", "must be an absolute path, got %q", c.Socket)
	}
	if !filepath.IsAbs(c.StateDir) {
		bad("state_dir", "must be an absolute path, got %q", c.StateDir)
	} else if systemDir(c.StateDir) {
		bad("state_dir", "must be a directory of its own (it is made root-only, mode 0700), not the system directory %q; the default is %s", c.StateDir, stack.StateDir(c.Project))
	}
	if !slices.Contains(logLevels, c.LogLevel) {
		bad("log_level", "must be one of %s, got %q", strings.Join(logLevels, ", "), c.LogLevel)
	}
	if c.API.Replicas < 0 || c.API.Replicas > MaxReplicas {
		bad("api.replicas", "must be 0…%d, got %d", MaxReplicas, c.API.Replicas)
	}
	if strings.TrimSpace(c.API.JWTIssuer) == "" {
		bad("api.jwt_issuer", "must not be empty (the API refuses to start without a token issuer); the default is %q", "corpintel")
	}
	if strings.TrimSpace(c.API.JWTAudience) == "" {
		bad("api.jwt_audience", "must not be empty (the API refuses to start without a token audience); the default is %q", "corpintel-api")
	}
	if c.API.MigrateTimeout < Duration(time.Minute) || c.API.MigrateTimeout > Duration(24*time.Hour) {
		bad("api.migrate_timeout", "must be between 1m and 24h, got %s", c.API.MigrateTimeout)
	}
	if c.API.UploadMaxBytes <= 0 {
		bad("api.upload_max_bytes", "must be > 0, got %d", c.API.UploadMaxBytes)
	}
	for _, svc := range []string{"api", "postgres", "redis", "minio"} {
		r, _ := c.ServiceResources(svc)
		if !imageRE.MatchString(r.Image) {
			bad(svc+".image", "must be an image reference like corpintel/%s, got %q", svc, r.Image)
		}
		if r.CPUs <= 0 || r.CPUs > maxCPUs {
			bad(svc+".cpus", "must be > 0 and ≤ %g, got %g", maxCPUs, r.CPUs)
		}
		min := minMemory
		if svc == "postgres" {
			min = minPGMemory
		}
		if r.Memory < min {
			bad(svc+".memory", "must be at least %s, got %s", min, r.Memory)
		}
	}
	pg := c.Postgres
	if !identRE.MatchString(pg.DB) {
		bad("postgres.db", "must be a lower-case SQL identifier, got %q", pg.DB)
	}
	if !identRE.MatchString(pg.User) {
		bad("postgres.user", "must be a lower-case SQL identifier, got %q", pg.User)
	}
	if pg.MaxConnections < 20 || pg.MaxConnections > 10000 {
		bad("postgres.max_connections", "must be 20…10000, got %d", pg.MaxConnections)
	} else if pg.ReservedConnections < 3 || (pg.MaxConnections-pg.ReservedConnections)/MaxReplicas < 2 {
		bad("postgres.reserved_connections", "must be ≥ 3 and leave at least 2 connections for each of %d API replicas (max_connections %d), got %d", MaxReplicas, pg.MaxConnections, pg.ReservedConnections)
	}
	if pg.SharedBuffers != 0 && pg.SharedBuffers >= pg.Memory {
		bad("postgres.shared_buffers", "must be below postgres.memory (%s), got %s", pg.Memory, pg.SharedBuffers)
	}
	if pg.WorkMem < 64*KiB {
		bad("postgres.work_mem", "must be at least 64KiB, got %s", pg.WorkMem)
	}
	if pg.RandomPageCost <= 0 {
		bad("postgres.random_page_cost", "must be > 0, got %g", pg.RandomPageCost)
	}
	if pg.CheckpointCompletionTarget <= 0 || pg.CheckpointCompletionTarget > 1 {
		bad("postgres.checkpoint_completion_target", "must be in (0, 1], got %g", pg.CheckpointCompletionTarget)
	}
	if lim := ByteSize(float64(c.Redis.Memory) * redisMaxFrac); c.Redis.MaxMemory > lim {
		bad("redis.maxmemory", "must be ≤ 70%% of redis.memory (%s) so an AOF rewrite cannot be OOM-killed, got %s", lim, c.Redis.MaxMemory)
	}
	c.validateEdge(bad)
	c.validateConsole(bad)
	if !bucketRE.MatchString(c.MinIO.Bucket) {
		bad("minio.bucket", "must be a valid bucket name (3–63 of a-z, 0-9, '.', '-'), got %q", c.MinIO.Bucket)
	}
	c.Metrics.validate(bad)
	return errors.Join(errs...)
}
