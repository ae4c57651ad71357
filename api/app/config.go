// Package app holds what every API module is built from: the API's configuration (read
// from the environment and secret files, as the supervisor hands it to each container)
// and the shared dependencies (Deps).
package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the API's configuration. See docs/ARCHITECTURE.md for the env contract.
type Config struct {
	Listen   string
	Profile  string
	LogLevel string

	PGHost, PGDB, PGUser, PGPassword string
	PGPort                           int
	PGPoolMax                        int

	RedisAddr, RedisPassword string
	// LocalCacheMB sizes each replica's in-memory layer in front of Redis (0: off).
	LocalCacheMB int

	MinIOEndpoint, MinIOBucket, MinIOAccessKey, MinIOSecretKey string
	MinIOTLS                                                   bool

	KEK         []byte
	JWTIssuer   string
	JWTAudience string
	AccessTTL   time.Duration
	RefreshTTL  time.Duration
	KeyRotation time.Duration

	CORSOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For the API believes: the
	// supervisor's edge only (CORPINTEL_TRUSTED_PROXIES: "gateway" — the container's
	// default gateway, which is where the edge on the host connects from — or a list of
	// IPs/CIDRs; "none" trusts nobody). Any other container on the stack network that
	// sends forwarding headers is not believed.
	TrustedProxies  []*net.IPNet
	UploadMaxBytes  int64
	ShutdownTimeout time.Duration
	OTLPEndpoint    string
}

// Defaults returns the configuration used when no variable is set.
func Defaults() Config {
	return Config{
		Listen: ":8080", Profile: "dev", LogLevel: "info",
		PGHost: "postgres", PGPort: 5432, PGDB: "corporate_intel", PGUser: "intel_user", PGPoolMax: 10,
		RedisAddr: "redis:6379", LocalCacheMB: 64,
		MinIOEndpoint: "minio:9000", MinIOBucket: "corporate-documents",
		JWTIssuer: "corpintel", JWTAudience: "corpintel-api",
		AccessTTL: 15 * time.Minute, RefreshTTL: 30 * 24 * time.Hour, KeyRotation: 30 * 24 * time.Hour,
		UploadMaxBytes: 100 << 20, ShutdownTimeout: 20 * time.Second,
	}
}

