package alerts

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// Operation is the operation holding the operation lock (restore, upgrade, backup,
// drill, rotation), as the evaluation sees it.
type Operation struct {
	// Kind is the operation: "restore", "upgrade", "backup", …; only the kinds in
	// Config.MaintenanceOperations hold alerts.
	Kind    string    `json:"kind"`
	Started time.Time `json:"started"`
	// ExpectedEnd is when it should be done; past it, held critical alerts are
	// delivered. Zero: no expectation, everything held stays held.
	ExpectedEnd time.Time `json:"expected_end,omitzero"`
	// Maintenance is set when the operation put the stack into maintenance mode
	// (state.OpRequest.Maintenance): it holds alerts like the kinds in
	// Config.MaintenanceOperations do, whatever its kind.
	Maintenance bool `json:"maintenance,omitempty"`
}

// Input is what one evaluation reads besides the state.
type Input struct {
	Samples Samples
	// Operation is the operation holding the lock, nil when none does.
	Operation *Operation
	Now       time.Time
}

// Transition is an alert changing state.
type Transition struct {
	Alert string // alertname{labels}
	From  string // inactive, pending, firing, resolved
	To    string
	Value float64
}

// Notification is a message the evaluation wants delivered.
type Notification struct {
	// Reason: new (the group's first), firing (alerts joined), changed (some resolved,
	// some still firing), resolved (all resolved), repeat (repeat_interval passed).
	Reason  string
	Message *notify.Message
}

// Plan is the outcome of one evaluation besides the new state.
type Plan struct {
	Transitions   []Transition
	Notifications []Notification
}

// String is the stable text form the golden tests compare.
func (p Plan) String() string {
	var b strings.Builder
	for _, t := range p.Transitions {
		fmt.Fprintf(&b, "alert %s: %s -> %s (value %s)\n", t.Alert, t.From, t.To, num(t.Value))
	}
	for _, n := range p.Notifications {
		m := n.Message
		fmt.Fprintf(&b, "notify %s %s %s dedup=%s", m.Channel, n.Reason, m.GroupKey, m.DedupKey[:8])
		for _, a := range m.Alerts {
			fmt.Fprintf(&b, " %s:%s", a.Status, alertID(a.Labels))
		}
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "(nothing)\n"
	}
	return b.String()
}

// alertID is alertname{other labels} (severity left out: the name implies it except for
// the certificate stages, which carry a stage label).
func alertID(l Labels) string {
	rest := Labels{}
	for k, v := range l {
		if k != "alertname" && k != "severity" {
			rest[k] = v
		}
	}
	if len(rest) == 0 {
		return l["alertname"]
	}
	return l["alertname"] + rest.String()
}

// Evaluator holds the compiled rules, routes and inhibitions of one configuration.
// Evaluate is a pure function of its arguments: the same state, samples, operation and
// clock give the same new state and plan.
type Evaluator struct {
	cfg          Config
	rules        []Rule
	ruleByName   map[string]Rule
	routes       []route
	routeByName  map[string]route
	inhibits     []inhibitRule
	held         map[string]bool
	maintenance  map[string]bool
	sendResolved map[string]bool
}

type route struct {
	name     string
	matchers Matchers
	channels []string
	cont     bool
	groupBy  []string
	wait     time.Duration
	interval time.Duration
	repeat   time.Duration
}

type inhibitRule struct {
	source, target Matchers
	equal          []string
}

