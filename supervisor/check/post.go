package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/supervisor/localapi"
)

// Supervisor is the running supervisor as the post-deploy check reads it: the JSON
// of local API routes (localapi.Client.GetJSON). A route this supervisor does not have
// answers ErrNoRoute — that is how a check learns that its feature is not there.
type Supervisor interface {
	GetJSON(ctx context.Context, path string) ([]byte, error)
}

// ErrNoRoute is what Supervisor.GetJSON returns for a route the supervisor lacks.
var ErrNoRoute = localapi.ErrNoRoute

// PostOptions are the post-deploy check's inputs.
type PostOptions struct {
	Config     *config.Config
	Supervisor Supervisor
	Host       Host
	// AccountFile holds the check account (SetupAccount writes it).
	AccountFile string
	// HTTP talks to the loopback listener (default: a client with a 30 s timeout).
	HTTP *http.Client
	// TLSDial overrides where the TLS check connects (tests); default 127.0.0.1 and
	// the edge's HTTPS port.
	TLSAddr string
	// StackOnly checks the supervisor and the services only (waiting for a healthy
	// stack).
	StackOnly bool
	Now       func() time.Time
}

// statusView is the part of `corpintel status --json` the check reads. Backups and
// the restore drill are optional: a supervisor without those features has no such
// fields, and the check says "not configured".
type statusView struct {
	Supervisor  bool   `json:"supervisor"`
	Stopped     bool   `json:"stopped"`
	LastError   string `json:"last_error"`
	Maintenance string `json:"maintenance"`
	Operation   *struct {
		ID        int64     `json:"id"`
		Kind      string    `json:"kind"`
		StartedAt time.Time `json:"started_at"`
	} `json:"operation"`
	Services []struct {
		Service string `json:"service"`
		Desired int    `json:"desired"`
		Running int    `json:"running"`
		Healthy int    `json:"healthy"`
		State   string `json:"state"`
		Backoff string `json:"backoff"`
		Held    string `json:"held"`
	} `json:"services"`
	Backups      *[]backupView `json:"backups"`
	RestoreDrill *drillView    `json:"restore_drill"`
}

// backupView is one tier of status.backups (supervisor/health.BackupStatus).
type backupView struct {
	Tier         string    `json:"tier"`
	LastGood     time.Time `json:"last_good"`
	LastGoodName string    `json:"last_good_name"`
	LastFailure  time.Time `json:"last_failure"`
	LastError    string    `json:"last_error"`
	Next         time.Time `json:"next"`
}

// drillView is status.restore_drill: the last restore drill (a restore into scratch
// volumes, checked against the backup's manifest).
type drillView struct {
	Last   time.Time `json:"last"`
	OK     bool      `json:"ok"`
	Backup string    `json:"backup"`
	Error  string    `json:"error"`
	Next   time.Time `json:"next"`
}

// alertsView is the part of the alerts snapshot (GET /v1/alerts) the check reads.
type alertsView struct {
	LastEvaluation time.Time `json:"last_evaluation"`
	LastError      string    `json:"last_error"`
	Active         []struct {
		Rule  string `json:"rule"`
		State string `json:"state"`
	} `json:"active"`
	Channels []struct {
		Name                string    `json:"name"`
		Type                string    `json:"type"`
		LastSuccess         time.Time `json:"last_success"`
		LastError           string    `json:"last_error"`
		LastErrorAt         time.Time `json:"last_error_at"`
		ConsecutiveFailures int       `json:"consecutive_failures"`
	} `json:"channels"`
}

// Post runs the post-deploy check.
func Post(ctx context.Context, o PostOptions) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	start := o.Now()
	c := &collector{}
	st, ok := postSupervisor(ctx, c, o)
	if ok {
		postServices(c, st)
	}
	if o.StackOnly {
		return Report{Kind: "post", At: start.UTC(), Took: o.Now().Sub(start), Results: c.results}
	}
	if ok {
		postSmoke(ctx, c, o, st)
	}
	postTLS(ctx, c, o)
	if ok {
		postBackups(c, o, st)
		postDrill(c, o, st)
		postAlerts(ctx, c, o)
	}
	postListeners(c, o)
	return Report{Kind: "post", At: start.UTC(), Took: o.Now().Sub(start), Results: c.results}
}

