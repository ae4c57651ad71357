package console

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestLogin(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", "admin", "password-of-ada")
	cl := h.client()
	r := cl.get("/admin/services")
	if r.status != http.StatusSeeOther || r.loc != "/admin/login?next=%2Fadmin%2Fservices" {
		t.Fatalf("anonymous: %d %q", r.status, r.loc)
	}
	cl.get(r.loc)
	cases := []struct {
		name, user, pw string
		status         int
		msg            string
	}{
		{"empty", "", "", http.StatusUnprocessableEntity, "Enter your user name and password."},
		{"unknown user", "nobody", "password-of-ada", http.StatusUnauthorized, "Wrong user name or password."},
		{"wrong password", "ada", "nope", http.StatusUnauthorized, "Wrong user name or password."},
		{"huge password", "ada", strings.Repeat("x", 2000), http.StatusUnauthorized, "Wrong user name or password."},
	}
	for _, c := range cases {
		r := cl.post("/admin/login", url.Values{"name": {c.user}, "password": {c.pw}, "next": {"/admin/services"}})
		if r.status != c.status || !strings.Contains(r.body, c.msg) {
			t.Errorf("%s: %d, want %d with %q", c.name, r.status, c.status, c.msg)
		}
		if c.user != "" && !strings.Contains(r.body, `value="`+c.user+`"`) {
			t.Errorf("%s: the form lost the user name", c.name)
		}
	}
	r = cl.post("/admin/login", url.Values{"name": {"ADA"}, "password": {"password-of-ada"}, "next": {"/admin/services"}})
	if r.status != http.StatusSeeOther || r.loc != "/admin/services" {
		t.Fatalf("login: %d %q", r.status, r.loc)
	}
	mustStatus(t, cl.get("/admin/services"), http.StatusOK)
	// A logged-in user on the login page goes on; next never leaves the console.
	if r := cl.get("/admin/login?next=//evil.example/x"); r.loc != "/admin/" {
		t.Fatalf("open redirect: %q", r.loc)
	}
	got := map[string]int{}
	for _, e := range h.store.entries("login") {
		got[e.Outcome]++
	}
	if got["failure"] != 3 || got["success"] != 1 {
		t.Fatalf("audited logins: %v", got)
	}
	r = cl.post("/admin/logout", nil)
	if r.status != http.StatusSeeOther || r.loc != "/admin/login?bye=1" {
		t.Fatalf("logout: %d %q", r.status, r.loc)
	}
	mustContain(t, cl.get(r.loc), "You are logged out.")
	mustStatus(t, cl.get("/admin/services"), http.StatusSeeOther)
	if e := h.store.entries("logout"); len(e) != 1 || e[0].Actor != "ada" {
		t.Fatalf("logout audit: %+v", e)
	}
}

func TestDeactivatedUserCannotLogIn(t *testing.T) {
	h := newHarness(t)
	admin := h.loggedIn("ada", "admin")
	bob := h.loggedIn("bob", "operator")
	u, _ := h.store.UserByName(context.Background(), "bob")
	admin.get("/admin/users")
	mustStatus(t, admin.post("/admin/users/"+itoa64(u.ID)+"/active", url.Values{"active": {"0"}}), http.StatusSeeOther)
	if r := bob.get("/admin/services"); r.status != http.StatusSeeOther {
		t.Fatalf("deactivated user's session still works: %d", r.status)
	}
	cl := h.client()
	cl.get("/admin/login")
	r := cl.post("/admin/login", url.Values{"name": {"bob"}, "password": {"password-of-bob"}})
	mustStatus(t, r, http.StatusForbidden)
	mustContain(t, r, "deactivated")
	mustStatus(t, admin.post("/admin/users/"+itoa64(u.ID)+"/active", url.Values{"active": {"1"}}), http.StatusSeeOther)
	cl.login("bob", "password-of-bob")
}

