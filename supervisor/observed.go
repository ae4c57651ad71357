package supervisor

import "time"

// Observed is what the engine has for one project, as seen through labels only.
type Observed struct {
	NetworkExists bool
	Volumes       map[string]bool // volume names present
	Containers    []ObservedContainer
	// JobsDone lists run-once jobs the state store records as done.
	JobsDone map[string]bool
}

// ObservedContainer is one labelled container.
type ObservedContainer struct {
	ID      string
	Name    string // without the leading "/"
	Project string
	Service string // "" for jobs and unlabelled ones
	Replica int
	Job     string
	Hash    string // io.corpintel.config-hash
	Image   string // image ID the container runs

	State        string // created, running, paused, restarting, exited, dead
	Health       string // "", starting, healthy, unhealthy
	ExitCode     int
	RestartCount int
	StartedAt    time.Time
	// IP is the address on the stack network ("" when not attached or not running).
	IP string
}

// Container states and health values as Docker reports them.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateExited     = "exited"
	StateDead       = "dead"

	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Ready reports whether the container serves: running and healthy (or without a
// health check).
func (c ObservedContainer) Ready() bool {
	return c.State == StateRunning && (c.Health == "" || c.Health == HealthHealthy)
}

// Containers returns the observed containers of a service, by replica.
func (o Observed) ServiceContainers(service string) []ObservedContainer {
	var out []ObservedContainer
	for _, c := range o.Containers {
		if c.Service == service {
			out = append(out, c)
		}
	}
	return out
}
