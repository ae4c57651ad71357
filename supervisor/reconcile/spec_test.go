package reconcile

import (
	"slices"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
)

func TestBuildSpecNames(t *testing.T) {
	c := config.Default("prod")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := BuildSpec(c, testSecrets("/s"), testHost)
	if err != nil {
		t.Fatal(err)
	}
	if s.Network != "corporate-intel_corpintel" {
		t.Errorf("network %q", s.Network)
	}
	if want := []string{"corporate-intel_postgres_data", "corporate-intel_redis_data", "corporate-intel_minio_data"}; !slices.Equal(s.Volumes, want) {
		t.Errorf("volumes %q", s.Volumes)
	}
	if got := stack.ContainerName(c.Project, stack.ServicePostgres, 1); got != "corporate-intel-postgres" {
		t.Errorf("postgres name %q", got)
	}
	if got := stack.ContainerName(c.Project, stack.ServiceAPI, 2); got != "corporate-intel-api-2" {
		t.Errorf("api name %q", got)
	}
	if got := stack.JobContainerName(c.Project, stack.JobMigrate); got != "corporate-intel-job-migrate" {
		t.Errorf("job name %q", got)
	}
	var names []string
	for _, svc := range s.Services {
		names = append(names, svc.Name)
	}
	if !slices.Equal(names, stack.Services) {
		t.Errorf("service order %q", names)
	}
	if _, ok := s.Service("nginx"); ok {
		t.Error("nginx in spec")
	}
	if len(s.Jobs) != 1 || s.Jobs[0].Name != stack.JobMigrate {
		t.Errorf("prod jobs %+v", s.Jobs)
	}
}

func TestBuildSpecSettings(t *testing.T) {
	s := testSpec(t, "prod", func(c *config.Config) {
		c.Postgres.CPUs = 8 // more than the host's 2 cores
		c.API.CORSOrigins = []string{"https://a", "https://b"}
		c.API.OTLPEndpoint = "http://jaeger:4318"
	})
	pg, _ := s.Service(stack.ServicePostgres)
	args := strings.Join(pg.Container.Cmd, " ")
	for _, want := range []string{"postgres -c", "shared_buffers=1GB", "effective_cache_size=3GB", "maintenance_work_mem=256MB",
		"max_connections=200", "work_mem=16MB", "wal_level=replica", "archive_mode=on", "archive_command=/bin/true", "random_page_cost=1.1"} {
		if !strings.Contains(args, want) {
			t.Errorf("postgres args lack %q: %s", want, args)
		}
	}
	if pg.Container.NanoCPUs != 2e9 {
		t.Errorf("cpus not clamped: %d", pg.Container.NanoCPUs)
	}
	if !pg.Stateful || pg.Replicas != 1 {
		t.Errorf("postgres %+v", pg)
	}
	rd, _ := s.Service(stack.ServiceRedis)
	if args := strings.Join(rd.Container.Cmd, " "); !strings.Contains(args, "--maxmemory 1503238553 --maxmemory-policy allkeys-lru") {
		t.Errorf("redis args %s", args)
	}
	api, _ := s.Service(stack.ServiceAPI)
	env := strings.Join(api.Container.Env, "\n")
	for _, want := range []string{"CORPINTEL_PG_POOL_MAX=11", "CORPINTEL_PG_DB=corporate_intel_prod", "CORPINTEL_PG_USER=intel_prod_user",
		"CORPINTEL_PG_PASSWORD_FILE=/run/secrets/postgres_password", "CORPINTEL_CORS_ORIGINS=https://a,https://b", "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318"} {
		if !strings.Contains(env, want) {
			t.Errorf("api env lacks %q", want)
		}
	}
	if s.PoolMax != 11 || api.Replicas != 2 {
		t.Errorf("pool %d replicas %d", s.PoolMax, api.Replicas)
	}
	// No secret values anywhere in any env; secrets only as read-only mounts.
	for _, svc := range s.Services {
		for _, e := range svc.Container.Env {
			if k, _, _ := strings.Cut(e, "="); strings.Contains(k, "PASSWORD") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: secret in env: %s", svc.Name, k)
			}
		}
		for _, m := range svc.Container.Mounts {
			if m.Type == "bind" && (!m.ReadOnly || !strings.HasPrefix(m.Target, "/run/secrets/")) {
				t.Errorf("%s: bad secret mount %+v", svc.Name, m)
			}
		}
	}
}

