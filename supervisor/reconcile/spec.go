package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
)

// Spec is the desired state of the stack, derived from config alone (plus host facts,
// secret file paths and image IDs). It is pure data: Plan compares it with Observed.
type Spec struct {
	Project  string
	Network  string
	Volumes  []string      // data volumes, in service order
	Services []ServiceSpec // dependency order: postgres, redis, minio, api
	// Jobs run before the API starts (migrate every time API containers are started,
	// seed once per project when the profile wants sample data).
	Jobs []JobSpec
	// PoolMax is the pool size handed to each API replica (see BuildSpec).
	PoolMax int
}

// Service returns the named service spec.
func (s Spec) Service(name string) (ServiceSpec, bool) {
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc, true
		}
	}
	return ServiceSpec{}, false
}

// ServiceSpec is one service: its replica count and the container template.
type ServiceSpec struct {
	Name string
	// Stateful services own a volume: they are recreated stop-first and never run two
	// containers at once. The stateless API is rolled out new-first.
	Stateful bool
	Replicas int
	// ForceRecreate replaces every container of the service on the next pass even when
	// its config hash matches (set by Reconciler.MarkRestart, not part of the hash).
	ForceRecreate bool
	// HealthTimeout bounds the health gate after a start.
	HealthTimeout time.Duration
	Container     ContainerSpec
}

// JobSpec is a one-shot container run to completion.
type JobSpec struct {
	Name string
	// Once: run only if the state store has no record of it (recorded after success).
	Once      bool
	Timeout   time.Duration
	Container ContainerSpec
}

// Mount is a volume or a bind mount (secret files).
type Mount struct {
	Type     string // "volume" or "bind"
	Source   string // volume name or host path
	Target   string
	ReadOnly bool
}

// HealthCheck mirrors Docker's (API 1.41: no start interval).
type HealthCheck struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// ContainerSpec is everything needed to create a container. Every field except
// PoolMax-style run-time values is recreate-relevant and goes into Hash.
type ContainerSpec struct {
	Image      string
	ImageID    string // resolved image ID; part of the hash so a rebuilt tag recreates
	Entrypoint []string
	Cmd        []string
	Env        []string // sorted; no secret values, only *_FILE paths
	Mounts     []Mount
	Health     *HealthCheck
	NanoCPUs   int64
	Memory     int64
	ShmSize    int64
	Aliases    []string // network aliases on the stack network
	StopGrace  time.Duration
	// Ready is how the supervisor probes the container itself (see ReadyProbe); not
	// part of the hash.
	Ready *ReadyProbe `json:"-"`
	// Hash is the sha256 (hex) of the fields above; set by BuildSpec.
	Hash string `json:"-"`
}

// computeHash hashes the recreate-relevant fields.
func (c ContainerSpec) computeHash() string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("supervisor: hash container spec: %v", err)) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Host describes the machine and engine facts the spec depends on.
type Host struct {
	CPUs   int   // online cores; CPU limits are clamped to this
	Memory int64 // bytes of RAM; settings derive from min(limit, Memory)
	// ImageIDs maps an image reference (as configured) to its ID. A missing entry
	// leaves ImageID empty (the plan then reports the image as missing).
	ImageIDs map[string]string
	// LiveVolumes maps a stateful service to the data volume it runs on when that is
	// not its default one (after a restore into new volumes; state store).
	LiveVolumes map[string]string
}

// Volume is the data volume a stateful service runs on.
func (h Host) Volume(project, service string) string {
	if v := h.LiveVolumes[service]; v != "" {
		return v
	}
	return stack.VolumeName(project, service)
}

// SecretFiles maps service → secret name → host path of that service's copy (owned by
// the service image's uid, mode 0400, versioned in the file name).
type SecretFiles map[string]map[string]string

// Health-check and gate timings. Every Docker health check is an exec into the
// container, a burst of CPU that a 2-core machine feels in its request latency (with
// 1 s intervals the five containers' checks took a third of a core at idle and pushed
// p99 at 1 000 req/s from 3 ms to 10–40 ms), so they run every 5 s. Start-up does not
// wait for them: the health gate asks the container itself (ReadyProbe).
var (
	statefulHealth = HealthCheck{Interval: 5 * time.Second, Timeout: 5 * time.Second, StartPeriod: 120 * time.Second, Retries: 3}
	apiHealth      = HealthCheck{Interval: 5 * time.Second, Timeout: 3 * time.Second, StartPeriod: 60 * time.Second, Retries: 3}
)

// apiStopGrace is an API replica's stop grace: more than the API's 20 s drain.
const apiStopGrace = 30 * time.Second

