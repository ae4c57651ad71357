package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corpintel.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadProfiles(t *testing.T) {
	cases := []struct {
		profile  string
		replicas int
		db, user string
		level    string
		sample   bool
		monitor  bool
	}{
		{"dev", 1, "corporate_intel", "intel_user", "debug", true, false},
		{"staging", 2, "corporate_intel_staging", "intel_staging_user", "info", false, true},
		{"prod", 2, "corporate_intel_prod", "intel_prod_user", "info", false, true},
	}
	for _, c := range cases {
		t.Run(c.profile, func(t *testing.T) {
			path := writeFile(t, "profile = \""+c.profile+"\"\n")
			cfg, warn, err := Load(Options{Path: path})
			if err != nil || len(warn) != 0 {
				t.Fatalf("Load: %v %v", err, warn)
			}
			got := []any{cfg.API.Replicas, cfg.Postgres.DB, cfg.Postgres.User, cfg.LogLevel, cfg.SampleData, cfg.Monitoring}
			want := []any{c.replicas, c.db, c.user, c.level, c.sample, c.monitor}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if cfg.File != path {
				t.Errorf("File = %q", cfg.File)
			}
		})
	}
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	// The default path is absent on test machines; an absent default means defaults.
	if _, err := os.Stat(DefaultPath); err == nil {
		t.Skip(DefaultPath + " exists on this machine")
	}
	cfg, _, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Profile != "dev" || cfg.Project != "corporate-intel" || cfg.Listen != "127.0.0.1:8000" ||
		cfg.StateDir != "/var/lib/corpintel/corporate-intel" || cfg.Socket != "/run/corpintel/corporate-intel.sock" || cfg.File != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Postgres.Memory != 4*GiB || cfg.Redis.CPUs != 1 || cfg.MinIO.Image != "corpintel/minio:latest" {
		t.Errorf("resources: %+v %+v %+v", cfg.Postgres.Resources, cfg.Redis.Resources, cfg.MinIO.Resources)
	}
}

