package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

// StepKind says what a plan step does.
type StepKind string

// Step kinds. Execute runs them in plan order and stops at the first failure.
const (
	StepCreateNetwork StepKind = "create-network"
	StepCreateVolume  StepKind = "create-volume"
	// StepStart creates, starts and health-gates a missing replica.
	StepStart StepKind = "start"
	// StepRecreate replaces a container stop-first: stop old (kept, renamed) → create →
	// start → health-gate → remove old; on failure the old container comes back.
	// Used for stateful services and for containers that are not running anyway.
	StepRecreate StepKind = "recreate"
	// StepRollout replaces a running API replica new-first: create under a temporary
	// name → start → health-gate → remove old → rename.
	StepRollout StepKind = "rollout"
	// StepRename gives a ready, current container its final name (a rollout that was
	// interrupted between gate and rename).
	StepRename StepKind = "rename"
	// StepRevive starts an existing stopped container again as it is and health-gates
	// it (the old container of a held recreate that was stopped or killed).
	StepRevive StepKind = "revive"
	// StepRemove stops and removes a container (scale down, orphan, duplicate).
	StepRemove StepKind = "remove"
	// StepRunJob runs a one-shot job container to completion and removes it.
	StepRunJob StepKind = "run-job"
	// StepStop stops a container and keeps it (`corpintel stop`).
	StepStop StepKind = "stop"
	// StepRemoveNetwork and StepRemoveVolume delete the project's network and data
	// volumes (only in the plan that removes a whole project: data is lost).
	StepRemoveNetwork StepKind = "remove-network"
	StepRemoveVolume  StepKind = "remove-volume"
	// StepBackoff changes nothing: it reports a failing container whose replacement
	// waits for the service's backoff to end.
	StepBackoff StepKind = "backoff"
	// StepHold changes nothing: it reports a service the plan leaves alone (an
	// operation owns it, or a recreate to this spec failed and was rolled back).
	StepHold StepKind = "hold"
)

// RestartLoopThreshold is the RestartCount from which a container that Docker keeps
// restarting counts as a restart loop: the plan replaces it (subject to the service's
// backoff) instead of waiting for Docker's next restart.
const RestartLoopThreshold = 3

// Backoff is the replacement backoff of one service: after repeated failures the plan
// waits until Until before it replaces a failing container again. Failures counts the
// replacements for failure since the service was last healthy for a while (see
// BackoffPolicy); it only informs the report.
type Backoff struct {
	Failures int
	Until    time.Time
}

// HeldRecreate records a stateful recreate that failed its health gate and was rolled
// back to the old container: the plan does not try Hash again (that would stop the
// service again on every pass) until the spec changes or the operator restarts it.
type HeldRecreate struct {
	Hash string
	At   time.Time
	Err  string
}

// Step is one action of a plan.
type Step struct {
	Kind    StepKind
	Service string // "" for network, volume and job steps
	Replica int
	Job     string
	// Name is the object's final name (container, network or volume).
	Name string
	// Old is the container replaced or removed (ID and name), if any.
	OldID, OldName string
	Reason         string
	// Failure marks a replacement of a container that failed (exited, unhealthy, in a
	// restart loop): it counts towards the service's backoff. Not part of String.
	Failure bool
}

func (s Step) String() string {
	var target string
	switch {
	case s.Job != "":
		target = "job/" + s.Job
	case s.Service != "":
		target = fmt.Sprintf("%s/%d", s.Service, s.Replica)
	default:
		target = "-"
	}
	line := fmt.Sprintf("%-14s %-12s %s", s.Kind, target, s.Name)
	if s.OldName != "" && s.OldName != s.Name {
		line += " (old " + s.OldName + ")"
	}
	if s.Reason != "" {
		line += ": " + s.Reason
	}
	return line
}

// Plan is the ordered list of steps that takes the engine from Observed to Spec.
type Plan struct {
	Steps []Step
}

