// Package stack holds the facts about the corpintel stack that every part shares: the
// services and one-shot jobs, the labels on every object the supervisor creates, the
// names derived from the project (containers, network, volumes, socket, state
// directory), the ports the services listen on inside the stack network, the secret
// files each service gets and the uids that read them, and the scale bounds.
//
// It is a leaf: it imports nothing of corpintel, so config, the supervisor, jobs,
// bundles and the CLI can all agree on one spelling of each fact.
package stack

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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

// Services lists the services in dependency order (start order; stop is the reverse).
var Services = []string{ServicePostgres, ServiceRedis, ServiceMinIO, ServiceAPI}

// IsService reports whether name is one of Services.
func IsService(name string) bool { return slices.Contains(Services, name) }

// Stateful reports whether a service owns a data volume: stateful services are
// recreated stop-first and never run two containers on one volume.
func Stateful(service string) bool { return service != ServiceAPI && IsService(service) }

// CheckService returns an error naming the valid services when name is not one.
func CheckService(name string) error {
	if IsService(name) {
		return nil
	}
	return fmt.Errorf("unknown service %q (valid: %s)", name, strings.Join(Services, ", "))
}

// Job names of the one-shot containers the supervisor runs.
const (
	JobMigrate     = "migrate"
	JobSeed        = "seed"
	JobCreateAdmin = "create-admin"
)

// Ports the services listen on inside the stack network (none is published on the host).
const (
	PortAPI          = 8080
	PortPostgres     = 5432
	PortRedis        = 6379
	PortMinIO        = 9000
	PortMinIOConsole = 9001
)

// MaxScale bounds `scale api=N` and api.replicas (DESIGN.md "Replicas": 0…16; 0 is how
// tests keep the API down without fighting the reconciler).
const MaxScale = 16

// Scalable reports whether a service may run more than one container.
func Scalable(service string) bool { return service == ServiceAPI }

// ValidateScale checks a requested replica count for a service; the error says what is
// allowed.
func ValidateScale(service string, replicas int) error {
	if err := CheckService(service); err != nil {
		return err
	}
	if !Scalable(service) {
		return fmt.Errorf("only %s can be scaled; %s runs exactly one container", ServiceAPI, service)
	}
	if replicas < 0 || replicas > MaxScale {
		return fmt.Errorf("replicas must be between 0 and %d, got %d", MaxScale, replicas)
	}
	return nil
}

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
	if Scalable(service) {
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

// StateDir is the default root-only state directory of a project.
func StateDir(project string) string { return filepath.Join("/var/lib/corpintel", project) }

// SocketPath is the default unix socket of a project's local API.
func SocketPath(project string) string { return filepath.Join("/run/corpintel", project+".sock") }

// Secret names (files under /run/secrets/NAME inside the containers).
const (
	SecretPostgresPassword  = "postgres_password"
	SecretRedisPassword     = "redis_password"
	SecretMinIORootUser     = "minio_root_user"
	SecretMinIORootPassword = "minio_root_password"
	SecretJWTKEK            = "jwt_kek"
)

// Secrets lists every generated secret.
var Secrets = []string{SecretPostgresPassword, SecretRedisPassword, SecretMinIORootUser, SecretMinIORootPassword, SecretJWTKEK}

// SecretsDir is where secret files are mounted inside a container.
const SecretsDir = "/run/secrets"

// SecretPath is a secret's path inside a container.
func SecretPath(name string) string { return SecretsDir + "/" + name }

// ServiceSecrets lists which secret files each service (and the jobs, as "api") gets.
var ServiceSecrets = map[string][]string{
	ServicePostgres: {SecretPostgresPassword},
	ServiceRedis:    {SecretRedisPassword},
	ServiceMinIO:    {SecretMinIORootUser, SecretMinIORootPassword},
	ServiceAPI:      {SecretPostgresPassword, SecretRedisPassword, SecretMinIORootUser, SecretMinIORootPassword, SecretJWTKEK},
}

// SecretUIDs is the fixed numeric uid (and gid) of each image's service user that must
// be able to read its secret files. Images pointed at in config must use the same.
var SecretUIDs = map[string]int{
	ServicePostgres: 999,
	ServiceRedis:    999,
	ServiceMinIO:    1000,
	ServiceAPI:      10001,
}
