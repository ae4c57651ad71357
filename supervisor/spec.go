package supervisor

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
)

// Labels every object the supervisor creates carries. It only ever touches objects
// whose LabelProject matches its project.
const (
	LabelProject    = "io.corpintel.project"
	LabelService    = "io.corpintel.service"
	LabelReplica    = "io.corpintel.replica"
	LabelConfigHash = "io.corpintel.config-hash"
	// LabelJob marks one-shot job containers (value: the job name); they carry no
	// LabelService.
	LabelJob = "io.corpintel.job"
)

// Service names, in dependency order.
const (
	ServicePostgres = "postgres"
	ServiceRedis    = "redis"
	ServiceMinIO    = "minio"
	ServiceAPI      = "api"
)

// Services lists the services in dependency order (the order of Spec.Services).
var Services = []string{ServicePostgres, ServiceRedis, ServiceMinIO, ServiceAPI}

// Job names.
const (
	JobMigrate = "migrate"
	JobSeed    = "seed"
)

// Naming rules. Every engine-wide name derives from the project:
//
//	container  <project>-<service>          postgres, redis, minio (one each)
//	           <project>-api-<n>            API replica n (1-based)
//	           <project>-job-<job>          one-shot job
//	network    <project>_corpintel          (the seed's network "corpintel", compose-style prefix)
//	volume     <project>_<service>_data     (the seed's postgres_data, …, compose-style prefix)
//
// The default project "corporate-intel" gives corporate-intel-postgres (the seed's
// `docker exec corporate-intel-postgres …` keeps working). Inside the network every
// service is reachable by its service name (network alias): postgres, redis, minio, api.

// ContainerName is the final name of a service replica.
func ContainerName(project, service string, replica int) string {
	if service == ServiceAPI {
		return fmt.Sprintf("%s-%s-%d", project, service, replica)
	}
	return project + "-" + service
}

// JobContainerName is the name of a one-shot job's container.
func JobContainerName(project, job string) string { return project + "-job-" + job }

// NetworkName is the stack network.
func NetworkName(project string) string { return project + "_corpintel" }

// VolumeName is a service's data volume.
func VolumeName(project, service string) string { return project + "_" + service + "_data" }

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
}

// Secret names (files under /run/secrets/NAME).
const (
	SecretPostgresPassword  = "postgres_password"
	SecretRedisPassword     = "redis_password"
	SecretMinIORootUser     = "minio_root_user"
	SecretMinIORootPassword = "minio_root_password"
	SecretJWTKEK            = "jwt_kek"
)