// String is one line per step, stable for golden tests; "no changes" when empty.
func (p Plan) String() string {
	if len(p.Steps) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, s := range p.Steps {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Reports whether a step only reports (changes nothing).
func (k StepKind) reportOnly() bool { return k == StepBackoff || k == StepHold }

// HasChanges reports whether executing the plan changes anything (backoff and hold
// steps only report).
func (p Plan) HasChanges() bool {
	for _, s := range p.Steps {
		if !s.Kind.reportOnly() {
			return true
		}
	}
	return false
}

// Reports returns the steps that only report: services in backoff or on hold.
func (p Plan) Reports() []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Kind.reportOnly() {
			out = append(out, s)
		}
	}
	return out
}

// BuildPlan is the pure decision: what to do so that obs matches desired. It never
// plans anything for containers without the project's labels, never removes volumes
// or networks, and orders steps by dependency: network, volumes, orphans, postgres,
// redis, minio, jobs (migrate before any API container starts), API.
func BuildPlan(desired Spec, obs Observed) Plan {
	var steps []Step
	if !obs.NetworkExists {
		steps = append(steps, Step{Kind: StepCreateNetwork, Name: desired.Network})
	}
	for _, v := range desired.Volumes {
		if !obs.Volumes[v] {
			steps = append(steps, Step{Kind: StepCreateVolume, Name: v})
		}
	}

	known := map[string]bool{}
	for _, s := range desired.Services {
		known[s.Name] = true
	}
	jobs := map[string]bool{stack.JobMigrate: true, stack.JobSeed: true, stack.JobCreateAdmin: true}
	for _, j := range desired.Jobs {
		jobs[j.Name] = true
	}
	mine := make([]ObservedContainer, 0, len(obs.Containers))
	for _, c := range obs.Containers {
		if c.Project == desired.Project {
			mine = append(mine, c)
		}
	}
	slices.SortFunc(mine, func(a, b ObservedContainer) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Replica, b.Replica), cmp.Compare(a.Name, b.Name))
	})
	// Orphans: containers of services the spec no longer has, and leftover job
	// containers of our jobs (a supervisor that died mid-job). Job containers of
	// other components (other stack.LabelJob values) are theirs.
	for _, c := range mine {
		switch {
		case c.Service != "" && obs.Owned[c.Service] != "":
			// An operation owns the service; even its strays are the operation's.
		case c.Service != "" && !known[c.Service]:
			steps = append(steps, Step{Kind: StepRemove, Service: c.Service, Replica: c.Replica, Name: c.Name, OldID: c.ID, OldName: c.Name, Reason: "orphan: service not in spec"})
		case c.Service == "" && jobs[c.Job]:
			steps = append(steps, Step{Kind: StepRemove, Job: c.Job, Name: c.Name, OldID: c.ID, OldName: c.Name, Reason: "leftover job container (" + c.State + ")"})
		}
	}

	for _, svc := range desired.Services {
		svcSteps := planService(desired.Project, svc, mine, obs)
		if svc.Name == stack.ServiceAPI {
			steps = append(steps, planJobs(desired, obs, svcSteps)...)
		}
		steps = append(steps, svcSteps...)
	}
	return Plan{Steps: steps}
}

// planJobs runs migrate before any API container starts, unless the state store records
// that migrate already succeeded with exactly this job spec (same API image, so the same
// embedded migrations): replacing a killed replica then does not wait for a no-op
// migration. Run-once jobs not yet done need the schema, so migrate runs first then too.
// (The API also applies pending migrations itself at start, under the same advisory
// lock, so a skipped job can never leave a replica on an old schema.)
func planJobs(desired Spec, obs Observed, apiSteps []Step) []Step {
	startsAPI := slices.ContainsFunc(apiSteps, func(s Step) bool {
		return s.Kind == StepStart || s.Kind == StepRecreate || s.Kind == StepRollout
	})
	var pending []Step
	for _, j := range desired.Jobs {
		if j.Once && !obs.JobsDone[j.Name] {
			pending = append(pending, Step{Kind: StepRunJob, Job: j.Name, Name: stack.JobContainerName(desired.Project, j.Name), Reason: "first start"})
		}
	}
	var steps []Step
	for _, j := range desired.Jobs {
		if j.Name != stack.JobMigrate {
			continue
		}
		reason := ""
		switch {
		case startsAPI && (len(pending) > 0 || !obs.JobsDone[MigratedKey(j)]):
			reason = "before API containers start"
		case len(pending) > 0:
			reason = "before run-once jobs"
		default:
			continue
		}
		steps = append(steps, Step{Kind: StepRunJob, Job: j.Name, Name: stack.JobContainerName(desired.Project, j.Name), Reason: reason})
	}
	return append(steps, pending...)
}