// The first admin's generated password works once: the first login forces a change,
// every page until then leads there, and the file with it goes away afterwards.
func TestFirstAdminForcedChange(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessWith(t, func(o *Options) { o.FirstPasswordFile = filepath.Join(dir, FirstPasswordFileName) })
	fa, err := EnsureFirstAdmin(context.Background(), h.store, dir, &cheap)
	if err != nil || !fa.Created || fa.Name != "admin" || len(fa.Password) != 24 {
		t.Fatalf("first admin: %+v %v", fa, err)
	}
	st, err := os.Stat(fa.File)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", st, err)
	}
	if again, err := EnsureFirstAdmin(context.Background(), h.store, dir, &cheap); err != nil || again.Created || again.Password != fa.Password {
		t.Fatalf("second start: %+v %v", again, err)
	}
	cl := h.client()
	r := cl.login("admin", fa.Password)
	if r.loc != "/admin/account/password" {
		t.Fatalf("first login goes to %q", r.loc)
	}
	for _, p := range []string{"/admin/", "/admin/users", "/admin/services/api"} {
		if r := cl.get(p); r.status != http.StatusSeeOther || r.loc != "/admin/account/password" {
			t.Fatalf("%s before the change: %d %q", p, r.status, r.loc)
		}
	}
	page := cl.get("/admin/account/password")
	mustContain(t, page, "Choose your own password")
	if strings.Contains(page.body, `href="/admin/users"`) {
		t.Fatal("navigation shown before the change")
	}
	mustStatus(t, cl.post("/admin/users/invites", url.Values{"email": {"x@example.com"}, "role": {"viewer"}}), http.StatusForbidden)
	other := h.client()
	other.login("admin", fa.Password) // a second session, which the change ends
	bad := []struct {
		current, new, confirm, msg string
	}{
		{"wrong", "a-long-new-password", "a-long-new-password", "The current password is wrong."},
		{fa.Password, "short", "short", "at least 12 characters"},
		{fa.Password, "a-long-new-password", "a-long-new-passwor", "The two new passwords differ."},
		{fa.Password, fa.Password, fa.Password, "The new password is the old one"},
	}
	for _, b := range bad {
		r := cl.post("/admin/account/password", url.Values{"current": {b.current}, "new": {b.new}, "confirm": {b.confirm}})
		mustStatus(t, r, http.StatusUnprocessableEntity)
		mustContain(t, r, b.msg)
	}
	old := cl.cookie(sessionCookiePlain).Value
	r = cl.post("/admin/account/password", url.Values{"current": {fa.Password}, "new": {"correct horse battery"}, "confirm": {"correct horse battery"}})
	if r.status != http.StatusSeeOther || r.loc != "/admin/account?done=password" {
		t.Fatalf("change: %d %q %s", r.status, r.loc, r.body)
	}
	mustContain(t, cl.get(r.loc), "Your password is changed")
	if cl.cookie(sessionCookiePlain).Value == old {
		t.Fatal("session id not rotated at the password change")
	}
	if r := other.get("/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("other session survived the change: %d", r.status)
	}
	if _, err := os.Stat(fa.File); !os.IsNotExist(err) {
		t.Fatalf("generated password file still there: %v", err)
	}
	mustStatus(t, cl.get("/admin/users"), http.StatusOK)
	if later, err := EnsureFirstAdmin(context.Background(), h.store, dir, &cheap); err != nil || later.Password != "" || later.File != "" {
		t.Fatalf("after the change: %+v %v", later, err)
	}
	// Root's way back in.
	pw, err := ResetPassword(context.Background(), h.store, "admin", "root@host (CLI)", &cheap)
	if err != nil {
		t.Fatal(err)
	}
	if r := cl.get("/admin/"); r.status != http.StatusSeeOther {
		t.Fatal("reset did not end the sessions")
	}
	if r := cl.login("admin", pw); r.loc != "/admin/account/password" {
		t.Fatalf("after reset: %q", r.loc)
	}
	if _, err := ResetPassword(context.Background(), h.store, "nobody", "root", &cheap); err == nil || !strings.Contains(err.Error(), `no console user "nobody"`) {
		t.Fatalf("reset of an unknown user: %v", err)
	}
	if e := h.store.entries("user.reset_password"); len(e) != 1 || e[0].Actor != "root@host (CLI)" {
		t.Fatalf("reset audit: %+v", e)
	}
}

var secretRE = regexp.MustCompile(`id="totp-secret" class="secret" data-secret="([A-Z2-7]+)"`)