// NewEvaluator validates cfg and compiles it.
func NewEvaluator(cfg Config) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	e := &Evaluator{cfg: cfg, ruleByName: map[string]Rule{}, routeByName: map[string]route{},
		held: map[string]bool{}, maintenance: map[string]bool{}, sendResolved: map[string]bool{}}
	e.rules = BuildRules(cfg.Rules)
	for _, r := range e.rules {
		e.ruleByName[r.Name] = r
	}
	routes := cfg.Routes
	if len(routes) == 0 {
		routes = DefaultRoutes(cfg.Channels)
	}
	for _, rc := range routes {
		ms, _ := ParseMatchers(rc.Matchers) // validated
		r := route{name: rc.Name, matchers: ms, channels: rc.Channels, cont: rc.Continue, groupBy: rc.GroupBy,
			wait: rc.GroupWait.D(), interval: rc.GroupInterval.D(), repeat: rc.RepeatInterval.D()}
		if r.groupBy == nil {
			r.groupBy = cfg.GroupBy
		}
		if r.wait == 0 {
			r.wait = cfg.GroupWait.D()
		}
		if r.interval == 0 {
			r.interval = cfg.GroupInterval.D()
		}
		if r.repeat == 0 {
			r.repeat = cfg.RepeatInterval.D()
		}
		e.routes = append(e.routes, r)
		e.routeByName[r.name] = r
	}
	inhibits := cfg.Inhibit
	if inhibits == nil {
		inhibits = DefaultInhibitRules(cfg.Rules)
	}
	for _, ic := range inhibits {
		src, _ := ParseMatchers(ic.SourceMatchers)
		tgt, _ := ParseMatchers(ic.TargetMatchers)
		e.inhibits = append(e.inhibits, inhibitRule{source: src, target: tgt, equal: ic.Equal})
	}
	for _, n := range cfg.MaintenanceHeld {
		e.held[n] = true
	}
	for _, k := range cfg.MaintenanceOperations {
		e.maintenance[k] = true
	}
	for _, c := range cfg.Channels {
		e.sendResolved[c.Name] = c.Resolved()
	}
	return e, nil
}

// Config returns the configuration with defaults filled in.
func (e *Evaluator) Config() Config { return e.cfg }

// Rules returns the enabled rules.
func (e *Evaluator) Rules() []Rule { return slices.Clone(e.rules) }

// DefaultRoutes is the seed's routing over the configured channels, by type: critical →
// PagerDuty + e-mail, warning → e-mail + Slack, info → Slack; webhook channels receive
// every severity (they feed another Alertmanager or a chat bridge that filters itself).
// Critical groups repeat at the global repeat_interval (4h), warning and info daily.
func DefaultRoutes(channels []ChannelConfig) []RouteConfig {
	byType := func(types ...string) []string {
		var out []string
		for _, c := range channels {
			if slices.Contains(types, c.Type) {
				out = append(out, c.Name)
			}
		}
		return out
	}
	// A warning or an info that stays unresolved for weeks (a certificate 21 days
	// out, a disk at 87 %) would otherwise mail six times a day: they repeat daily.
	daily := Duration(24 * time.Hour)
	return []RouteConfig{
		{Name: "critical", Matchers: []string{`severity="critical"`}, Channels: byType(notify.TypePagerDuty, notify.TypeEmail, notify.TypeWebhook)},
		{Name: "warning", Matchers: []string{`severity="warning"`}, Channels: byType(notify.TypeEmail, notify.TypeSlack, notify.TypeWebhook), RepeatInterval: daily},
		{Name: "info", Matchers: []string{`severity="info"`}, Channels: byType(notify.TypeSlack, notify.TypeWebhook), RepeatInterval: daily},
	}
}