// MigratedKey is the state-store record of a successful migrate job with this spec.
func MigratedKey(j JobSpec) string {
	return j.Name + "@" + j.Container.Hash
}

func planService(project string, svc ServiceSpec, mine []ObservedContainer, obs Observed) []Step {
	if op := obs.Owned[svc.Name]; op != "" {
		return []Step{{Kind: StepHold, Service: svc.Name, Replica: 1, Name: stack.ContainerName(project, svc.Name, 1), Reason: "owned by " + op}}
	}
	byReplica := map[int][]ObservedContainer{}
	for _, c := range mine {
		if c.Service == svc.Name {
			byReplica[c.Replica] = append(byReplica[c.Replica], c)
		}
	}
	var removes, steps []Step
	replicas := slices.Sorted(maps.Keys(byReplica))
	// Scale down and duplicates first: fewer containers before new ones start, and a
	// stateful volume must never have two containers.
	for _, r := range replicas {
		cs := byReplica[r]
		if r < 1 || r > svc.Replicas {
			for _, c := range cs {
				removes = append(removes, Step{Kind: StepRemove, Service: svc.Name, Replica: r, Name: c.Name, OldID: c.ID, OldName: c.Name,
					Reason: fmt.Sprintf("scale down: %d wanted", svc.Replicas)})
			}
			continue
		}
		keep := pickKeeper(stack.ContainerName(project, svc.Name, r), svc.Container.Hash, cs)
		for i, c := range cs {
			if i != keep {
				removes = append(removes, Step{Kind: StepRemove, Service: svc.Name, Replica: r, Name: c.Name, OldID: c.ID, OldName: c.Name, Reason: "duplicate of " + cs[keep].Name})
			}
		}
		byReplica[r] = []ObservedContainer{cs[keep]}
	}
	backoff := obs.Backoff[svc.Name]
	waiting := backoff.Until.After(obs.Now)
	held, isHeld := obs.Held[svc.Name]
	isHeld = isHeld && svc.Stateful && held.Hash == svc.Container.Hash && !svc.ForceRecreate
	for r := 1; r <= svc.Replicas; r++ {
		name := stack.ContainerName(project, svc.Name, r)
		cs := byReplica[r]
		if len(cs) == 0 {
			steps = append(steps, Step{Kind: StepStart, Service: svc.Name, Replica: r, Name: name, Reason: "missing"})
			continue
		}
		c := cs[0]
		replace := func(reason string, failure bool) {
			kind := StepRecreate
			if !svc.Stateful && c.State == StateRunning {
				kind = StepRollout
			}
			if failure && waiting {
				steps = append(steps, Step{Kind: StepBackoff, Service: svc.Name, Replica: r, Name: c.Name,
					Reason: fmt.Sprintf("%s; %d failed replacements, next attempt at %s (in %s)", reason, backoff.Failures,
						backoff.Until.UTC().Format(time.RFC3339), backoff.Until.Sub(obs.Now).Round(time.Second))})
				return
			}
			steps = append(steps, Step{Kind: kind, Service: svc.Name, Replica: r, Name: name, OldID: c.ID, OldName: c.Name, Reason: reason, Failure: failure})
		}
		switch {
		case c.Hash != svc.Container.Hash && isHeld:
			// The old container is what runs until the operator acts; keep it running.
			if !c.Ready() && (c.State == StateExited || c.State == StateDead || c.State == StateCreated) {
				steps = append(steps, Step{Kind: StepRevive, Service: svc.Name, Replica: r, Name: c.Name, OldID: c.ID, OldName: c.Name,
					Reason: "held on the old spec, which is " + describe(c)})
				continue
			}
			steps = append(steps, Step{Kind: StepHold, Service: svc.Name, Replica: r, Name: c.Name,
				Reason: fmt.Sprintf("recreate to %s failed at %s and was rolled back; fix the config or run `corpintel restart %s`: %s",
					short(held.Hash), held.At.UTC().Format(time.RFC3339), svc.Name, firstLine(held.Err))})
		case c.Hash != svc.Container.Hash:
			replace(fmt.Sprintf("config changed (%s → %s)", short(c.Hash), short(svc.Container.Hash)), false)
		case svc.ForceRecreate:
			replace("restart requested", false)
		case c.Ready():
			if c.Name != name { // a rollout interrupted before the rename
				steps = append(steps, Step{Kind: StepRename, Service: svc.Name, Replica: r, Name: name, OldID: c.ID, OldName: c.Name, Reason: "finish interrupted replacement"})
			}
		case c.State == StateRunning && c.Health == HealthStarting:
			// Still within its start period: leave it to Docker's health check (which
			// marks it unhealthy if it never serves).
		case c.State == StatePaused:
			// Someone paused it on purpose; not ours to undo.
		case c.RestartCount >= RestartLoopThreshold && c.State != StateCreated:
			replace(fmt.Sprintf("restart loop: %d restarts, %s", c.RestartCount, describe(c)), true)
		default:
			replace(describe(c), c.State != StateCreated)
		}
	}
	return append(removes, steps...)
}

