package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOverviewShowsWhatNeedsAttention(t *testing.T) {
	h := newHarness(t)
	cl := h.loggedIn("vera", "viewer")
	r := cl.get("/admin/")
	mustStatus(t, r, http.StatusOK)
	mustContain(t, r, "All clear", `class="card ok"`, "No backups yet", "No alerts shown yet", "No certificate yet", "1/1 healthy", "64.0 MiB")
	if !strings.Contains(r.header.Get("Server-Timing"), "status;dur=") || !strings.Contains(r.header.Get("Server-Timing"), "render;dur=") {
		t.Errorf("Server-Timing %q", r.header.Get("Server-Timing"))
	}
	// Pages share the hub's status while it is younger than the refresh interval.
	h.c.hub.mu.Lock()
	h.c.hub.maxAge, h.c.hub.at = time.Minute, time.Time{}
	h.c.hub.mu.Unlock()
	if first, second := cl.get("/admin/services"), cl.get("/admin/"); !strings.Contains(first.header.Get("Server-Timing"), `desc="fresh"`) ||
		!strings.Contains(second.header.Get("Server-Timing"), `desc="cached"`) {
		t.Errorf("Server-Timing: %q then %q", first.header.Get("Server-Timing"), second.header.Get("Server-Timing"))
	}
	h.c.hub.mu.Lock()
	h.c.hub.maxAge = 0
	h.c.hub.mu.Unlock()
	h.ops.setService("redis", func(s *Service) { s.Healthy, s.Running, s.State = 0, 0, "missing" })
	h.ops.setService("api", func(s *Service) {
		s.Desired, s.Healthy, s.State, s.Backoff = 2, 1, "degraded", "replaced 3 times; waiting 20s"
	})
	h.ops.mu.Lock()
	h.ops.status.Maintenance = "restore #3"
	h.ops.status.Certificates = []Certificate{{Name: "example.org", NotAfter: h.clock.Now().Add(48 * time.Hour), Issuer: "Test CA"},
		{Name: "soon.example.org", NotAfter: h.clock.Now().Add(10 * 24 * time.Hour), LastError: "acme: rate limited"}}
	h.ops.mu.Unlock()
	r = cl.get("/admin/")
	mustContain(t, r, "Needs attention", "redis is down: 0 of 1 replicas healthy (missing).", "api is degraded: 1 of 2 replicas healthy.",
		"replaced 3 times", "Maintenance: restore #3", "The certificate for example.org expires in 2 days.", "acme: rate limited", "issued by Test CA")
	if i, j := strings.Index(r.body, "redis is down"), strings.Index(r.body, "api is degraded"); i > j {
		t.Error("the down service is not listed first")
	}
	h.ops.mu.Lock()
	h.ops.statusErr = errors.New("engine does not answer")
	h.ops.mu.Unlock()
	mustContain(t, cl.get("/admin/services"), "could not read the stack's state: engine does not answer")
}

func TestServicePages(t *testing.T) {
	h := newHarness(t)
	viewer := h.loggedIn("vera", "viewer")
	r := viewer.get("/admin/services")
	mustContain(t, r, `id="svc-redis"`, "1/1")
	if strings.Contains(r.body, "/restart") {
		t.Error("a viewer is offered restart links")
	}
	r = viewer.get("/admin/services/api")
	mustContain(t, r, "p-api-1", "Containers")
	if strings.Contains(r.body, "Scale…") {
		t.Error("a viewer is offered scaling")
	}
	mustStatus(t, viewer.get("/admin/services/nope"), http.StatusNotFound)
	op := h.loggedIn("otto", "operator")
	mustContain(t, op.get("/admin/services/api"), "Scale…", "Restart api…", "View log")
	mustStatus(t, op.get("/admin/services/redis/scale"), http.StatusBadRequest)
	r = op.get("/admin/services/api/scale?replicas=99")
	mustStatus(t, r, http.StatusUnprocessableEntity)
	mustContain(t, r, "from 0 to 16")
	mustContain(t, op.get("/admin/services/api/scale?replicas=3"), "Scale api from 1 to 3 replicas?", "2 new replicas start and join the edge")
	r = op.get("/admin/services/api/scale?replicas=0")
	mustContain(t, r, "Scaling to 0 takes the API down.")
	if strings.Contains(r.body, "Confirm it is you") {
		t.Error("asked for the password right after the login")
	}
	h.clock.Add(reauthWindow)
	mustContain(t, op.get("/admin/services/api/scale?replicas=0"), "Confirm it is you")
}