// FromEnv reads the configuration from getenv (os.Getenv in production). Secrets come
// from the *_FILE variables (default paths under /run/secrets) or, for tests and local
// runs, from the plain variables. Every problem is reported, not just the first.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Defaults()
	var errs []error
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	num := func(key string, dst *int, min, max int) {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min || n > max {
				errs = append(errs, fmt.Errorf("%s=%q: want an integer in %d…%d", key, v, min, max))
				return
			}
			*dst = n
		}
	}
	dur := func(key string, dst *time.Duration) {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 15m", key, v))
				return
			}
			*dst = d
		}
	}
	secret := func(key, defFile string, dst *string, required bool) {
		if v := getenv(key); v != "" {
			*dst = v
			return
		}
		file := getenv(key + "_FILE")
		if file == "" {
			file = defFile
		}
		b, err := os.ReadFile(file) // #nosec G304 -- the path is operator configuration
		switch {
		case err == nil:
			*dst = strings.TrimRight(string(b), "\r\n")
		case required || getenv(key+"_FILE") != "":
			errs = append(errs, fmt.Errorf("%s_FILE: read secret: %w (set %s_FILE or %s)", key, err, key, key))
		}
	}
	str("CORPINTEL_API_LISTEN", &c.Listen)
	str("CORPINTEL_PROFILE", &c.Profile)
	str("CORPINTEL_LOG_LEVEL", &c.LogLevel)
	str("CORPINTEL_PG_HOST", &c.PGHost)
	num("CORPINTEL_PG_PORT", &c.PGPort, 1, 65535)
	str("CORPINTEL_PG_DB", &c.PGDB)
	str("CORPINTEL_PG_USER", &c.PGUser)
	num("CORPINTEL_PG_POOL_MAX", &c.PGPoolMax, 1, 1000)
	secret("CORPINTEL_PG_PASSWORD", "/run/secrets/postgres_password", &c.PGPassword, false)
	str("CORPINTEL_REDIS_ADDR", &c.RedisAddr)
	num("CORPINTEL_LOCAL_CACHE_MB", &c.LocalCacheMB, 0, 65536)
	secret("CORPINTEL_REDIS_PASSWORD", "/run/secrets/redis_password", &c.RedisPassword, false)
	str("CORPINTEL_MINIO_ENDPOINT", &c.MinIOEndpoint)
	str("CORPINTEL_MINIO_BUCKET", &c.MinIOBucket)
	secret("CORPINTEL_MINIO_ACCESS_KEY", "/run/secrets/minio_root_user", &c.MinIOAccessKey, false)
	secret("CORPINTEL_MINIO_SECRET_KEY", "/run/secrets/minio_root_password", &c.MinIOSecretKey, false)
	c.MinIOTLS = getenv("CORPINTEL_MINIO_TLS") == "true"
	var kek string
	secret("CORPINTEL_JWT_KEK", "/run/secrets/jwt_kek", &kek, false)
	c.KEK = []byte(kek)
	str("CORPINTEL_JWT_ISSUER", &c.JWTIssuer)
	str("CORPINTEL_JWT_AUDIENCE", &c.JWTAudience)
	dur("CORPINTEL_ACCESS_TTL", &c.AccessTTL)
	dur("CORPINTEL_REFRESH_TTL", &c.RefreshTTL)
	dur("CORPINTEL_KEY_ROTATION", &c.KeyRotation)
	dur("CORPINTEL_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	if v := getenv("CORPINTEL_CORS_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSOrigins = append(c.CORSOrigins, o)
			}
		}
	}
	if v := getenv("CORPINTEL_UPLOAD_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("CORPINTEL_UPLOAD_MAX_BYTES=%q: want a positive number of bytes", v))
		} else {
			c.UploadMaxBytes = n
		}
	}
	c.OTLPEndpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if nets, err := ParseTrustedProxies(getenv("CORPINTEL_TRUSTED_PROXIES"), DefaultGateway); err != nil {
		errs = append(errs, fmt.Errorf("CORPINTEL_TRUSTED_PROXIES: %w", err))
	} else {
		c.TrustedProxies = nets
	}
	switch c.Profile {
	case "dev", "staging", "prod":
	default:
		errs = append(errs, fmt.Errorf("CORPINTEL_PROFILE=%q: want dev, staging or prod", c.Profile))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("CORPINTEL_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel))
	}
	return c, errors.Join(errs...)
}

// RequireServing reports what a serving API (not `healthcheck`) cannot start without.
func (c Config) RequireServing() error {
	var errs []error
	if len(c.KEK) < 32 {
		errs = append(errs, errors.New("the JWT key-encryption key is missing or shorter than 32 bytes (CORPINTEL_JWT_KEK_FILE)"))
	}
	if c.PGPassword == "" {
		errs = append(errs, errors.New("no PostgreSQL password (CORPINTEL_PG_PASSWORD_FILE)"))
	}
	return errors.Join(errs...)
}

// ParseTrustedProxies reads CORPINTEL_TRUSTED_PROXIES: "" or "gateway" (the default
// gateway, from gateway()), "none", or comma-separated IPs and CIDRs.
func ParseTrustedProxies(v string, gateway func() (net.IP, error)) ([]*net.IPNet, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "none":
		return nil, nil
	case "", "gateway":
		ip, err := gateway()
		if err != nil {
			// No default route (not in a container): nobody's forwarding headers count.
			return nil, nil //nolint:nilerr // trusting nobody is the safe answer
		}
		return []*net.IPNet{hostNet(ip)}, nil
	}
	var out []*net.IPNet
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, n, err := net.ParseCIDR(part); err == nil {
			out = append(out, n)
			continue
		}
		ip := net.ParseIP(part)
		if ip == nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", part)
		}
		out = append(out, hostNet(ip))
	}
	return out, nil
}

func hostNet(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

// DefaultGateway reads the IPv4 default route's gateway from /proc/net/route. Inside an
// API container that is the stack network's bridge address: where the supervisor on
// the host connects from.
func DefaultGateway() (net.IP, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, err
	}
	return parseRouteGateway(string(b))
}

func parseRouteGateway(table string) (net.IP, error) {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		g, err := strconv.ParseUint(f[2], 16, 32)
		if err != nil || g == 0 {
			continue
		}
		// /proc/net/route writes the address in host byte order (little-endian here).
		return net.IPv4(byte(g), byte(g>>8), byte(g>>16), byte(g>>24)), nil
	}
	return nil, errors.New("no default route")
}