func TestLoadFileAndEnv(t *testing.T) {
	path := writeFile(t, `
profile = "staging"
project = "acme"
[api]
replicas = 3
memory = "1GiB"
cors_origins = ["https://a.example"]
[postgres]
image = "postgres:15"
work_mem = "32MB"
[redis]
maxmemory = "512MiB"
`)
	env := []string{
		"CORPINTEL_API_REPLICAS=5",
		"CORPINTEL_LISTEN=127.0.0.1:18000",
		"CORPINTEL_POSTGRES_CPUS=1.5",
		"CORPINTEL_MONITORING=false",
		"CORPINTEL_API_CORS_ORIGINS=https://x.example, https://y.example",
		"CORPINTEL_PG_HOST=postgres",             // an API container variable: warned about, not an error
		"CORPINTEL_CACHE=/root/.cache/corpintel", // the tooling's (make run): not warned about
		"HOME=/root",
	}
	cfg, warn, err := Load(Options{Path: path, Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "CORPINTEL_PG_HOST") {
		t.Errorf("warnings = %q", warn)
	}
	if cfg.Profile != "staging" || cfg.Project != "acme" || cfg.API.Replicas != 5 || cfg.API.Memory != GiB ||
		cfg.Listen != "127.0.0.1:18000" || cfg.Postgres.CPUs != 1.5 || cfg.Postgres.Image != "postgres:15" ||
		cfg.Postgres.WorkMem != 32*MiB || cfg.Redis.MaxMemory != 512*MiB || cfg.Monitoring {
		t.Errorf("merged: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.API.CORSOrigins, []string{"https://x.example", "https://y.example"}) {
		t.Errorf("cors = %q", cfg.API.CORSOrigins)
	}
	if cfg.StateDir != "/var/lib/corpintel/acme" || cfg.Socket != "/run/corpintel/acme.sock" {
		t.Errorf("derived names: %q %q", cfg.StateDir, cfg.Socket)
	}
}

func TestProfilePrecedence(t *testing.T) {
	path := writeFile(t, "profile = \"staging\"\n")
	cfg, _, err := Load(Options{Path: path, Environ: []string{"CORPINTEL_PROFILE=prod"}})
	if err != nil || cfg.Profile != "prod" || cfg.Postgres.DB != "corporate_intel_prod" {
		t.Fatalf("env profile: %v %+v", err, cfg)
	}
	cfg, _, err = Load(Options{Path: path, Environ: []string{"CORPINTEL_PROFILE=prod"}, Profile: "dev"})
	if err != nil || cfg.Profile != "dev" || cfg.API.Replicas != 1 {
		t.Fatalf("flag profile: %v %+v", err, cfg)
	}
	cfg, _, err = Load(Options{Environ: []string{"CORPINTEL_CONFIG=" + path}})
	if err != nil || cfg.Profile != "staging" {
		t.Fatalf("CORPINTEL_CONFIG: %v %+v", err, cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		file string // "" = no file written
		path string // explicit path (when file == "")
		env  []string
		want []string
	}{
		{"missing explicit file", "", "/nonexistent/corpintel.toml", nil, []string{`/nonexistent/corpintel.toml: file does not exist`}},
		{"syntax", "profile = \n", "", nil, []string{`line 1`}},
		{"type mismatch", "[api]\nreplicas = \"three\"\n", "", nil, []string{`key "api.replicas": line 2`}},
		{"unknown key", "[api]\nreplica = 3\n", "", nil, []string{`key "api.replica": unknown key`}},
		{"unknown table", "[grafana]\nport = 3\n", "", nil, []string{`key "grafana": unknown key`, `key "grafana.port": unknown key`}},
		{"profile", "profile = \"qa\"\n", "", nil, []string{`key "profile": must be one of dev, staging, prod, got "qa"`}},
		{"replicas", "[api]\nreplicas = 40\n", "", nil, []string{`key "api.replicas": must be 0…16, got 40`}},
		{"replicas from env", "", "", []string{"CORPINTEL_API_REPLICAS=17"}, []string{`environment: key "CORPINTEL_API_REPLICAS": must be 0…16, got 17`}},
		{"env not a number", "", "", []string{"CORPINTEL_API_REPLICAS=many"}, []string{`environment: key "CORPINTEL_API_REPLICAS": must be an integer`}},
		{"env float", "", "", []string{"CORPINTEL_REDIS_CPUS=x"}, []string{`CORPINTEL_REDIS_CPUS": must be a number`}},
		{"env bool", "", "", []string{"CORPINTEL_SAMPLE_DATA=yes please"}, []string{`must be true or false`}},
		{"env size", "", "", []string{"CORPINTEL_API_MEMORY=4 parsecs"}, []string{`unknown size unit`}},
		{"env size number", "", "", []string{"CORPINTEL_API_MEMORY=lots"}, []string{`must be a size like`}},
		{"project", "project = \"Corporate Intel\"\n", "", nil, []string{`key "project": must be 1–40`}},
		{"listen", "listen = \"8000\"\n", "", nil, []string{`key "listen": must be host:port`}},
		{"listen port", "listen = \"127.0.0.1:99999\"\n", "", nil, []string{`port must be 1…65535`}},
		{"listen host", "listen = \"example.com:80\"\n", "", nil, []string{`key "listen": must be a loopback address`}},
		{"listen all addresses", "listen = \"0.0.0.0:8000\"\n", "", nil, []string{`key "listen": must be a loopback address`, `public traffic goes through the edge`}},
		{"listen empty host", "listen = \":8000\"\n", "", nil, []string{`key "listen": must be a loopback address`}},
		{"listen public ip", "listen = \"10.1.2.3:8000\"\n", "", nil, []string{`key "listen": must be a loopback address`}},
		{"state dir root", "state_dir = \"/\"\n", "", nil, []string{`key "state_dir": must be a directory of its own`, `/var/lib/corpintel/corporate-intel`}},
		{"state dir etc", "state_dir = \"/etc/\"\n", "", nil, []string{`key "state_dir": must be a directory of its own`}},
		{"state dir var lib env", "", "", []string{"CORPINTEL_STATE_DIR=/var/lib"}, []string{`environment: key "CORPINTEL_STATE_DIR": must be a directory of its own`}},
		{"jwt issuer", "[api]\njwt_issuer = \"\"\n", "", nil, []string{`key "api.jwt_issuer": must not be empty`}},
		{"jwt audience", "[api]\njwt_audience = \" \"\n", "", nil, []string{`key "api.jwt_audience": must not be empty`}},
		{"migrate timeout", "[api]\nmigrate_timeout = \"10s\"\n", "", nil, []string{`key "api.migrate_timeout": must be between 1m and 24h, got 10s`}},
		{"edge https", "[edge]\nhttps = \"443\"\n", "", nil, []string{`key "edge.https"`}},
		{"edge trusted proxies", "[edge]\ntrusted_proxies = [\"lb.example\"]\n", "", nil, []string{`key "edge.trusted_proxies": "lb.example" is neither`}},
		{"edge allow", "", "", []string{"CORPINTEL_EDGE_RATE_LIMIT_ALLOW=10.0.0.0/8,bogus"}, []string{`CORPINTEL_EDGE_RATE_LIMIT_ALLOW`}},
		{"edge burst", "[edge]\nrate_burst = 0\n", "", nil, []string{`key "edge.rate_burst"`}},
		{"edge timeout", "[edge]\nrequest_timeout = \"10ms\"\n", "", nil, []string{`key "edge.request_timeout"`}},
		{"tls mode", "[tls]\nmode = \"letsencrypt\"\n", "", nil, []string{`key "tls.mode": must be one of acme, self-signed, file`}},
		{"tls file", "[tls]\nmode = \"file\"\ncert_file = \"cert.pem\"\n", "", nil, []string{`key "tls.cert_file"`}},
		{"tls eab", "[tls]\nmode = \"acme\"\neab_key_id = \"k\"\n", "", nil, []string{`both tls.eab_key_id and tls.eab_hmac_file`}},
		{"migrate timeout syntax", "[api]\nmigrate_timeout = \"ten minutes\"\n", "", nil, []string{`must be a duration like 90s`}},
		{"socket", "socket = \"run/x.sock\"\n", "", nil, []string{`key "socket": must be an absolute path`}},
		{"state dir", "state_dir = \"state\"\n", "", nil, []string{`key "state_dir": must be an absolute path`}},
		{"log level", "log_level = \"loud\"\n", "", nil, []string{`key "log_level"`}},
		{"upload", "[api]\nupload_max_bytes = 0\n", "", nil, []string{`key "api.upload_max_bytes"`}},
		{"image", "[minio]\nimage = \"minio server\"\n", "", nil, []string{`key "minio.image"`}},
		{"cpus", "[redis]\ncpus = 0.0\n", "", nil, []string{`key "redis.cpus": must be > 0`}},
		{"memory", "[postgres]\nmemory = \"128MiB\"\n", "", nil, []string{`key "postgres.memory": must be at least 256MiB, got 128MiB`}},
		{"db", "[postgres]\ndb = \"Corp-DB\"\n", "", nil, []string{`key "postgres.db"`}},
		{"user", "[postgres]\nuser = \"1x\"\n", "", nil, []string{`key "postgres.user"`}},
		{"max conns", "[postgres]\nmax_connections = 5\n", "", nil, []string{`key "postgres.max_connections": must be 20…10000, got 5`}},
		{"reserved", "[postgres]\nmax_connections = 40\n", "", nil, []string{`key "postgres.reserved_connections"`}},
		{"shared buffers", "[postgres]\nshared_buffers = \"8GiB\"\n", "", nil, []string{`key "postgres.shared_buffers"`}},
		{"work mem", "[postgres]\nwork_mem = \"1kB\"\n", "", nil, []string{`key "postgres.work_mem"`}},
		{"random page cost", "[postgres]\nrandom_page_cost = 0.0\n", "", nil, []string{`key "postgres.random_page_cost"`}},
		{"checkpoint", "[postgres]\ncheckpoint_completion_target = 1.5\n", "", nil, []string{`key "postgres.checkpoint_completion_target"`}},
		{"redis maxmemory", "[redis]\nmaxmemory = \"2GiB\"\n", "", nil, []string{`key "redis.maxmemory": must be ≤ 70% of redis.memory`}},
		{"bucket", "[minio]\nbucket = \"Docs\"\n", "", nil, []string{`key "minio.bucket"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if c.file != "" {
				path = writeFile(t, c.file)
			} else if path == "" {
				path = writeFile(t, "")
			}
			_, _, err := Load(Options{Path: path, Environ: c.env})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !IsConfigError(err) {
				t.Errorf("IsConfigError(%v) = false", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "corpintel.toml", Key: "api.replicas", Problem: "must be 0…16, got 40"}
	if got, want := e.Error(), `corpintel.toml: key "api.replicas": must be 0…16, got 40`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (&Error{File: "f", Problem: "p"}).Error(); got != "f: p" {
		t.Errorf("got %q", got)
	}
	if IsConfigError(os.ErrNotExist) {
		t.Error("IsConfigError(ErrNotExist)")
	}
}

func TestUnreadableFile(t *testing.T) {
	_, _, err := Load(Options{Path: t.TempDir()}) // a directory
	if !IsConfigError(err) || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("err = %v", err)
	}
}

func TestByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		str  string
		pg   string
	}{
		{"4GiB", 4 * GiB, "4GiB", "4GB"},
		{"4GB", 4 * GiB, "4GiB", "4GB"},
		{"512m", 512 * MiB, "512MiB", "512MB"},
		{"1.5GiB", 1536 * MiB, "1536MiB", "1536MB"},
		{"1024", KiB, "1KiB", "1kB"},
		{"100", 100, "100B", "0kB"},
		{"2TiB", 2 * TiB, "2TiB", "2048GB"},
	}
	for _, c := range cases {
		var b ByteSize
		if err := b.UnmarshalText([]byte(c.in)); err != nil || b != c.want {
			t.Errorf("%q → %d, %v; want %d", c.in, b, err, c.want)
		}
		if b.String() != c.str || b.PG() != c.pg {
			t.Errorf("%q: String %q PG %q", c.in, b.String(), b.PG())
		}
		if txt, _ := b.MarshalText(); string(txt) != c.str {
			t.Errorf("MarshalText %q", txt)
		}
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := Keys()
	for _, k := range []string{"profile", "api.replicas", "api.image", "postgres.max_connections", "redis.maxmemory", "minio.bucket", "state_dir"} {
		found := false
		for _, got := range keys {
			found = found || got == k
		}
		if !found {
			t.Errorf("Keys() lacks %q: %q", k, keys)
		}
	}
	if got := EnvName("api.replicas"); got != "CORPINTEL_API_REPLICAS" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestValidateAndServiceResources(t *testing.T) {
	c := Default("prod")
	c.Project = "x1"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/var/lib/corpintel/x1" {
		t.Errorf("StateDir %q", c.StateDir)
	}
	for _, s := range []string{"api", "postgres", "redis", "minio"} {
		if r, ok := c.ServiceResources(s); !ok || r.Image == "" {
			t.Errorf("ServiceResources(%q) = %+v, %v", s, r, ok)
		}
	}
	if _, ok := c.ServiceResources("nginx"); ok {
		t.Error("nginx known")
	}
}