// DefaultInhibitRules mute the alerts a root cause sets off: API Down mutes High Error
// Rate; PostgreSQL down mutes API Down, Database Slow, High Error Rate and WAL archiving
// lag; a full disk mutes container restart loops and its own lower disk alerts; an
// unreachable Docker Engine mutes restart loops (no data); a later certificate stage
// mutes the earlier ones of the same certificate.
func DefaultInhibitRules(rules RulesConfig) []InhibitConfig {
	out := []InhibitConfig{
		{SourceMatchers: []string{`alertname="APIDown"`}, TargetMatchers: []string{`alertname="HighErrorRate"`}},
		{SourceMatchers: []string{`alertname="PostgreSQLDown"`}, TargetMatchers: []string{`alertname=~"APIDown|DatabaseSlow|HighErrorRate|WALArchiveLagging"`}},
		{SourceMatchers: []string{`alertname="DiskFull"`}, TargetMatchers: []string{`alertname="ContainerRestartLoop"`}},
		{SourceMatchers: []string{`alertname="DiskFull"`}, TargetMatchers: []string{`alertname=~"DiskSpaceLow|DiskFullForecast"`}, Equal: []string{"mount"}},
		{SourceMatchers: []string{`alertname="DockerUnreachable"`}, TargetMatchers: []string{`alertname="ContainerRestartLoop"`}},
	}
	stages := rules.CertificateExpiring.StagesDays
	if len(stages) == 0 {
		stages = DefaultConfig().Rules.CertificateExpiring.StagesDays
	}
	for i := 1; i < len(stages); i++ {
		var earlier []string
		for _, d := range stages[:i] {
			earlier = append(earlier, stageLabel(d))
		}
		out = append(out, InhibitConfig{
			SourceMatchers: []string{`alertname="CertificateExpiring"`, fmt.Sprintf(`stage="%s"`, stageLabel(stages[i]))},
			TargetMatchers: []string{`alertname="CertificateExpiring"`, fmt.Sprintf(`stage=~"%s"`, strings.Join(earlier, "|"))},
			Equal:          []string{"name"},
		})
	}
	return out
}

// Evaluate runs one cycle: rules → alert states → muting → grouping → notifications. It
// does not modify prev.
func (e *Evaluator) Evaluate(prev State, in Input) (State, Plan) {
	now := in.Now
	st := prev.Clone()
	var plan Plan
	e.updateAlerts(&st, in, &plan)
	e.mute(&st, in.Operation, now)
	e.group(&st, now)
	e.flush(&st, now, &plan)
	e.cleanup(&st, now)
	sort.Slice(plan.Transitions, func(i, j int) bool { return plan.Transitions[i].Alert < plan.Transitions[j].Alert })
	return st, plan
}

func (e *Evaluator) updateAlerts(st *State, in Input, plan *Plan) {
	now := in.Now
	seen := map[string]bool{}
	flapStart := now.Add(-e.cfg.FlapWindow.D())
	for _, r := range e.rules {
		for _, c := range r.eval(&in.Samples, now) {
			labels := maps.Clone(c.Labels)
			if labels == nil {
				labels = Labels{}
			}
			labels["alertname"] = r.Name
			labels["severity"] = r.Severity
			if c.Severity != "" {
				labels["severity"] = c.Severity
			}
			fp := Fingerprint(labels)
			if seen[fp] {
				continue
			}
			seen[fp] = true
			forDur := r.For
			if c.ForSet {
				forDur = c.For
			}
			a, ok := st.Alerts[fp]
			if !ok || a.State == StateResolved {
				from := "inactive"
				if ok {
					from = StateResolved
				}
				a = Alert{Fingerprint: fp, Rule: r.Name, Labels: labels, State: StatePending, ActiveAt: now, FireEvents: a.FireEvents}
				plan.Transitions = append(plan.Transitions, Transition{Alert: alertID(labels), From: from, To: StatePending, Value: c.Value})
			}
			a.LastTrueAt = now
			a.Value = c.Value
			a.Annotations = Labels{"summary": c.Summary}
			if a.State == StatePending && now.Sub(a.ActiveAt) >= forDur {
				a.State = StateFiring
				a.FiredAt = now
				a.FireEvents = append(a.FireEvents, now)
				plan.Transitions = append(plan.Transitions, Transition{Alert: alertID(labels), From: StatePending, To: StateFiring, Value: c.Value})
			}
			a.FireEvents = slices.DeleteFunc(a.FireEvents, func(t time.Time) bool { return !t.After(flapStart) })
			a.Flapping = a.Flapping && len(a.FireEvents) > 0 || len(a.FireEvents) >= e.cfg.FlapThreshold
			st.Alerts[fp] = a
		}
	}
	for fp, a := range st.Alerts {
		if seen[fp] {
			continue
		}
		switch a.State {
		case StatePending:
			delete(st.Alerts, fp)
			plan.Transitions = append(plan.Transitions, Transition{Alert: alertID(a.Labels), From: StatePending, To: "inactive", Value: a.Value})
		case StateFiring:
			keep := e.ruleByName[a.Rule].KeepFiringFor
			a.FireEvents = slices.DeleteFunc(a.FireEvents, func(t time.Time) bool { return !t.After(flapStart) })
			a.Flapping = a.Flapping && len(a.FireEvents) > 0
			if a.Flapping {
				keep = max(keep, e.cfg.FlapHold.D())
			}
			if now.Sub(a.LastTrueAt) >= keep {
				a.State = StateResolved
				a.ResolvedAt = now
				a.MutedBy = ""
				plan.Transitions = append(plan.Transitions, Transition{Alert: alertID(a.Labels), From: StateFiring, To: StateResolved, Value: a.Value})
			}
			st.Alerts[fp] = a
		}
	}
}

