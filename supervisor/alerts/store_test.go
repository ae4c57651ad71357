package alerts

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/corpintel/corpintel/supervisor/alerts/notify"
)

// openDB opens a fresh SQLite file with the schema applied, as supervisor/state will.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'alert_instances'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		if _, err := db.Exec(Schema); err != nil {
			t.Fatalf("apply schema: %v", err)
		}
	}
	return db
}

func sampleState() State {
	st := NewState()
	labels := Labels{"alertname": "DiskSpaceLow", "severity": "warning", "mount": "/"}
	fp := Fingerprint(labels)
	st.Alerts[fp] = Alert{Fingerprint: fp, Rule: "DiskSpaceLow", Labels: labels, Annotations: Labels{"summary": "full"},
		State: StateFiring, Value: 0.9, ActiveAt: t0, FiredAt: t0, LastTrueAt: t0.Add(time.Minute), FireEvents: []time.Time{t0}, MutedBy: "silenced by x"}
	rl := Labels{"alertname": "APIDown", "severity": "critical"}
	rfp := Fingerprint(rl)
	st.Alerts[rfp] = Alert{Fingerprint: rfp, Rule: "APIDown", Labels: rl, State: StateResolved, ActiveAt: t0, FiredAt: t0, ResolvedAt: t0.Add(time.Hour), LastTrueAt: t0}
	gk := GroupKey("warning", Labels{"alertname": "DiskSpaceLow"})
	st.Groups[gk] = Group{Key: gk, Route: "warning", Labels: Labels{"alertname": "DiskSpaceLow"}, Alerts: []string{fp}, CreatedAt: t0, NextFlush: t0.Add(5 * time.Minute), LastFiring: t0}
	st.Log[LogKey(gk, "mail")] = LogEntry{GroupKey: gk, Channel: "mail", DedupKey: DedupKey(gk), Firing: []string{fp}, SentAt: t0.Add(30 * time.Second)}
	st.Log[LogKey(gk, "chat")] = LogEntry{GroupKey: gk, Channel: "chat", DedupKey: DedupKey(gk), Pending: &Delivery{Firing: []string{fp}, PlannedAt: t0}}
	st.Silences["x"] = Silence{ID: "x", Matchers: mustMatchers(`mount=~"/.*"`), StartsAt: t0, EndsAt: t0.Add(time.Hour),
		CreatedBy: "ops", Comment: "disk swap", CreatedAt: t0, UpdatedAt: t0}
	return st
}

func TestSQLStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := NewSQLStore(openDB(t, ""))
	empty, err := s.Load(ctx)
	if err != nil || len(empty.Alerts)+len(empty.Groups)+len(empty.Log)+len(empty.Silences) != 0 {
		t.Fatalf("empty load: %v %v", empty, err)
	}
	want := sampleState()
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if js(got) != js(want) {
		t.Errorf("round trip differs:\n got %s\nwant %s", js(got), js(want))
	}
	// The loaded silence's regexp matcher works.
	if !got.Silences["x"].Matchers.Matches(Labels{"mount": "/srv"}) {
		t.Error("loaded silence does not match")
	}
	// Save replaces: what is gone from the state is gone from the store.
	delete(want.Silences, "x")
	want.Log = map[string]LogEntry{}
	if err := s.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx); len(got.Silences) != 0 || len(got.Log) != 0 || len(got.Alerts) != 2 {
		t.Errorf("after replace: %s", js(got))
	}
}

func TestSQLStoreDeliveries(t *testing.T) {
	ctx := context.Background()
	s := NewSQLStore(openDB(t, ""))
	for i := range deliveryHistory + 150 {
		r := notify.Result{Channel: "mail", GroupKey: "g", DedupKey: "d", Status: "firing", Alerts: 1, Attempts: 1, OK: i%2 == 0,
			At: t0.Add(time.Duration(i) * time.Second)}
		if !r.OK {
			r.Error = "boom"
		}
		if err := s.RecordDelivery(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Deliveries(ctx, 3)
	if err != nil || len(got) != 3 || !got[0].At.After(got[1].At) || got[0].Error != "boom" {
		t.Fatalf("Deliveries = %+v, %v", got, err)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM alert_deliveries`).Scan(&n); err != nil || n > deliveryHistory+100 {
		t.Errorf("history holds %d rows (%v), want it trimmed near %d", n, err, deliveryHistory)
	}
	if _, err := s.Deliveries(ctx, 0); err == nil {
		t.Error("limit 0 accepted")
	}
}

// Damaged rows are reported, naming what could not be read, instead of loading a
// partial state.
func TestSQLStoreDamagedRows(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"alert", `INSERT INTO alert_instances VALUES ('f', 'r', 'firing', 'warning', '{}', '2026-01-01T00:00:00Z', NULL, NULL, '{bad')`, "alert"},
		{"group", `INSERT INTO alert_groups VALUES ('g', 'r', '2026-01-01T00:00:00Z', 'nope')`, "group"},
		{"log time", `INSERT INTO alert_notification_log VALUES ('g', 'c', 'd', 'yesterday', '[]', '[]', NULL)`, "sent_at"},
		{"log firing", `INSERT INTO alert_notification_log VALUES ('g', 'c', 'd', NULL, 'x', '[]', NULL)`, "firing"},
		{"log pending", `INSERT INTO alert_notification_log VALUES ('g', 'c', 'd', NULL, '[]', '[]', '{')`, "pending"},
		{"silence matcher", `INSERT INTO alert_silences VALUES ('s', '[{"name":"a","op":"=~","value":"("}]', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'a', 'c', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`, "silence s"},
		{"silence time", `INSERT INTO alert_silences VALUES ('s', '[]', 'soon', '2026-01-01T00:00:00Z', 'a', 'c', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`, "silence s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, "")
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			if _, err := NewSQLStore(db).Load(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want an error about %s", err, tc.want)
			}
		})
	}
	db := openDB(t, "")
	db.Close()
	s := NewSQLStore(db)
	if err := s.Save(ctx, sampleState()); err == nil {
		t.Error("Save on a closed database succeeded")
	}
	if _, err := s.Load(ctx); err == nil {
		t.Error("Load on a closed database succeeded")
	}
	if err := s.RecordDelivery(ctx, notify.Result{}); err == nil {
		t.Error("RecordDelivery on a closed database succeeded")
	}
	if _, err := s.Deliveries(ctx, 1); err == nil {
		t.Error("Deliveries on a closed database succeeded")
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