func TestBuildSpecOverridesAndMemoryClamp(t *testing.T) {
	s := testSpec(t, "dev", func(c *config.Config) {
		c.Postgres.SharedBuffers = 512 * config.MiB
		c.Postgres.Memory = 64 * config.GiB // above host memory: settings use the host's
		c.Redis.MaxMemory = 100 * config.MiB
	})
	pg, _ := s.Service(stack.ServicePostgres)
	args := strings.Join(pg.Container.Cmd, " ")
	if !strings.Contains(args, "shared_buffers=512MB") || !strings.Contains(args, "effective_cache_size=18GB") || !strings.Contains(args, "maintenance_work_mem=1536MB") {
		t.Errorf("args %s", args)
	}
	rd, _ := s.Service(stack.ServiceRedis)
	if !slices.Contains(rd.Container.Cmd, "104857600") {
		t.Errorf("redis cmd %q", rd.Container.Cmd)
	}
	if len(s.Jobs) != 2 || s.Jobs[1].Name != stack.JobSeed || !s.Jobs[1].Once {
		t.Errorf("dev jobs %+v", s.Jobs)
	}
}

func TestHashStability(t *testing.T) {
	a := testSpec(t, "prod", nil)
	b := testSpec(t, "prod", nil)
	scaled := a.WithScale(stack.ServiceAPI, 5)
	for i := range a.Services {
		if a.Services[i].Container.Hash != b.Services[i].Container.Hash || a.Services[i].Container.Hash != scaled.Services[i].Container.Hash {
			t.Errorf("%s: hash not stable", a.Services[i].Name)
		}
	}
	if api, _ := scaled.Service(stack.ServiceAPI); api.Replicas != 5 {
		t.Errorf("WithScale: %d", api.Replicas)
	}
	if api, _ := a.Service(stack.ServiceAPI); api.Replicas != 2 {
		t.Error("WithScale changed the original")
	}
	c := testSpec(t, "prod", func(c *config.Config) { c.API.JWTIssuer = "x" })
	for i, svc := range c.Services {
		changed := svc.Container.Hash != a.Services[i].Container.Hash
		if changed != (svc.Name == stack.ServiceAPI) {
			t.Errorf("%s: hash changed = %v", svc.Name, changed)
		}
	}
}

func TestBuildSpecMissingSecret(t *testing.T) {
	sf := testSecrets("/s")
	delete(sf[stack.ServiceMinIO], stack.SecretMinIORootUser)
	if _, err := BuildSpec(testConfig(t, "dev", nil), sf, testHost); err == nil || !strings.Contains(err.Error(), "minio_root_user") {
		t.Errorf("err = %v", err)
	}
}

// After a restore into new volumes, a stateful service's spec mounts the live volume
// (and so its hash changes: the reconciler recreates it there, stop-first, with
// rollback to the old container and volume if the gate fails).
func TestSpecFollowsLiveVolumes(t *testing.T) {
	cfg := testConfig(t, "prod", nil)
	h := testHost
	before, _ := BuildSpec(cfg, testSecrets("/s"), h)
	h.LiveVolumes = map[string]string{stack.ServicePostgres: "cit_postgres_data_r2"}
	after, _ := BuildSpec(cfg, testSecrets("/s"), h)
	pg, _ := after.Service(stack.ServicePostgres)
	if pg.Container.Mounts[0].Source != "cit_postgres_data_r2" || after.Volumes[0] != "cit_postgres_data_r2" {
		t.Errorf("postgres mounts %+v, volumes %v", pg.Container.Mounts[0], after.Volumes)
	}
	for i, svc := range before.Services {
		changed := svc.Container.Hash != after.Services[i].Container.Hash
		if changed != (svc.Name == stack.ServicePostgres) {
			t.Errorf("%s: hash changed = %v", svc.Name, changed)
		}
	}
	plan := BuildPlan(after, healthy(before))
	if got := plan.String(); !strings.Contains(got, "create-volume  -            cit_postgres_data_r2") || !strings.Contains(got, "recreate       postgres/1") {
		t.Errorf("plan after a volume switch:\n%s", got)
	}
}