// waitAction follows the progress page to its end.
func waitAction(t *testing.T, cl *client, loc string) resp {
	t.Helper()
	var r resp
	waitFor(t, "action "+loc, func() bool {
		r = cl.get(loc)
		return r.status == http.StatusOK && !strings.Contains(r.body, "In progress")
	})
	return r
}

func TestRestart(t *testing.T) {
	h := newHarness(t)
	op := h.loggedIn("otto", "operator")
	// The API: no password needed.
	mustContain(t, op.get("/admin/services/api/restart"), "Restart api?", "drains a replica")
	r := op.post("/admin/services/api/restart", nil)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/admin/actions/") {
		t.Fatalf("restart: %d %q %s", r.status, r.loc, r.body)
	}
	done := waitAction(t, op, r.loc)
	mustContain(t, done, "Done", "1 of 1 replicas healthy", "Started by otto")
	mustContain(t, op.get("/admin/services/api"), "Recent actions", `href="`+r.loc+`">Restart api</a> — succeeded, by otto`)
	if !slices.Contains(h.ops.callList(), "restart api") {
		t.Fatalf("calls %v", h.ops.callList())
	}
	// Redis is stateful: the password again, unless typed a moment ago.
	h.clock.Add(reauthWindow)
	page := op.get("/admin/services/redis/restart")
	mustContain(t, page, "Confirm it is you", "holds the stack&#39;s data")
	r = op.post("/admin/services/redis/restart", url.Values{"password": {"wrong"}})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	mustContain(t, r, "This needs your password again")
	r = op.post("/admin/services/redis/restart", nil)
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if slices.Contains(h.ops.callList(), "restart redis") {
		t.Fatal("redis restarted without re-authentication")
	}
	r = op.post("/admin/services/redis/restart", url.Values{"password": {"password-of-otto"}})
	mustStatus(t, r, http.StatusSeeOther)
	waitAction(t, op, r.loc)
	// Within the window it asks no more.
	if strings.Contains(op.get("/admin/services/redis/restart").body, "Confirm it is you") {
		t.Error("asked for the password again right after typing it")
	}
	var outcomes []string
	for _, e := range h.store.entries("service.restart") {
		outcomes = append(outcomes, e.Target+" "+e.Outcome)
	}
	want := []string{"api started", "api success", "redis denied", "redis denied", "redis started", "redis success"}
	waitFor(t, "audit", func() bool {
		outcomes = outcomes[:0]
		for _, e := range h.store.entries("service.restart") {
			outcomes = append(outcomes, e.Target+" "+e.Outcome)
		}
		return slices.Equal(outcomes, want)
	})
	// A failed operation shows its error.
	h.ops.mu.Lock()
	h.ops.opErr = errors.New("engine said no")
	h.ops.mu.Unlock()
	r = op.post("/admin/services/api/restart", nil)
	done = waitAction(t, op, r.loc)
	mustContain(t, done, "Failed", "engine said no")
	mustStatus(t, op.get("/admin/actions/unknown"), http.StatusNotFound)
}