// serviceSecrets lists which secret files each service (and the jobs, as "api") gets.
var serviceSecrets = map[string][]string{
	ServicePostgres: {SecretPostgresPassword},
	ServiceRedis:    {SecretRedisPassword},
	ServiceMinIO:    {SecretMinIORootUser, SecretMinIORootPassword},
	ServiceAPI:      {SecretPostgresPassword, SecretRedisPassword, SecretMinIORootUser, SecretMinIORootPassword, SecretJWTKEK},
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

// BuildSpec derives the desired stack from the config. It is pure.
//
// Pool size: CORPINTEL_PG_POOL_MAX = (max_connections − reserved_connections) / 16
// (config.MaxReplicas), i.e. computed for the largest allowed scale rather than the
// current one. It is part of the API's environment (and hash) but depends only on
// PostgreSQL settings, so `scale api=N` never recreates existing replicas and any
// scale stays within max_connections.
func BuildSpec(cfg *config.Config, secrets SecretFiles, host Host) (Spec, error) {
	p := cfg.Project
	spec := Spec{
		Project: p,
		Network: NetworkName(p),
		PoolMax: (cfg.Postgres.MaxConnections - cfg.Postgres.ReservedConnections) / config.MaxReplicas,
	}
	for _, svc := range []string{ServicePostgres, ServiceRedis, ServiceMinIO} {
		spec.Volumes = append(spec.Volumes, VolumeName(p, svc))
	}

	mounts := func(service string) ([]Mount, error) {
		var ms []Mount
		for _, name := range serviceSecrets[service] {
			path := secrets[service][name]
			if path == "" {
				return nil, fmt.Errorf("build spec: no %s secret file for %s", name, service)
			}
			ms = append(ms, Mount{Type: "bind", Source: path, Target: "/run/secrets/" + name, ReadOnly: true})
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
	pg, err := base(ServicePostgres)
	if err != nil {
		return Spec{}, err
	}
	pg.Env = []string{
		"POSTGRES_DB=" + cfg.Postgres.DB,
		"POSTGRES_PASSWORD_FILE=/run/secrets/" + SecretPostgresPassword,
		"POSTGRES_USER=" + cfg.Postgres.User,
	}
	pg.Cmd = append([]string{"postgres"}, postgresArgs(cfg.Postgres, effectiveMemory(cfg.Postgres.Memory, host.Memory))...)
	pg.Mounts = append([]Mount{{Type: "volume", Source: VolumeName(p, ServicePostgres), Target: "/var/lib/postgresql/data"}}, pg.Mounts...)
	pg.ShmSize = int64(256 * config.MiB) // parallel query uses /dev/shm; Docker's 64 MiB is too small
	pg.StopGrace = 60 * time.Second      // let a fast shutdown checkpoint
	// -h 127.0.0.1: the entrypoint's init-time server listens on the socket only, so a
	// TCP probe does not report ready before initialisation is done.
	pg.Health = withTest(statefulHealth, "CMD", "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", cfg.Postgres.User, "-d", cfg.Postgres.DB)
	pg.Ready = &ReadyProbe{Kind: ProbePostgres, Port: 5432, User: cfg.Postgres.User, DB: cfg.Postgres.DB}

	// redis
	rd, err := base(ServiceRedis)
	if err != nil {
		return Spec{}, err
	}
	maxmem := cfg.Redis.MaxMemory
	if maxmem == 0 {
		maxmem = config.ByteSize(float64(effectiveMemory(cfg.Redis.Memory, host.Memory)) * 0.70)
	}
	rd.Env = []string{"REDIS_PASSWORD_FILE=/run/secrets/" + SecretRedisPassword}
	rd.Cmd = []string{"redis-server", "--appendonly", "yes", "--maxmemory", strconv.FormatInt(int64(maxmem), 10), "--maxmemory-policy", "allkeys-lru"}
	rd.Mounts = append([]Mount{{Type: "volume", Source: VolumeName(p, ServiceRedis), Target: "/data"}}, rd.Mounts...)
	// The password travels in REDISCLI_AUTH, never in argv.
	rd.Health = withTest(statefulHealth, "CMD-SHELL",
		`REDISCLI_AUTH="$(cat /run/secrets/`+SecretRedisPassword+`)" redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG`)
	rd.Ready = &ReadyProbe{Kind: ProbeRedis, Port: 6379}

	// minio
	mn, err := base(ServiceMinIO)
	if err != nil {
		return Spec{}, err
	}
	mn.Env = []string{
		"MINIO_ROOT_PASSWORD_FILE=/run/secrets/" + SecretMinIORootPassword,
		"MINIO_ROOT_USER_FILE=/run/secrets/" + SecretMinIORootUser,
	}
	mn.Cmd = []string{"minio", "server", "/data", "--address", ":9000", "--console-address", ":9001"}
	mn.Mounts = append([]Mount{{Type: "volume", Source: VolumeName(p, ServiceMinIO), Target: "/data"}}, mn.Mounts...)
	mn.Health = withTest(statefulHealth, "CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9000/minio/health/live")
	mn.Ready = &ReadyProbe{Kind: ProbeHTTP, Port: 9000, Path: "/minio/health/live"}

	// api
	api, err := base(ServiceAPI)
	if err != nil {
		return Spec{}, err
	}
	api.Env = apiEnv(cfg, spec.PoolMax)
	api.Entrypoint = []string{"corpintel"}
	api.Cmd = []string{"api"}
	api.Health = withTest(apiHealth, "CMD", "corpintel", "api", "healthcheck")
	api.Ready = apiReady

	replicas := cfg.API.Replicas
	spec.Services = []ServiceSpec{
		{Name: ServicePostgres, Stateful: true, Replicas: 1, HealthTimeout: 3 * time.Minute, Container: pg},
		{Name: ServiceRedis, Stateful: true, Replicas: 1, HealthTimeout: time.Minute, Container: rd},
		{Name: ServiceMinIO, Stateful: true, Replicas: 1, HealthTimeout: time.Minute, Container: mn},
		{Name: ServiceAPI, Replicas: replicas, HealthTimeout: time.Minute, Container: api},
	}

	job := func(name string, once bool, args ...string) JobSpec {
		c := api
		c.Health, c.Ready = nil, nil
		c.Aliases = nil
		c.Cmd = append([]string{"api"}, args...)
		return JobSpec{Name: name, Once: once, Timeout: 10 * time.Minute, Container: c}
	}
	spec.Jobs = []JobSpec{job(JobMigrate, false, "migrate")}
	if cfg.SampleData {
		spec.Jobs = append(spec.Jobs, job(JobSeed, true, "seed", "--companies", "200", "--years", "2"))
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
		"CORPINTEL_API_LISTEN=:8080",
		"CORPINTEL_PROFILE=" + cfg.Profile,
		"CORPINTEL_LOG_LEVEL=" + cfg.LogLevel,
		"CORPINTEL_PG_HOST=" + ServicePostgres,
		"CORPINTEL_PG_PORT=5432",
		"CORPINTEL_PG_DB=" + cfg.Postgres.DB,
		"CORPINTEL_PG_USER=" + cfg.Postgres.User,
		"CORPINTEL_PG_PASSWORD_FILE=/run/secrets/" + SecretPostgresPassword,
		"CORPINTEL_PG_POOL_MAX=" + strconv.Itoa(poolMax),
		"CORPINTEL_REDIS_ADDR=" + ServiceRedis + ":6379",
		"CORPINTEL_REDIS_PASSWORD_FILE=/run/secrets/" + SecretRedisPassword,
		"CORPINTEL_MINIO_ENDPOINT=" + ServiceMinIO + ":9000",
		"CORPINTEL_MINIO_BUCKET=" + cfg.MinIO.Bucket,
		"CORPINTEL_MINIO_ACCESS_KEY_FILE=/run/secrets/" + SecretMinIORootUser,
		"CORPINTEL_MINIO_SECRET_KEY_FILE=/run/secrets/" + SecretMinIORootPassword,
		"CORPINTEL_JWT_KEK_FILE=/run/secrets/" + SecretJWTKEK,
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
