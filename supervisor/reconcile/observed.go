package reconcile

import "time"

// Observed is what the plan decides from: the engine's objects of one project, as seen
// through labels only, plus the facts of the state store and the clock that the
// decision needs (so that BuildPlan stays a pure function of its two arguments).
type Observed struct {
	NetworkExists bool
	Volumes       map[string]bool // volume names present
	Containers    []ObservedContainer
	// JobsDone lists run-once jobs the state store records as done.
	JobsDone map[string]bool

	// Now is when the observation was made; backoffs are compared with it.
	Now time.Time
	// Backoff is the replacement backoff per service (see Backoff).
	Backoff map[string]Backoff
	// Held lists stateful services whose recreate to a spec failed and was rolled back:
	// the plan does not try that spec again until it changes or the operator restarts
	// the service.
	Held map[string]HeldRecreate
	// Owned lists the services an operation (backup, restore, …) owns right now; the
	// plan leaves them alone. The value names the operation.
	Owned map[string]string
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
	// ImageRef is the image as the container was created with (corpintel/api:latest).
	ImageRef string

	State        string // created, running, paused, restarting, exited, dead
	Health       string // "", starting, healthy, unhealthy
	ExitCode     int
	RestartCount int
	StartedAt    time.Time
	// IP is the address on the stack network ("" when not attached or not running).
	IP string
	// BindSources are the host paths bind-mounted into the container (secret files).
	BindSources []string
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

// Ready reports whether the container serves by Docker's account: running and healthy
// (or without a health check). A container still "starting" may serve already; the
// ReadySet knows those that answered the supervisor's own probe.
func (c ObservedContainer) Ready() bool {
	return c.State == StateRunning && (c.Health == "" || c.Health == HealthHealthy)
}

// ServiceContainers returns the observed containers of a service.
func (o Observed) ServiceContainers(service string) []ObservedContainer {
	var out []ObservedContainer
	for _, c := range o.Containers {
		if c.Service == service {
			out = append(out, c)
		}
	}
	return out
}

// Mounted is the set of host paths that observed containers bind-mount.
func (o Observed) Mounted() map[string]bool {
	m := map[string]bool{}
	for _, c := range o.Containers {
		for _, s := range c.BindSources {
			m[s] = true
		}
	}
	return m
}