// TOTP: set up with a code from the key, recovery codes shown once; the next login
// needs a code (each accepted once) or a recovery code (each once); turning it off
// needs the password and a code.
func TestTOTP(t *testing.T) {
	h := newHarness(t)
	cl := h.loggedIn("ada", "operator")
	page := cl.get("/admin/account/totp")
	mustStatus(t, page, http.StatusOK)
	mustContain(t, page, `src="data:image/png;base64,`)
	m := secretRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no secret shown:\n%s", page.body)
	}
	secret := m[1]
	if again := secretRE.FindStringSubmatch(cl.get("/admin/account/totp").body); again[1] != secret {
		t.Fatal("a reload made a new key")
	}
	r := cl.post("/admin/account/totp", url.Values{"code": {"000000"}})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	code, _ := totp.GenerateCodeCustom(secret, h.clock.Now(), totpOpts)
	r = cl.post("/admin/account/totp", url.Values{"code": {code}})
	mustStatus(t, r, http.StatusOK)
	codes := regexp.MustCompile(`<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>`).FindAllStringSubmatch(r.body, -1)
	if len(codes) != recoveryCodes {
		t.Fatalf("%d recovery codes shown:\n%s", len(codes), r.body)
	}
	mustContain(t, cl.get("/admin/account"), "10 recovery codes left")
	cl.post("/admin/logout", nil)

	// The password alone is not enough; the pending session shows no navigation.
	r = cl.login("ada", "password-of-ada")
	if !strings.HasPrefix(r.loc, "/admin/login/totp") {
		t.Fatalf("with TOTP on, login goes to %q", r.loc)
	}
	if r := cl.get("/admin/"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/admin/login") {
		t.Fatalf("pending session reached the overview: %d %q", r.status, r.loc)
	}
	form := cl.get("/admin/login/totp")
	mustContain(t, form, "authenticator app for <strong>ada</strong>")
	if strings.Contains(form.body, "Log out") {
		t.Fatal("pending page shows the user bar")
	}
	pending := cl.cookie(sessionCookiePlain).Value
	mustStatus(t, cl.post("/admin/login/totp", url.Values{"code": {"123456"}}), http.StatusUnauthorized)
	h.clock.Add(30 * time.Second)
	code, _ = totp.GenerateCodeCustom(secret, h.clock.Now(), totpOpts)
	r = cl.post("/admin/login/totp", url.Values{"code": {code}})
	if r.status != http.StatusSeeOther || r.loc != "/admin/" {
		t.Fatalf("TOTP login: %d %q", r.status, r.loc)
	}
	if cl.cookie(sessionCookiePlain).Value == pending {
		t.Fatal("session id not rotated after the second factor")
	}
	mustStatus(t, cl.get("/admin/"), http.StatusOK)
	cl.post("/admin/logout", nil)

	// The same code again is a replay.
	cl.login("ada", "password-of-ada")
	cl.get("/admin/login/totp")
	r = cl.post("/admin/login/totp", url.Values{"code": {code}})
	mustStatus(t, r, http.StatusUnauthorized)
	mustContain(t, r, "was used already")
	// A recovery code works once.
	r = cl.post("/admin/login/totp", url.Values{"code": {strings.ToUpper(codes[0][1])}})
	mustStatus(t, r, http.StatusSeeOther)
	cl.post("/admin/logout", nil)
	cl.login("ada", "password-of-ada")
	cl.get("/admin/login/totp")
	mustStatus(t, cl.post("/admin/login/totp", url.Values{"code": {codes[0][1]}}), http.StatusUnauthorized)
	mustStatus(t, cl.post("/admin/login/totp", url.Values{"code": {codes[1][1]}}), http.StatusSeeOther)
	mustContain(t, cl.get("/admin/account"), "8 recovery codes left")

	// Off: password and code needed.
	cl.get("/admin/account")
	r = cl.post("/admin/account/totp/disable", url.Values{"password": {"password-of-ada"}, "code": {"000000"}})
	mustStatus(t, r, http.StatusUnprocessableEntity)
	h.clock.Add(30 * time.Second)
	code, _ = totp.GenerateCodeCustom(secret, h.clock.Now(), totpOpts)
	cl.get("/admin/account")
	r = cl.post("/admin/account/totp/disable", url.Values{"password": {"password-of-ada"}, "code": {code}})
	if r.status != http.StatusSeeOther || r.loc != "/admin/account?done=totp-off" {
		t.Fatalf("disable: %d %q %s", r.status, r.loc, r.body)
	}
	cl.post("/admin/logout", nil)
	if r := cl.login("ada", "password-of-ada"); r.loc != "/admin/" {
		t.Fatalf("after TOTP off: %q", r.loc)
	}
	outcomes := map[string]int{}
	for _, e := range h.store.entries("") {
		outcomes[e.Action+" "+e.Outcome]++
	}
	for _, want := range []string{"account.totp_enable success", "account.totp_enable failure", "login.totp failure", "account.totp_disable success"} {
		if outcomes[want] == 0 {
			t.Errorf("no audit entry %q: %v", want, outcomes)
		}
	}
}