// mute marks firing alerts that are silenced, inhibited or held by maintenance.
func (e *Evaluator) mute(st *State, op *Operation, now time.Time) {
	silences := slices.SortedFunc(maps.Values(st.Silences), func(a, b Silence) int { return strings.Compare(a.ID, b.ID) })
	var firing []Alert
	for _, a := range st.Alerts {
		if a.State == StateFiring {
			firing = append(firing, a)
		}
	}
	sort.Slice(firing, func(i, j int) bool { return firing[i].Fingerprint < firing[j].Fingerprint })
	for fp, a := range st.Alerts {
		a.MutedBy = ""
		if a.State == StateFiring {
			a.MutedBy = e.mutedBy(a, firing, silences, op, now)
		}
		st.Alerts[fp] = a
	}
}

func (e *Evaluator) mutedBy(a Alert, firing []Alert, silences []Silence, op *Operation, now time.Time) string {
	for _, s := range silences {
		if s.Status(now) == SilenceActive && s.Matchers.Matches(a.Labels) {
			return "silenced by " + s.ID
		}
	}
	for _, in := range e.inhibits {
		if !in.target.Matches(a.Labels) {
			continue
		}
		for _, src := range firing {
			if src.Fingerprint == a.Fingerprint || !in.source.Matches(src.Labels) {
				continue
			}
			equal := true
			for _, l := range in.equal {
				if src.Labels[l] != a.Labels[l] {
					equal = false
					break
				}
			}
			if equal {
				return "inhibited by " + alertID(src.Labels)
			}
		}
	}
	if op != nil && (e.maintenance[op.Kind] || op.Maintenance) && e.held[a.Rule] {
		overdue := !op.ExpectedEnd.IsZero() && now.After(op.ExpectedEnd)
		if !(overdue && a.Labels["severity"] == "critical") {
			if op.ExpectedEnd.IsZero() {
				return "held during " + op.Kind
			}
			return "held during " + op.Kind + " (expected to end " + op.ExpectedEnd.UTC().Format(time.RFC3339) + ")"
		}
	}
	return ""
}

// routesFor returns the routes an alert goes to: the first match, and further ones while
// the matched route says continue.
func (e *Evaluator) routesFor(l Labels) []route {
	var out []route
	for _, r := range e.routes {
		if !r.matchers.Matches(l) {
			continue
		}
		out = append(out, r)
		if !r.cont {
			break
		}
	}
	return out
}

func groupLabels(l Labels, by []string) Labels {
	g := Labels{}
	for _, k := range by {
		if v, ok := l[k]; ok {
			g[k] = v
		}
	}
	return g
}