func postSupervisor(ctx context.Context, c *collector, o PostOptions) (statusView, bool) {
	var st statusView
	raw, err := o.Supervisor.GetJSON(ctx, "/v1/status")
	if err != nil {
		fix := "see why: journalctl -u corpintel -n 50; start it: systemctl start corpintel"
		if !errors.Is(err, localapi.ErrNotRunning) {
			fix = "check the socket's permissions (root or group corpintel) and journalctl -u corpintel"
		}
		c.add("supervisor", Fail, "no supervisor answers: "+err.Error(), fix)
		return st, false
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		c.add("supervisor", Fail, "the supervisor's status does not decode: "+err.Error(), "run the corpintel CLI of the installed version (/usr/local/bin/corpintel)")
		return st, false
	}
	switch {
	case st.Stopped:
		c.add("supervisor", Fail, "running, but the stack is stopped (`corpintel stop`)", "corpintel start")
	case st.Operation != nil:
		c.add("supervisor", Warn, fmt.Sprintf("running; %s #%d in progress since %s", st.Operation.Kind, st.Operation.ID, st.Operation.StartedAt.UTC().Format(time.RFC3339)),
			"check again when it has ended (corpintel status)")
	case st.LastError != "":
		c.add("supervisor", Warn, "running; the last reconcile failed: "+st.LastError, "corpintel status; journalctl -u corpintel")
	default:
		c.ok("supervisor", "running")
	}
	return st, true
}

func postServices(c *collector, st statusView) {
	if len(st.Services) == 0 {
		c.add("services", Fail, "the supervisor reports no services", "corpintel status; journalctl -u corpintel")
		return
	}
	for _, s := range st.Services {
		name := "service " + s.Service
		msg := fmt.Sprintf("%d/%d healthy (%s)", s.Healthy, s.Desired, s.State)
		switch {
		case s.Desired == 0:
			c.add(name, Warn, "scaled to 0", fmt.Sprintf("corpintel scale %s=1 (or more)", s.Service))
		case s.Healthy < s.Desired || s.Running != s.Desired:
			detail := msg
			for _, why := range []string{s.Backoff, s.Held} {
				if why != "" {
					detail += ": " + why
				}
			}
			c.add(name, Fail, detail, fmt.Sprintf("corpintel logs --tail 100 %s; corpintel restart %s once the cause is fixed", s.Service, s.Service))
		default:
			c.ok(name, "%s", msg)
		}
	}
}

// postListeners: nothing but the edge on non-loopback addresses.
func postListeners(c *collector, o PostOptions) {
	if o.Host.Listeners == nil {
		return
	}
	ls, err := o.Host.Listeners()
	if err != nil {
		c.add("listeners", Warn, "cannot read the listening sockets: "+err.Error(), "run the check as root")
		return
	}
	var edge []int
	for _, a := range []string{o.Config.Edge.HTTPS, o.Config.Edge.HTTP} {
		if _, p, err := net.SplitHostPort(a); err == nil {
			n, _ := strconv.Atoi(p)
			edge = append(edge, n)
		}
	}
	public := 0
	for _, l := range ls {
		if l.IP.IsLoopback() {
			continue
		}
		public++
		st, msg, fix := listenerPolicy(l, edge)
		c.add("listening "+l.addr(), st, msg, fix)
	}
	if public == 0 {
		c.add("listeners", Warn, "nothing listens on a non-loopback address: the edge is not reachable from the network", "set edge.https and edge.http (default :443 and :80)")
	}
}

// tierPeriod is how often a tier runs; a last good backup older than 1.5 periods is
// stale (a run was missed or failed).
func tierPeriod(tier string) time.Duration {
	switch tier {
	case "hourly":
		return time.Hour
	case "weekly":
		return 7 * 24 * time.Hour
	case "monthly":
		return 31 * 24 * time.Hour
	}
	return 24 * time.Hour
}

func postBackups(c *collector, o PostOptions, st statusView) {
	if st.Backups == nil {
		c.add("backups", NotConfigured, "this supervisor reports no backups (the feature is not in this build)", "")
		return
	}
	if len(*st.Backups) == 0 {
		c.add("backups", Warn, "no backup tier is configured", "configure [backup] tiers (daily, weekly, monthly)")
		return
	}
	now := o.Now()
	for _, b := range *st.Backups {
		name := "backup " + b.Tier
		period := tierPeriod(b.Tier)
		next := ""
		if !b.Next.IsZero() {
			next = fmt.Sprintf("; next at %s", b.Next.UTC().Format(time.RFC3339))
		}
		switch {
		case b.LastGood.IsZero() && b.LastFailure.IsZero():
			c.add(name, Warn, "no verified backup yet"+next, fmt.Sprintf("wait for the schedule, or take one now: corpintel backup %s", b.Tier))
		case b.LastGood.IsZero():
			c.add(name, Fail, fmt.Sprintf("no verified backup; the last run failed at %s: %s", b.LastFailure.UTC().Format(time.RFC3339), b.LastError),
				fmt.Sprintf("fix the cause, then corpintel backup %s", b.Tier))
		case now.Sub(b.LastGood) > period*3/2:
			c.add(name, Fail, fmt.Sprintf("stale: the last verified backup (%s) is %s old, the tier runs every %s%s", b.LastGoodName, humanDuration(now.Sub(b.LastGood)), humanDuration(period), next),
				fmt.Sprintf("see why runs fail or do not happen (corpintel status, journalctl -u corpintel), then corpintel backup %s", b.Tier))
		case b.LastFailure.After(b.LastGood):
			c.add(name, Warn, fmt.Sprintf("the last verified backup (%s) is %s old, but the latest run failed: %s", b.LastGoodName, humanDuration(now.Sub(b.LastGood)), b.LastError),
				fmt.Sprintf("fix the cause before the next run, or run corpintel backup %s", b.Tier))
		default:
			c.ok(name, "last verified backup %s, %s old%s", b.LastGoodName, humanDuration(now.Sub(b.LastGood)), next)
		}
	}
}