func TestScale(t *testing.T) {
	h := newHarness(t)
	op := h.loggedIn("otto", "operator")
	op.get("/admin/services/api/scale?replicas=2")
	for _, bad := range []string{"x", "-1", "17"} {
		r := op.post("/admin/services/api/scale", url.Values{"replicas": {bad}})
		mustStatus(t, r, http.StatusUnprocessableEntity)
		mustContain(t, r, "Replicas must be a whole number from 0 to 16.")
	}
	mustStatus(t, op.post("/admin/services/redis/scale", url.Values{"replicas": {"2"}}), http.StatusUnprocessableEntity)
	r := op.post("/admin/services/api/scale", url.Values{"replicas": {"2"}})
	mustStatus(t, r, http.StatusSeeOther)
	done := waitAction(t, op, r.loc)
	mustContain(t, done, "Scale api from 1 to 2", "2 of 2 replicas healthy", "Done")
	// To 0: the password.
	h.clock.Add(reauthWindow)
	mustStatus(t, op.post("/admin/services/api/scale", url.Values{"replicas": {"0"}}), http.StatusUnprocessableEntity)
	r = op.post("/admin/services/api/scale", url.Values{"replicas": {"0"}, "password": {"password-of-otto"}})
	mustStatus(t, r, http.StatusSeeOther)
	waitAction(t, op, r.loc)
	if got := h.ops.callList(); !slices.Contains(got, "scale api=2") || !slices.Contains(got, "scale api=0") {
		t.Fatalf("calls %v", got)
	}
	// Replicas that never get healthy: the action says so.
	h.ops.mu.Lock()
	h.ops.unhealthyAfterOp = true
	h.ops.mu.Unlock()
	r = op.post("/admin/services/api/scale", url.Values{"replicas": {"1"}})
	id := strings.TrimPrefix(r.loc, "/admin/actions/")
	// A second action on the same service waits for the first.
	busy := op.post("/admin/services/api/scale", url.Values{"replicas": {"3"}})
	mustStatus(t, busy, http.StatusUnprocessableEntity)
	mustContain(t, busy, "is still running")
	done = waitAction(t, op, "/admin/actions/"+id)
	mustContain(t, done, "Failed", "is not healthy within")
	waitFor(t, "failure audited", func() bool {
		e := h.store.entries("service.scale")
		return e[len(e)-1].Outcome == "failure"
	})
}

func TestLogs(t *testing.T) {
	h := newHarness(t)
	op := h.loggedIn("otto", "operator")
	huge := strings.Repeat("A", 3*maxLine)
	h.ops.mu.Lock()
	h.ops.logs = "first line\n<script>alert('xss')</script>\n" + huge + "\nbell\x07 and \x1b[31mcolour\x1b[0m\ninvalid \xff utf8\nlast without newline"
	h.ops.mu.Unlock()
	r := op.get("/admin/services/api/logs")
	mustStatus(t, r, http.StatusOK)
	mustContain(t, r, "first line", "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;", "… 8192 more bytes", "last without newline", "invalid \uFFFD utf8",
		"1 over-long line shortened to 4096 bytes")
	if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, huge) || strings.Contains(r.body, "\x1b") {
		t.Fatal("log line not escaped, not cut or not cleaned")
	}
	r = op.get("/admin/services/api/logs?q=FIRST&tail=500")
	mustContain(t, r, "first line", `containing “FIRST”`)
	if strings.Contains(r.body, "last without newline") {
		t.Fatal("filter not applied")
	}
	mustStatus(t, op.get("/admin/services/api/logs?tail=7"), http.StatusUnprocessableEntity)
	mustStatus(t, op.get("/admin/services/nope/logs"), http.StatusNotFound)
	if got := h.ops.callList(); !slices.Contains(got, "logs api tail=500 follow=false") {
		t.Fatalf("calls %v", got)
	}
}

// sseEvents reads events from a stream until n arrived or the deadline passed.
func sseEvents(t *testing.T, cl *client, path string, n int, during func()) []struct{ name, data string } {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cl.h.srv.URL+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := cl.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	var out []struct{ name, data string }
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	name := ""
	if during != nil {
		go during()
	}
	for sc.Scan() && len(out) < n {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			out = append(out, struct{ name, data string }{name, strings.TrimPrefix(line, "data: ")})
		}
	}
	return out
}