// group recomputes each group's members: the firing alerts routed to it, plus resolved
// ones a channel still has to hear about. A group is created by its first unmuted
// firing alert and starts its group_wait then.
func (e *Evaluator) group(st *State, now time.Time) {
	type member struct {
		route  route
		labels Labels
		fps    []string
		live   bool // has an unmuted firing alert
	}
	members := map[string]*member{}
	for _, a := range st.Alerts {
		if a.State != StateFiring {
			continue
		}
		for _, r := range e.routesFor(a.Labels) {
			gl := groupLabels(a.Labels, r.groupBy)
			gk := GroupKey(r.name, gl)
			m := members[gk]
			if m == nil {
				m = &member{route: r, labels: gl}
				members[gk] = m
			}
			m.fps = append(m.fps, a.Fingerprint)
			m.live = m.live || a.MutedBy == ""
		}
	}
	owed := e.owedResolves(st)
	for gk, g := range st.Groups {
		var keep []string
		if m := members[gk]; m != nil {
			keep = m.fps
			delete(members, gk)
			g.LastFiring = now
		}
		for _, fp := range g.Alerts {
			if a, ok := st.Alerts[fp]; ok && a.State != StateFiring && owed[gk][fp] {
				keep = append(keep, fp)
			}
		}
		slices.Sort(keep)
		g.Alerts = slices.Compact(keep)
		st.Groups[gk] = g
	}
	for gk, m := range members {
		if !m.live {
			continue
		}
		slices.Sort(m.fps)
		st.Groups[gk] = Group{Key: gk, Route: m.route.name, Labels: m.labels, Alerts: m.fps,
			CreatedAt: now, NextFlush: now.Add(m.route.wait), LastFiring: now}
	}
}

// owedResolves: per group, the fingerprints a channel that wants resolves was told are
// firing (or is being told so right now).
func (e *Evaluator) owedResolves(st *State) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, l := range st.Log {
		if !e.wantsResolved(l.Channel) {
			continue
		}
		m := out[l.GroupKey]
		if m == nil {
			m = map[string]bool{}
			out[l.GroupKey] = m
		}
		for _, fp := range l.Firing {
			m[fp] = true
		}
		if l.Pending != nil {
			for _, fp := range l.Pending.Firing {
				m[fp] = true
			}
		}
	}
	return out
}

func (e *Evaluator) wantsResolved(channel string) bool {
	v, ok := e.sendResolved[channel]
	return !ok || v
}

func (e *Evaluator) flush(st *State, now time.Time, plan *Plan) {
	for _, gk := range slices.Sorted(maps.Keys(st.Groups)) {
		g := st.Groups[gk]
		if now.Before(g.NextFlush) {
			continue
		}
		r, ok := e.routeByName[g.Route]
		if !ok {
			continue // the route was removed from the config; cleanup retires the group
		}
		g.NextFlush = now.Add(r.interval)
		st.Groups[gk] = g
		var firing []string
		for _, fp := range g.Alerts {
			if a := st.Alerts[fp]; a.State == StateFiring && a.MutedBy == "" {
				firing = append(firing, fp)
			}
		}
		for _, ch := range r.channels {
			lk := LogKey(gk, ch)
			entry, exists := st.Log[lk]
			if entry.Pending != nil {
				continue // the previous delivery is still under way
			}
			var resolved []string
			for _, fp := range g.Alerts {
				if st.Alerts[fp].State != StateFiring && slices.Contains(entry.Firing, fp) {
					resolved = append(resolved, fp)
				}
			}
			if !e.wantsResolved(ch) && len(resolved) > 0 {
				// Nothing to say about them on this channel: forget they were sent, so a
				// new firing of the same alert is news again.
				entry.Firing = slices.DeleteFunc(entry.Firing, func(fp string) bool { return slices.Contains(resolved, fp) })
				resolved = nil
				st.Log[lk] = entry
			}
			reason := needsUpdate(entry, firing, resolved, r.repeat, now)
			if reason == "" {
				continue
			}
			if !exists {
				entry = LogEntry{GroupKey: gk, Channel: ch, DedupKey: DedupKey(gk)}
			}
			entry.Pending = &Delivery{Firing: firing, Resolved: resolved, PlannedAt: now}
			st.Log[lk] = entry
			plan.Notifications = append(plan.Notifications, Notification{Reason: reason,
				Message: e.message(st, g, ch, entry.DedupKey, firing, resolved)})
		}
	}
}