// BuildSpec derives the desired stack from the config. It is pure.
//
// Pool size: CORPINTEL_PG_POOL_MAX = (max_connections − reserved_connections) / 16
// (stack.MaxScale), i.e. computed for the largest allowed scale rather than the
// current one. It is part of the API's environment (and hash) but depends only on
// PostgreSQL settings, so `scale api=N` never recreates existing replicas and any
// scale stays within max_connections.
func BuildSpec(cfg *config.Config, secrets SecretFiles, host Host) (Spec, error) {
	p := cfg.Project
	spec := Spec{
		Project: p,
		Network: stack.NetworkName(p),
		PoolMax: (cfg.Postgres.MaxConnections - cfg.Postgres.ReservedConnections) / stack.MaxScale,
	}
	for _, svc := range []string{stack.ServicePostgres, stack.ServiceRedis, stack.ServiceMinIO} {
		spec.Volumes = append(spec.Volumes, host.Volume(p, svc))
	}

	mounts := func(service string) ([]Mount, error) {
		var ms []Mount
		for _, name := range stack.ServiceSecrets[service] {
			path := secrets[service][name]
			if path == "" {
				return nil, fmt.Errorf("build spec: no %s secret file for %s", name, service)
			}
			ms = append(ms, Mount{Type: "bind", Source: path, Target: stack.SecretPath(name), ReadOnly: true})
		}
		return ms, nil
	}
	base := func(service string) (ContainerSpec, error) {
		r, _ := cfg.ServiceResources(service)
		ms, err := mounts(service)
		if err != nil {
			return ContainerSpec{}, err
		}
		return ContainerSpec{
			Image:     r.Image,
			ImageID:   host.ImageIDs[r.Image],
			Mounts:    ms,
			NanoCPUs:  clampCPUs(r.CPUs, host.CPUs),
			Memory:    int64(r.Memory),
			Aliases:   []string{service},
			StopGrace: 10 * time.Second,
		}, nil
	}

	// postgres
	pg, err := base(stack.ServicePostgres)
	if err != nil {
		return Spec{}, err
	}
	pg.Env = []string{
		"POSTGRES_DB=" + cfg.Postgres.DB,
		"POSTGRES_PASSWORD_FILE=/run/secrets/" + stack.SecretPostgresPassword,
		"POSTGRES_USER=" + cfg.Postgres.User,
	}
	pg.Cmd = append([]string{"postgres"}, postgresArgs(cfg.Postgres, effectiveMemory(cfg.Postgres.Memory, host.Memory))...)
	pg.Mounts = append([]Mount{{Type: "volume", Source: host.Volume(p, stack.ServicePostgres), Target: "/var/lib/postgresql/data"}}, pg.Mounts...)
	pg.ShmSize = int64(256 * config.MiB) // parallel query uses /dev/shm; Docker's 64 MiB is too small
	pg.StopGrace = 60 * time.Second      // let a fast shutdown checkpoint
	// -h 127.0.0.1: the entrypoint's init-time server listens on the socket only, so a
	// TCP probe does not report ready before initialisation is done.
	pg.Health = withTest(statefulHealth, "CMD", "pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(stack.PortPostgres), "-U", cfg.Postgres.User, "-d", cfg.Postgres.DB)
	probes := ReadyProbes(cfg)
	pg.Ready = probes[stack.ServicePostgres]

	// redis
	rd, err := base(stack.ServiceRedis)
	if err != nil {
		return Spec{}, err
	}
	maxmem := cfg.Redis.MaxMemory
	if maxmem == 0 {
		maxmem = config.ByteSize(float64(effectiveMemory(cfg.Redis.Memory, host.Memory)) * 0.70)
	}
	rd.Env = []string{"REDIS_PASSWORD_FILE=/run/secrets/" + stack.SecretRedisPassword}
	rd.Cmd = []string{"redis-server", "--appendonly", "yes", "--maxmemory", strconv.FormatInt(int64(maxmem), 10), "--maxmemory-policy", "allkeys-lru"}
	rd.Mounts = append([]Mount{{Type: "volume", Source: host.Volume(p, stack.ServiceRedis), Target: "/data"}}, rd.Mounts...)
	// The password travels in REDISCLI_AUTH, never in argv.
	rd.Health = withTest(statefulHealth, "CMD-SHELL",
		`REDISCLI_AUTH="$(cat /run/secrets/`+stack.SecretRedisPassword+`)" redis-cli -h 127.0.0.1 -p `+strconv.Itoa(stack.PortRedis)+` ping | grep -q PONG`)
	rd.Ready = probes[stack.ServiceRedis]

	// minio
	mn, err := base(stack.ServiceMinIO)
	if err != nil {
		return Spec{}, err
	}
	mn.Env = []string{
		"MINIO_ROOT_PASSWORD_FILE=/run/secrets/" + stack.SecretMinIORootPassword,
		"MINIO_ROOT_USER_FILE=/run/secrets/" + stack.SecretMinIORootUser,
	}
	mn.Cmd = []string{"minio", "server", "/data", "--address", ":" + strconv.Itoa(stack.PortMinIO), "--console-address", ":" + strconv.Itoa(stack.PortMinIOConsole)}
	mn.Mounts = append([]Mount{{Type: "volume", Source: host.Volume(p, stack.ServiceMinIO), Target: "/data"}}, mn.Mounts...)
	mn.Health = withTest(statefulHealth, "CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:"+strconv.Itoa(stack.PortMinIO)+"/minio/health/live")
	mn.Ready = probes[stack.ServiceMinIO]

	// api
	api, err := base(stack.ServiceAPI)
	if err != nil {
		return Spec{}, err
	}
	api.Env = apiEnv(cfg, spec.PoolMax)
	api.Entrypoint = []string{"corpintel"}
	api.Cmd = []string{"api"}
	api.Health = withTest(apiHealth, "CMD", "corpintel", "api", "healthcheck")
	// The edge drains a replica before it is stopped; SIGTERM then gives the API its
	// own drain (20 s, CORPINTEL_SHUTDOWN_TIMEOUT) for what is still in flight: the grace
	// must be longer than both.
	api.StopGrace = apiStopGrace
	api.Ready = probes[stack.ServiceAPI]

	replicas := cfg.API.Replicas
	spec.Services = []ServiceSpec{
		{Name: stack.ServicePostgres, Stateful: true, Replicas: 1, HealthTimeout: 3 * time.Minute, Container: pg},
		{Name: stack.ServiceRedis, Stateful: true, Replicas: 1, HealthTimeout: time.Minute, Container: rd},
		{Name: stack.ServiceMinIO, Stateful: true, Replicas: 1, HealthTimeout: time.Minute, Container: mn},
		{Name: stack.ServiceAPI, Replicas: replicas, HealthTimeout: time.Minute, Container: api},
	}

	spec.Jobs = []JobSpec{apiJob(api, stack.JobMigrate, false, time.Duration(cfg.API.MigrateTimeout), "migrate")}
	if cfg.SampleData {
		spec.Jobs = append(spec.Jobs, apiJob(api, stack.JobSeed, true, 10*time.Minute, "seed", "--companies", "200", "--years", "2"))
	}

	for i := range spec.Services {
		c := &spec.Services[i].Container
		slices.Sort(c.Env)
		c.Hash = c.computeHash()
	}
	for i := range spec.Jobs {
		c := &spec.Jobs[i].Container
		c.Hash = c.computeHash()
	}
	return spec, nil
}

// apiJob is a one-shot job run from the API image with the API's environment and
// secrets (no health check, no network alias).
func apiJob(api ContainerSpec, name string, once bool, timeout time.Duration, args ...string) JobSpec {
	c := api
	c.Health, c.Ready = nil, nil
	c.Aliases = nil
	c.Cmd = append([]string{"api"}, args...)
	c.Mounts = slices.Clone(api.Mounts)
	return JobSpec{Name: name, Once: once, Timeout: timeout, Container: c}
}

// adminPasswordTarget is where the create-admin job reads the password from.
const adminPasswordTarget = stack.SecretsDir + "/admin_password"

// CreateAdminJob is the one-shot job that creates an API admin (`corpintel api
// create-admin`): the password comes from passwordFile, a host file bind-mounted
// read-only for this run only, never from argv or the environment.
func (s Spec) CreateAdminJob(email, passwordFile string) (JobSpec, error) {
	api, ok := s.Service(stack.ServiceAPI)
	if !ok {
		return JobSpec{}, fmt.Errorf("create-admin: the spec has no %s service", stack.ServiceAPI)
	}
	j := apiJob(api.Container, stack.JobCreateAdmin, false, 2*time.Minute, "create-admin", "--email", email, "--password-file", adminPasswordTarget)
	j.Container.Mounts = append(j.Container.Mounts, Mount{Type: "bind", Source: passwordFile, Target: adminPasswordTarget, ReadOnly: true})
	j.Container.Hash = j.Container.computeHash()
	return j, nil
}

// WithScale returns a copy of the spec with the API scaled to n (n is not in any
// hash, so existing replicas are kept).
func (s Spec) WithScale(service string, n int) Spec {
	out := s
	out.Services = slices.Clone(s.Services)
	for i := range out.Services {
		if out.Services[i].Name == service {
			out.Services[i].Replicas = n
		}
	}
	return out
}

func withTest(h HealthCheck, test ...string) *HealthCheck {
	h.Test = test
	return &h
}

func clampCPUs(cpus float64, hostCPUs int) int64 {
	if hostCPUs > 0 && cpus > float64(hostCPUs) {
		cpus = float64(hostCPUs)
	}
	return int64(cpus * 1e9)
}

func effectiveMemory(limit config.ByteSize, hostMem int64) config.ByteSize {
	if hostMem > 0 && int64(limit) > hostMem {
		return config.ByteSize(hostMem)
	}
	return limit
}

// postgresArgs derives the server settings from the memory limit (the seed's tuning at
// 8 GiB: shared_buffers 25 %, effective_cache_size 75 %, maintenance_work_mem 1/16 capped
// at 2 GiB) unless the config sets them, plus the WAL settings backups need from day one.
func postgresArgs(pg config.Postgres, mem config.ByteSize) []string {
	round := func(b config.ByteSize) config.ByteSize { return b / config.MiB * config.MiB }
	or := func(set, derived config.ByteSize) string {
		if set != 0 {
			return set.PG()
		}
		return round(derived).PG()
	}
	maint := min(mem/16, 2*config.GiB)
	maint = max(maint, 64*config.MiB)
	settings := []string{
		"listen_addresses=*",
		"max_connections=" + strconv.Itoa(pg.MaxConnections),
		"shared_buffers=" + or(pg.SharedBuffers, mem/4),
		"effective_cache_size=" + or(pg.EffectiveCacheSize, mem*3/4),
		"work_mem=" + pg.WorkMem.PG(),
		"maintenance_work_mem=" + or(pg.MaintenanceWorkMem, maint),
		"wal_buffers=" + pg.WALBuffers.PG(),
		"random_page_cost=" + strconv.FormatFloat(pg.RandomPageCost, 'g', -1, 64),
		"checkpoint_completion_target=" + strconv.FormatFloat(pg.CheckpointCompletionTarget, 'g', -1, 64),
		"wal_level=replica",
		"archive_mode=on",
		"archive_command=/bin/true",
		"max_wal_senders=10",
	}
	args := make([]string, 0, 2*len(settings))
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	return args
}

// apiEnv is the API container's environment per docs/ARCHITECTURE.md (no secret values).
func apiEnv(cfg *config.Config, poolMax int) []string {
	env := []string{
		"CORPINTEL_API_LISTEN=:" + strconv.Itoa(stack.PortAPI),
		"CORPINTEL_PROFILE=" + cfg.Profile,
		"CORPINTEL_LOG_LEVEL=" + cfg.LogLevel,
		"CORPINTEL_PG_HOST=" + stack.ServicePostgres,
		"CORPINTEL_PG_PORT=" + strconv.Itoa(stack.PortPostgres),
		"CORPINTEL_PG_DB=" + cfg.Postgres.DB,
		"CORPINTEL_PG_USER=" + cfg.Postgres.User,
		"CORPINTEL_PG_PASSWORD_FILE=/run/secrets/" + stack.SecretPostgresPassword,
		"CORPINTEL_PG_POOL_MAX=" + strconv.Itoa(poolMax),
		"CORPINTEL_REDIS_ADDR=" + stack.ServiceRedis + ":" + strconv.Itoa(stack.PortRedis),
		"CORPINTEL_REDIS_PASSWORD_FILE=/run/secrets/" + stack.SecretRedisPassword,
		"CORPINTEL_MINIO_ENDPOINT=" + stack.ServiceMinIO + ":" + strconv.Itoa(stack.PortMinIO),
		"CORPINTEL_MINIO_BUCKET=" + cfg.MinIO.Bucket,
		"CORPINTEL_MINIO_ACCESS_KEY_FILE=/run/secrets/" + stack.SecretMinIORootUser,
		"CORPINTEL_MINIO_SECRET_KEY_FILE=/run/secrets/" + stack.SecretMinIORootPassword,
		"CORPINTEL_JWT_KEK_FILE=/run/secrets/" + stack.SecretJWTKEK,
		"CORPINTEL_JWT_ISSUER=" + cfg.API.JWTIssuer,
		"CORPINTEL_JWT_AUDIENCE=" + cfg.API.JWTAudience,
		"CORPINTEL_UPLOAD_MAX_BYTES=" + strconv.FormatInt(cfg.API.UploadMaxBytes, 10),
	}
	if len(cfg.API.CORSOrigins) > 0 {
		env = append(env, "CORPINTEL_CORS_ORIGINS="+strings.Join(cfg.API.CORSOrigins, ","))
	}
	if cfg.API.OTLPEndpoint != "" {
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+cfg.API.OTLPEndpoint)
	}
	slices.Sort(env)
	return env
}