// BuildStopPlan stops every running container of the project (one-shot jobs first,
// then the services in reverse dependency order, PostgreSQL last) and keeps them and
// the volumes: `corpintel stop`. It is pure, like BuildPlan.
func BuildStopPlan(project string, obs Observed) Plan {
	order := func(c ObservedContainer) int {
		if c.Service == "" {
			return -1 // jobs first: nothing may run against a database that stops
		}
		return len(stack.Services) - slices.Index(stack.Services, c.Service)
	}
	var cs []ObservedContainer
	for _, c := range obs.Containers {
		if c.Project == project && (c.State == StateRunning || c.State == StateRestarting || c.State == StatePaused) {
			cs = append(cs, c)
		}
	}
	slices.SortStableFunc(cs, func(a, b ObservedContainer) int {
		return cmp.Or(cmp.Compare(order(a), order(b)), cmp.Compare(a.Replica, b.Replica), cmp.Compare(a.Name, b.Name))
	})
	var steps []Step
	for _, c := range cs {
		steps = append(steps, Step{Kind: StepStop, Service: c.Service, Replica: c.Replica, Job: c.Job, Name: c.Name, OldID: c.ID, OldName: c.Name, Reason: "stop requested"})
	}
	return Plan{Steps: steps}
}

// BuildRemovePlan removes every container, the network and the volumes of the project
// (data is lost): for tests, uninstall --purge and throwaway projects. Pure.
func BuildRemovePlan(project string, obs Observed) Plan {
	var steps []Step
	for _, c := range obs.Containers {
		if c.Project == project {
			steps = append(steps, Step{Kind: StepRemove, Service: c.Service, Replica: c.Replica, Job: c.Job, Name: c.Name, OldID: c.ID, OldName: c.Name, Reason: "remove project"})
		}
	}
	slices.SortFunc(steps, func(a, b Step) int { return cmp.Compare(a.Name, b.Name) })
	if obs.NetworkExists {
		steps = append(steps, Step{Kind: StepRemoveNetwork, Name: stack.NetworkName(project), Reason: "remove project"})
	}
	for _, v := range slices.Sorted(maps.Keys(obs.Volumes)) {
		steps = append(steps, Step{Kind: StepRemoveVolume, Name: v, Reason: "remove project"})
	}
	return Plan{Steps: steps}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// pickKeeper chooses which of several containers claiming one replica to keep: the one
// with the final name, current hash and ready state wins, in that order of weight.
func pickKeeper(final, hash string, cs []ObservedContainer) int {
	best, bestScore := 0, -1
	for i, c := range cs {
		score := 0
		if c.Ready() {
			score += 4
		} else if c.State == StateRunning {
			score += 2
		}
		if c.Hash == hash {
			score += 2
		}
		if c.Name == final {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

func describe(c ObservedContainer) string {
	switch c.State {
	case StateExited, StateDead:
		return fmt.Sprintf("%s (exit code %d)", c.State, c.ExitCode)
	case StateRunning:
		return c.Health
	default:
		return c.State
	}
}

func short(h string) string {
	if h == "" {
		return "none"
	}
	return h[:min(8, len(h))]
}