// needsUpdate decides whether a channel must hear about a group (Alertmanager's dedup
// stage): new firing alerts, resolved alerts it was told about, or an unchanged firing
// group whose repeat interval passed. Muted alerts are neither news nor resolved.
func needsUpdate(entry LogEntry, firing, resolved []string, repeat time.Duration, now time.Time) string {
	switch {
	case entry.SentAt.IsZero():
		if len(firing) > 0 {
			return "new"
		}
		return ""
	case !subset(firing, entry.Firing):
		return "firing"
	case len(resolved) > 0 && len(firing) == 0:
		return "resolved"
	case len(resolved) > 0:
		return "changed"
	case len(firing) > 0 && now.Sub(entry.SentAt) >= repeat:
		return "repeat"
	}
	return ""
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func (e *Evaluator) message(st *State, g Group, channel, dedup string, firing, resolved []string) *notify.Message {
	var as []notify.Alert
	for _, fp := range append(slices.Clone(firing), resolved...) {
		a := st.Alerts[fp]
		na := notify.Alert{Status: notify.StatusFiring, Labels: maps.Clone(a.Labels), Annotations: maps.Clone(a.Annotations),
			StartsAt: a.ActiveAt, GeneratorURL: e.cfg.ExternalURL, Fingerprint: fp}
		if a.State != StateFiring {
			na.Status = notify.StatusResolved
			na.EndsAt = a.ResolvedAt
			if na.EndsAt.IsZero() {
				na.EndsAt = a.LastTrueAt
			}
		}
		if a.Flapping {
			na.Annotations["flapping"] = "true"
		}
		as = append(as, na)
	}
	m := notify.NewMessage(channel, g.Key, dedup, g.Labels, as)
	m.ExternalURL = e.cfg.ExternalURL
	return m
}

// cleanup retires groups with nothing left to say, their log entries, old resolved
// alerts and old expired silences.
func (e *Evaluator) cleanup(st *State, now time.Time) {
	history := e.cfg.History.D()
	busy := map[string]bool{} // groups with a delivery under way or a firing state to resolve
	for _, l := range st.Log {
		if l.Pending != nil || (len(l.Firing) > 0 && e.wantsResolved(l.Channel)) {
			busy[l.GroupKey] = true
		}
	}
	for gk, g := range st.Groups {
		firing := false
		for _, fp := range g.Alerts {
			if st.Alerts[fp].State == StateFiring {
				firing = true
				break
			}
		}
		if firing {
			continue
		}
		// A channel that never accepts the resolve must not keep a group forever.
		if !busy[gk] || now.Sub(g.LastFiring) >= history {
			delete(st.Groups, gk)
		}
	}
	for k, l := range st.Log {
		if _, ok := st.Groups[l.GroupKey]; !ok {
			delete(st.Log, k)
		}
	}
	inGroup := map[string]bool{}
	for _, g := range st.Groups {
		for _, fp := range g.Alerts {
			inGroup[fp] = true
		}
	}
	for fp, a := range st.Alerts {
		if a.State == StateResolved && now.Sub(a.ResolvedAt) >= history && !inGroup[fp] {
			delete(st.Alerts, fp)
		}
	}
	for id, s := range st.Silences {
		if s.Status(now) == SilenceExpired && now.Sub(s.EndsAt) >= history {
			delete(st.Silences, id)
		}
	}
}
