package alerts

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/evaluate")

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// testChannels are one channel of each type, so the default routes send critical alerts
// to pd+mail+hook, warnings to mail+chat+hook, info to chat+hook.
func testChannels() []ChannelConfig {
	return []ChannelConfig{
		{Name: "pd", Type: notify.TypePagerDuty, RoutingKeyFile: "/dev/null"},
		{Name: "mail", Type: notify.TypeEmail, SMTPHost: "localhost", From: "a@example.com", To: []string{"ops@example.com"}},
		{Name: "chat", Type: notify.TypeSlack, URLFile: "/dev/null"},
	}
}

// world is the monitored system: the history of every series, to which each step
// appends the current values.
type world struct {
	series map[string]*Series
	order  []string
}

func newWorld() *world { return &world{series: map[string]*Series{}} }

func (w *world) set(name string, l Labels, at time.Time, v float64) {
	k := seriesKey(name, l)
	s, ok := w.series[k]
	if !ok {
		s = &Series{Name: name, Labels: l}
		w.series[k] = s
		w.order = append(w.order, k)
	}
	s.Points = append(s.Points, Point{T: at, V: v})
}

func (w *world) samples(at time.Time) Samples {
	s := Samples{At: at}
	for _, k := range w.order {
		sr := w.series[k]
		s.Series = append(s.Series, Series{Name: sr.Name, Labels: sr.Labels, Points: slices.Clone(sr.Points)})
	}
	return s
}

// scenario runs steps against an evaluator and writes a transcript: per step the plan
// and the alerts whose state or muting changed.
type scenario struct {
	t       *testing.T
	ev      *Evaluator
	w       *world
	st      State
	now     time.Time
	op      *Operation
	out     strings.Builder
	lastSum map[string]string
	// deliver decides per channel whether deliveries succeed (default: all do).
	deliver func(channel string) bool
	// staleBackups stops the scenario from reporting a fresh verified backup and restore
	// drill at every step.
	staleBackups bool
}

func newScenario(t *testing.T, cfg Config) *scenario {
	t.Helper()
	if cfg.Channels == nil {
		cfg.Channels = testChannels()
	}
	ev, err := NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &scenario{t: t, ev: ev, w: newWorld(), st: NewState(), now: t0, lastSum: map[string]string{}}
}

func (s *scenario) at(d time.Duration) *scenario {
	s.now = t0.Add(d)
	return s
}

func (s *scenario) set(name string, l Labels, v float64) *scenario {
	s.w.set(name, l, s.now, v)
	return s
}

// eval runs one evaluation at the current time, records it and delivers what it planned.
func (s *scenario) eval(note string) Plan {
	s.t.Helper()
	if !s.staleBackups {
		// A healthy appliance backs up and drills, so the scenarios show only what they
		// are about.
		s.set(MetricBackupLastSuccess, nil, float64(s.now.Unix()))
		s.set(MetricDrillLastSuccess, nil, float64(s.now.Unix()))
	}
	before := s.st.Clone()
	next, plan := s.ev.Evaluate(s.st, Input{Samples: s.w.samples(s.now), Operation: s.op, Now: s.now})
	if !stateEqual(before, s.st) {
		s.t.Fatal("Evaluate modified its input state")
	}
	s.st = next
	var out strings.Builder
	text := plan.String()
	if text != "(nothing)\n" {
		out.WriteString(text)
	}
	// Besides the transitions: changes of muting and flapping, and resolved alerts that
	// leave the state.
	sum := map[string]string{}
	for _, a := range s.st.Alerts {
		line := a.State
		if a.MutedBy != "" {
			line += ", muted: " + a.MutedBy
		}
		if a.Flapping {
			line += ", flapping"
		}
		sum[alertID(a.Labels)] = line
	}
	keys := map[string]bool{}
	for k := range sum {
		keys[k] = true
	}
	for k := range s.lastSum {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		now, was := sum[k], s.lastSum[k]
		switch {
		case now == was:
		case now == "" && strings.HasPrefix(was, StateResolved):
			fmt.Fprintf(&out, "   %s: forgotten\n", k)
		case now != "" && extra(now) != extra(was):
			fmt.Fprintf(&out, "   %s: %s\n", k, now)
		}
	}
	s.lastSum = sum
	if out.Len() > 0 || note != "" {
		fmt.Fprintf(&s.out, "== t+%s %s\n%s", s.now.Sub(t0), note, out.String())
	}
	for _, n := range plan.Notifications {
		ok := s.deliver == nil || s.deliver(n.Message.Channel)
		if !ok {
			fmt.Fprintf(&s.out, "   (delivery to %s fails)\n", n.Message.Channel)
		}
		s.st.MarkDelivered(n.Message.GroupKey, n.Message.Channel, ok, s.now)
	}
	return plan
}

// every evaluates at each interval step in [from, to].
func (s *scenario) every(from, to, step time.Duration, set func(s *scenario, d time.Duration)) {
	for d := from; d <= to; d += step {
		s.at(d)
		if set != nil {
			set(s, d)
		}
		s.eval("")
	}
}

func (s *scenario) golden(name string) {
	s.t.Helper()
	path := filepath.Join("testdata", "evaluate", name+".golden")
	got := s.out.String()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("%v (run go test -run %s -update to create it)", err, s.t.Name())
	}
	if got != string(want) {
		s.t.Errorf("transcript differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// extra is the part of a summary line after the state.
func extra(line string) string {
	_, rest, _ := strings.Cut(line, ", ")
	return rest
}

func stateEqual(a, b State) bool {
	return fmt.Sprintf("%v", js(a)) == fmt.Sprintf("%v", js(b))
}