func TestLiveUpdates(t *testing.T) {
	h := newHarness(t)
	cl := h.loggedIn("vera", "viewer")
	evs := sseEvents(t, cl, "/admin/events?view=overview", 5, func() {
		time.Sleep(100 * time.Millisecond) // let the first fragments go out
		h.ops.setService("redis", func(s *Service) { s.Healthy, s.State = 0, "restarting" })
	})
	var frags []fragmentEvent
	for _, e := range evs {
		var f fragmentEvent
		if e.name != "fragment" || json.Unmarshal([]byte(e.data), &f) != nil {
			t.Fatalf("event %q %q", e.name, e.data)
		}
		frags = append(frags, f)
	}
	ids := map[string]string{}
	for _, f := range frags {
		ids[f.ID] = f.HTML
	}
	if !strings.Contains(ids["attention"], "redis is down") || !strings.Contains(ids["service-cards"], `class="card bad"`) {
		t.Fatalf("the change was not pushed: %v", ids)
	}
	for _, view := range []string{"services", "service:redis"} {
		evs := sseEvents(t, cl, "/admin/events?view="+view, 1, nil)
		if len(evs) != 1 || !strings.Contains(evs[0].data, "redis") {
			t.Fatalf("%s: %v", view, evs)
		}
	}
	for _, bad := range []string{"nope", "service:nope", "action:nope"} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/admin/events?view="+bad, nil)
		res, err := cl.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusNotFound {
			t.Errorf("view %s: %d", bad, res.StatusCode)
		}
	}
	// A stream whose session ended says so and stops; so does a log stream.
	h.c.heartbeat = 50 * time.Millisecond
	evs = sseEvents(t, cl, "/admin/events?view=services", 3, func() {
		time.Sleep(100 * time.Millisecond) // the stream is running
		_, _ = h.store.DeleteUserSessions(context.Background(), 1, "")
	})
	if last := evs[len(evs)-1]; last.name != "expired" {
		t.Fatalf("stream after the session ended: %+v", evs)
	}
	op := h.loggedIn("otto", "operator")
	h.ops.mu.Lock()
	h.ops.follow = make(chan string)
	h.ops.mu.Unlock()
	u, _ := h.store.UserByName(context.Background(), "otto")
	evs = sseEvents(t, op, "/admin/services/api/logs/stream", 1, func() {
		time.Sleep(100 * time.Millisecond) // the stream is running
		u.Active = false
		_ = h.store.UpdateUser(context.Background(), u)
	})
	if len(evs) != 1 || evs[0].name != "expired" {
		t.Fatalf("log stream of a deactivated user: %+v", evs)
	}
}

func TestLogStream(t *testing.T) {
	h := newHarness(t)
	op := h.loggedIn("otto", "operator")
	lines := make(chan string, 10)
	h.ops.mu.Lock()
	h.ops.follow = lines
	h.ops.mu.Unlock()
	lines <- "GET /health 200\n"
	lines <- "<img src=x onerror=alert(1)> " + strings.Repeat("B", maxLine+10) + "\n"
	lines <- "no match here\n"
	lines <- "GET /api 200\n"
	close(lines)
	evs := sseEvents(t, op, "/admin/services/api/logs/stream?q=GET", 10, nil)
	var got []logLine
	ended := false
	for _, e := range evs {
		switch e.name {
		case "line":
			var l logLine
			if err := json.Unmarshal([]byte(e.data), &l); err != nil {
				t.Fatal(err)
			}
			got = append(got, l)
		case "end":
			ended = true
		}
	}
	if !ended || len(got) != 2 || got[0].Text != "GET /health 200" || got[1].Text != "GET /api 200" {
		t.Fatalf("stream: %+v (ended %t)", got, ended)
	}
	// Escaping happens in the browser (textContent); the JSON itself carries no raw '<'.
	h.ops.mu.Lock()
	l2 := make(chan string, 2)
	l2 <- "<img src=x onerror=alert(1)> " + strings.Repeat("B", maxLine+10) + "\n"
	close(l2)
	h.ops.follow = l2
	h.ops.mu.Unlock()
	evs = sseEvents(t, op, "/admin/services/api/logs/stream", 2, nil)
	if !strings.Contains(evs[0].data, `\u003cimg`) || !strings.Contains(evs[0].data, `"cut":`) {
		t.Fatalf("line event %q", evs[0].data)
	}
}