// The pending stage of a TOTP login times out.
func TestTOTPPendingExpires(t *testing.T) {
	h := newHarness(t)
	u := h.addUser("ada", "viewer", "password-of-ada")
	u.TOTPSecret = "JBSWY3DPEHPK3PXP"
	_ = h.store.UpdateUser(context.Background(), u)
	cl := h.client()
	cl.login("ada", "password-of-ada")
	h.clock.Add(pendingTTL + time.Second)
	r := cl.get("/admin/login/totp")
	if r.status != http.StatusSeeOther || !strings.Contains(r.loc, "expired=1") {
		t.Fatalf("expired pending: %d %q", r.status, r.loc)
	}
}

func TestSessionsAndLogoutEverywhere(t *testing.T) {
	h := newHarness(t)
	a := h.loggedIn("ada", "viewer")
	b := h.client()
	b.login("ada", "password-of-ada")
	c := h.client()
	c.login("ada", "password-of-ada")
	page := a.get("/admin/account")
	mustContain(t, page, "this session")
	handles := regexp.MustCompile(`/admin/account/sessions/([0-9a-f]{16})/revoke`).FindAllStringSubmatch(page.body, -1)
	if len(handles) != 2 {
		t.Fatalf("%d other sessions listed", len(handles))
	}
	r := a.post("/admin/account/sessions/"+handles[0][1]+"/revoke", nil)
	if r.status != http.StatusSeeOther || r.loc != "/admin/account?done=session" {
		t.Fatalf("revoke: %d %q", r.status, r.loc)
	}
	mustStatus(t, a.post("/admin/account/sessions/"+handles[0][1]+"/revoke", nil), http.StatusNotFound)
	alive := 0
	for _, cl := range []*client{b, c} {
		if cl.get("/admin/").status == http.StatusOK {
			alive++
		}
	}
	if alive != 1 {
		t.Fatalf("%d of the two other sessions alive after revoking one", alive)
	}
	a.get("/admin/account")
	r = a.post("/admin/account/sessions/revoke-all", nil)
	if r.status != http.StatusSeeOther || r.loc != "/admin/login?bye=1" {
		t.Fatalf("logout everywhere: %d %q", r.status, r.loc)
	}
	for _, cl := range []*client{a, b, c} {
		if cl.get("/admin/").status != http.StatusSeeOther {
			t.Fatal("a session survived logging out everywhere")
		}
	}
}

func TestRelTimeAndFormatting(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{0: "just now", 30 * time.Second: "30 s ago", 5 * time.Minute: "5 min ago",
		3 * time.Hour: "3 h ago", 72 * time.Hour: "3 days ago", -10 * time.Minute: "in 10 min"} {
		if got := relTime(now.Add(-d), now); got != want {
			t.Errorf("relTime(-%s) = %q, want %q", d, got, want)
		}
	}
	if relTime(time.Time{}, now) != "never" || absTime(time.Time{}) != "–" || uptime(time.Time{}, now) != "–" {
		t.Error("zero times")
	}
	for d, want := range map[time.Duration]string{30 * time.Second: "30s", 90 * time.Second: "1m 30s", 150 * time.Minute: "2h 30m", 50 * time.Hour: "2d 2h"} {
		if got := uptime(now.Add(-d), now); got != want {
			t.Errorf("uptime(%s) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{512: "512 B", 2048: "2.0 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if truncate("héllo", 2) != "h…" || truncate("abc", 5) != "abc" {
		t.Errorf("truncate: %q", truncate("héllo", 2))
	}
}

func TestPasswordRules(t *testing.T) {
	if a, b := GeneratePassword(), GeneratePassword(); a == b || !regexp.MustCompile(`^([a-z2-9]{4}-){4}[a-z2-9]{4}$`).MatchString(GeneratePassword()) {
		t.Fatal("generated passwords")
	}
	for name, ok := range map[string]bool{"ada": true, "a.b_c-d@x": true, "a": false, "<script>": false, "with space": false, strings.Repeat("x", 65): false} {
		if validUserName(name) != ok {
			t.Errorf("validUserName(%q) != %t", name, ok)
		}
	}
	for e, ok := range map[string]bool{"a@b.c": true, "a@b": false, "@b.c": false, "a b@c.d": false, `"><x@y.z`: false} {
		if validEmail(e) != ok {
			t.Errorf("validEmail(%q) != %t", e, ok)
		}
	}
	if err := validatePassword("ada-ada-ada-ada", "ada-ada-ada-ada", "ADA-ADA-ADA-ADA"); err == nil {
		t.Error("password equal to the name accepted")
	}
	if err := validatePassword(strings.Repeat("x", 1100), strings.Repeat("x", 1100), "a"); err == nil {
		t.Error("over-long password accepted")
	}
}