// drillMaxAge: a restore drill older than this is overdue (the seed tests restores
// monthly).
const drillMaxAge = 35 * 24 * time.Hour

func postDrill(c *collector, o PostOptions, st statusView) {
	d := st.RestoreDrill
	switch {
	case d == nil:
		c.add("restore drill", NotConfigured, "this supervisor reports no restore drills (the feature is not in this build)", "")
	case d.Last.IsZero():
		c.add("restore drill", Warn, "no restore drill has run yet", "run one: corpintel restore --drill")
	case !d.OK:
		c.add("restore drill", Fail, fmt.Sprintf("the last drill (%s, of %s) failed: %s", d.Last.UTC().Format(time.RFC3339), d.Backup, d.Error), "the backups may not restore: fix the cause, then corpintel restore --drill")
	case o.Now().Sub(d.Last) > drillMaxAge:
		c.add("restore drill", Warn, fmt.Sprintf("the last good drill is %s old", humanDuration(o.Now().Sub(d.Last))), "run one: corpintel restore --drill")
	default:
		c.ok("restore drill", "last drill %s ago restored %s", humanDuration(o.Now().Sub(d.Last)), d.Backup)
	}
}

// postAlerts reads the alert channels' state; nothing is sent (a dry run: the channel
// status says whether the last delivery reached it).
func postAlerts(ctx context.Context, c *collector, o PostOptions) {
	raw, err := o.Supervisor.GetJSON(ctx, "/v1/alerts")
	if errors.Is(err, ErrNoRoute) {
		c.add("alerts", NotConfigured, "this supervisor has no alert engine (the feature is not in this build)", "")
		return
	}
	if err != nil {
		c.add("alerts", Warn, "cannot read the alerts: "+err.Error(), "corpintel alerts")
		return
	}
	var a alertsView
	if err := json.Unmarshal(raw, &a); err != nil {
		c.add("alerts", Warn, "the alerts do not decode: "+err.Error(), "")
		return
	}
	if a.LastError != "" {
		c.add("alerts", Warn, "the last rule evaluation failed: "+a.LastError, "journalctl -u corpintel")
	}
	if len(a.Channels) == 0 {
		c.add("alert channels", Warn, "no alert channel is configured: alerts reach nobody", "configure an e-mail, Slack, PagerDuty or webhook channel under [alerts]; then corpintel alerts test CHANNEL")
		return
	}
	for _, ch := range a.Channels {
		name := "alert channel " + ch.Name
		switch {
		case ch.ConsecutiveFailures > 0:
			c.add(name, Fail, fmt.Sprintf("%s: the last %d deliveries failed (%s: %s)", ch.Type, ch.ConsecutiveFailures, ch.LastErrorAt.UTC().Format(time.RFC3339), ch.LastError),
				fmt.Sprintf("fix the channel's address or credentials, then corpintel alerts test %s", ch.Name))
		case ch.LastSuccess.IsZero():
			c.add(name, Warn, fmt.Sprintf("%s: configured, never delivered, so not known to reach anyone (this check sends nothing)", ch.Type),
				fmt.Sprintf("prove it once: corpintel alerts test %s", ch.Name))
		default:
			c.ok(name, "%s: last delivery %s ago", ch.Type, humanDuration(o.Now().Sub(ch.LastSuccess)))
		}
	}
	firing := 0
	for _, al := range a.Active {
		if al.State == "firing" {
			firing++
		}
	}
	if firing > 0 {
		c.add("alerts firing", Warn, fmt.Sprintf("%d alert(s) firing", firing), "corpintel alerts")
	}
}

// loopbackURL is the supervisor's loopback listener.
func loopbackURL(cfg *config.Config) string {
	return "http://" + strings.Replace(cfg.Listen, "localhost", "127.0.0.1", 1)
}