func TestLineSplitter(t *testing.T) {
	var got []logLine
	sp := newLineSplitter(5, func(l logLine) error { got = append(got, l); return nil })
	for _, chunk := range []string{"ab", "cdefg", "hi\nshort\n", "", "x\ty\n", "tail"} {
		if _, err := sp.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	_ = sp.Flush()
	want := []logLine{{"abcde", 4}, {"short", 0}, {"x\ty", 0}, {"tail", 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if cleanLine([]byte("é\xc3")) != "é\uFFFD" {
		t.Fatal("a rune cut by the cap")
	}
	stop := errors.New("stop")
	sp = newLineSplitter(5, func(logLine) error { return stop })
	if _, err := sp.Write([]byte("a\n")); !errors.Is(err, stop) {
		t.Fatal("emit error not returned")
	}
}

var inviteLinkRE = regexp.MustCompile(`value="http://[^"]+(/admin/invite/[A-Za-z0-9_-]+)"`)

func TestInvitesAndUsers(t *testing.T) {
	h := newHarness(t)
	admin := h.loggedIn("ada", "admin")
	admin.get("/admin/users")
	for _, c := range []struct{ email, role, msg string }{
		{"not-an-email", "viewer", "Enter the e-mail address"},
		{"bob@example.com", "root", "Choose a role"},
	} {
		r := admin.post("/admin/users/invites", url.Values{"email": {c.email}, "role": {c.role}})
		mustStatus(t, r, http.StatusUnprocessableEntity)
		mustContain(t, r, c.msg)
	}
	r := admin.post("/admin/users/invites", url.Values{"email": {"Bob@Example.com"}, "role": {"operator"}})
	mustStatus(t, r, http.StatusOK)
	m := inviteLinkRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no invite link:\n%s", r.body)
	}
	link := m[1]
	if strings.Contains(admin.get("/admin/users").body, link) {
		t.Fatal("the invite link is shown again")
	}
	bob := h.client()
	form := bob.get(link)
	mustContain(t, form, "You were invited as <strong>operator</strong>")
	xss := `<img src=x onerror=alert(1)>`
	bad := []struct {
		email, name, pw, confirm, msg string
	}{
		{"eve@example.com", "bob", "bob-password-long", "bob-password-long", "different e-mail address"},
		{"bob@example.com", "<script>", "bob-password-long", "bob-password-long", "A user name has"},
		{"bob@example.com", "bob", "short", "short", "at least 12"},
		{"bob@example.com", "ada", "bob-password-long", "bob-password-long", "The user name ada is taken"},
	}
	for _, b := range bad {
		r := bob.post(link, url.Values{"email": {b.email}, "name": {b.name}, "full_name": {xss}, "password": {b.pw}, "confirm": {b.confirm}})
		mustStatus(t, r, http.StatusUnprocessableEntity)
		mustContain(t, r, b.msg)
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<img src=x") {
			t.Fatal("form echoes unescaped input")
		}
	}
	r = bob.post(link, url.Values{"email": {"bob@example.com"}, "name": {"bob"}, "full_name": {xss}, "password": {"bob-password-long"}, "confirm": {"bob-password-long"}})
	if r.status != http.StatusSeeOther || r.loc != "/admin/login?created=1" {
		t.Fatalf("accept: %d %q %s", r.status, r.loc, r.body)
	}
	mustContain(t, bob.get(r.loc), "Your account is ready")
	mustStatus(t, bob.get(link), http.StatusNotFound) // single use
	bob.login("bob", "bob-password-long")
	mustStatus(t, bob.get("/admin/services/api/restart"), http.StatusOK) // operator
	mustStatus(t, bob.get("/admin/users"), http.StatusForbidden)

	// The full name is stored as typed and shown escaped everywhere.
	users := admin.get("/admin/users")
	mustContain(t, users, "&lt;img src=x onerror=alert(1)&gt;", "used by bob")
	if strings.Contains(users.body, xss) {
		t.Fatal("stored XSS in the users page")
	}
	audit := admin.get("/admin/audit?q=bob")
	if strings.Contains(audit.body, xss) {
		t.Fatal("stored XSS in the audit page")
	}

	// Expired and revoked invites.
	admin.get("/admin/users")
	r = admin.post("/admin/users/invites", url.Values{"email": {"carl@example.com"}, "role": {"viewer"}})
	late := inviteLinkRE.FindStringSubmatch(r.body)[1]
	h.clock.Add(25 * time.Hour)
	mustStatus(t, h.client().get(late), http.StatusNotFound)
	admin.login("ada", "password-of-ada") // 25 hours later: past the absolute timeout
	admin.get("/admin/users")
	r = admin.post("/admin/users/invites", url.Values{"email": {"dora@example.com"}, "role": {"viewer"}})
	revoked := inviteLinkRE.FindStringSubmatch(r.body)[1]
	ids := regexp.MustCompile(`/admin/users/invites/(\d+)/revoke`).FindAllStringSubmatch(r.body, -1)
	if len(ids) != 1 {
		t.Fatalf("%d open invites listed", len(ids))
	}
	mustStatus(t, admin.post("/admin/users/invites/"+ids[0][1]+"/revoke", nil), http.StatusSeeOther)
	mustStatus(t, admin.post("/admin/users/invites/"+ids[0][1]+"/revoke", nil), http.StatusConflict)
	d := h.client()
	mustStatus(t, d.get(revoked), http.StatusNotFound)
	d.get("/admin/login") // a valid form token, to reach the handler
	mustStatus(t, d.post(revoked, url.Values{"email": {"dora@example.com"}, "name": {"dora"}, "password": {"dora-password-long"}, "confirm": {"dora-password-long"}}), http.StatusNotFound)

	// Roles, and the last admin.
	bobU, _ := h.store.UserByName(context.Background(), "bob")
	adaU, _ := h.store.UserByName(context.Background(), "ada")
	admin.get("/admin/users")
	mustStatus(t, admin.post("/admin/users/"+itoa64(bobU.ID)+"/role", url.Values{"role": {"god"}}), http.StatusUnprocessableEntity)
	r = admin.post("/admin/users/"+itoa64(adaU.ID)+"/role", url.Values{"role": {"viewer"}})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	mustContain(t, r, "only active admin")
	mustContain(t, admin.post("/admin/users/"+itoa64(adaU.ID)+"/active", url.Values{"active": {"0"}}), "only active admin")
	mustStatus(t, admin.post("/admin/users/"+itoa64(bobU.ID)+"/role", url.Values{"role": {"admin"}}), http.StatusSeeOther)
	bob.login("bob", "bob-password-long")
	mustStatus(t, bob.get("/admin/users"), http.StatusOK)
	mustStatus(t, admin.post("/admin/users/999/role", url.Values{"role": {"viewer"}}), http.StatusNotFound)
	mustStatus(t, admin.post("/admin/users/x/active", url.Values{"active": {"0"}}), http.StatusNotFound)
	// Now ada may step down and deactivate herself.
	mustStatus(t, admin.post("/admin/users/"+itoa64(adaU.ID)+"/role", url.Values{"role": {"viewer"}}), http.StatusSeeOther)
	mustStatus(t, admin.get("/admin/users"), http.StatusForbidden)

	actions := map[string]bool{}
	for _, e := range h.store.entries("") {
		actions[e.Action+" "+e.Outcome] = true
	}
	for _, want := range []string{"user.invite success", "user.invite failure", "user.create success", "user.create failure",
		"user.invite_revoke success", "user.role success", "user.role failure"} {
		if !actions[want] {
			t.Errorf("no audit %q", want)
		}
	}
}

func TestAuditPage(t *testing.T) {
	h := newHarness(t)
	admin := h.loggedIn("ada", "admin")
	for i := range 120 {
		_, _ = h.store.AppendAudit(context.Background(), AuditEntry{At: h.clock.Now(), Actor: "tester", Action: "test.event", Outcome: "success",
			Target: "n" + itoa64(int64(i)), Detail: map[bool]string{true: "<b>bold</b>", false: "plain"}[i%2 == 0]})
	}
	r := admin.get("/admin/audit")
	mustStatus(t, r, http.StatusOK)
	if n := strings.Count(r.body, "<tr class="); n != auditPage {
		t.Fatalf("%d rows on the first page", n)
	}
	mustContain(t, r, "&lt;b&gt;bold&lt;/b&gt;", "Older entries")
	older := regexp.MustCompile(`href="(/admin/audit\?before=\d+)"`).FindStringSubmatch(r.body)
	r = admin.get(older[1])
	mustContain(t, r, "Newest", "n60")
	r = admin.get("/admin/audit?q=n119")
	if n := strings.Count(r.body, "<tr class="); n != 1 {
		t.Fatalf("search: %d rows", n)
	}
	mustContain(t, admin.get("/admin/audit?q=nothing-like-this"), "No entries match")
	mustContain(t, admin.get("/admin/audit?verify=1"), "The chain is intact")
	mustStatus(t, admin.get("/admin/audit?before=x"), http.StatusBadRequest)
}

func TestStaticAndNotFound(t *testing.T) {
	h := newHarness(t)
	cl := h.client()
	js, _ := h.c.assets.url("console.js")
	r := cl.get(js)
	mustStatus(t, r, http.StatusOK)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") || !strings.Contains(r.body, "EventSource") {
		t.Fatalf("js: %s", r.header.Get("Content-Type"))
	}
	if r := cl.get("/admin"); r.status != http.StatusMovedPermanently || r.loc != "/admin/" {
		t.Fatalf("/admin: %d %q", r.status, r.loc)
	}
	r = cl.get("/admin/does/not/exist")
	mustStatus(t, r, http.StatusNotFound)
	mustContain(t, r, "There is no page /admin/does/not/exist")
	req, _ := http.NewRequest(http.MethodDelete, h.srv.URL+"/admin/login", nil)
	mustStatus(t, cl.do(req), http.StatusNotFound)
	if _, err := h.c.assets.url("missing.css"); err == nil {
		t.Fatal("unknown asset")
	}
}

func TestNewRefusesMissingParts(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without operations and store")
	}
	c, err := New(Options{Ops: newFakeOps(), Store: newMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.SessionIdle != defaultIdle || c.opts.SessionMax != defaultMax || c.opts.InviteTTL != defaultInvite {
		t.Fatalf("defaults %+v", c.opts)
	}
	if Public.String() != "public" || roleMissing.String() != "missing" || roleOf("root") != roleMissing {
		t.Fatal("roles")
	}
}

// A failure to write the audit log is logged, never silent, and never blocks the page.
func TestAuditFailureIsLogged(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", "admin", "password-of-ada")
	h.store.mu.Lock()
	h.store.failAudit = errors.New("disk full")
	h.store.mu.Unlock()
	cl := h.client()
	cl.login("ada", "password-of-ada")
	mustStatus(t, cl.get("/admin/"), http.StatusOK)
}

func TestExpiredSessionsAreSwept(t *testing.T) {
	h := newHarness(t)
	h.loggedIn("ada", "admin")
	h.clock.Add(time.Hour)
	h.c.sweepSessions(context.Background())
	if n := len(h.store.sessions); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}
