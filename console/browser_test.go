package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/corpintel/corpintel/internal/testenv/browser"
)

// The console in a real Chromium, over the fake supervisor: logging in by keyboard
// alone, the script's live updates and log follow, escaped hostile text (no dialog ever
// opens), no CSP violation or script error on any page, and every page laid out at
// 1280 and 390 px. (cmd/corpintel's end-to-end test does the same against the real
// stack.)
func TestConsoleInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	h := newHarnessWith(t, func(o *Options) { o.Now = time.Now })
	now := time.Now()
	for i := range h.ops.status.Services {
		h.ops.status.Services[i].StartedAt = now.Add(-3 * time.Hour)
	}
	h.ops.status.LastReconcile = now.Add(-4 * time.Second)
	h.addUser("ada", "admin", "password-of-ada")
	u, _ := h.store.UserByName(context.Background(), "ada")
	u.FullName = `Ada <img src=x onerror=alert("xss-name")>`
	_ = h.store.UpdateUser(context.Background(), u)
	h.ops.mu.Lock()
	h.ops.logs = "2026-03-01T12:00:00Z GET /health 200\n<script>alert('xss-log')</script>\n" + strings.Repeat("Z", 3*maxLine) + "\n"
	h.ops.follow = make(chan string, 10)
	h.ops.mu.Unlock()

	shots := os.Getenv("CONSOLE_SCREENSHOTS") // a folder to keep them in (default: the test's temp dir)
	if shots == "" {
		shots = t.TempDir()
	}
	b := browser.New(t, browser.Options{Width: 1280, Height: 900, Timeout: 3 * time.Minute})
	base := h.srv.URL

	// Keyboard only: the login form has focus, Tab moves on, Enter submits.
	b.Do("open the console", chromedp.Navigate(base+"/admin/"))
	b.WaitFor("login page", `document.activeElement && document.activeElement.id === "name"`, 10*time.Second)
	b.Do("type", chromedp.KeyEvent("ada"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("password-of-ada"), chromedp.KeyEvent(kb.Enter))
	b.WaitFor("overview after login", `document.title.startsWith("Overview")`, 10*time.Second)
	// The skip link is the first stop of the keyboard.
	b.Do("tab", chromedp.KeyEvent(kb.Tab))
	if got := browser.Eval[string](b, `document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("first Tab stop %q", got)
	}

	// A change on the supervisor's side shows without a reload.
	b.WaitFor("live stream open", `document.body.getAttribute("data-live-at") !== null`, 10*time.Second)
	h.ops.setService("redis", func(s *Service) { s.Healthy, s.Running, s.State = 0, 0, "restarting" })
	b.WaitFor("redis down, live", `document.querySelector("#attention").classList.contains("bad") && document.querySelector("#service-cards .card.bad") !== null`, 10*time.Second)
	h.ops.setService("redis", func(s *Service) { s.Healthy, s.Running, s.State = 1, 1, "running" })
	b.WaitFor("redis back, live", `document.querySelector("#attention").classList.contains("ok")`, 10*time.Second)

	// Logs: hostile lines are text, the huge one is cut, following appends.
	b.Do("logs", chromedp.Navigate(base+"/admin/services/api/logs"))
	b.WaitFor("following", `document.getElementById("follow").getAttribute("aria-pressed") === "true"`, 10*time.Second)
	h.ops.follow <- "<img src=y onerror=alert('xss-follow')> followed line\n"
	b.WaitFor("followed line", `document.getElementById("log").textContent.includes("followed line")`, 10*time.Second)
	if got := browser.Eval[string](b, `document.getElementById("log").textContent`); !strings.Contains(got, "<script>alert('xss-log')</script>") || !strings.Contains(got, "8192 more bytes") {
		t.Errorf("log text: %.300q", got)
	}
	if n := browser.Eval[int](b, `document.querySelectorAll("#log img, #log script").length`); n != 0 {
		t.Errorf("%d elements injected through log lines", n)
	}

	pages := []struct{ name, path string }{
		{"overview", "/admin/"}, {"services", "/admin/services"}, {"service-api", "/admin/services/api"},
		{"logs-api", "/admin/services/api/logs"}, {"restart-redis", "/admin/services/redis/restart"},
		{"scale-api", "/admin/services/api/scale?replicas=2"}, {"users", "/admin/users"}, {"audit", "/admin/audit"},
		{"account", "/admin/account"}, {"totp-setup", "/admin/account/totp"},
	}
	for _, width := range []int{1280, 390} {
		b.Resize(width, 900)
		for _, p := range pages {
			b.Do(p.name, chromedp.Navigate(base+p.path))
			b.WaitFor(p.name+" loaded", `document.readyState === "complete"`, 10*time.Second)
			if over := browser.Eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
				t.Errorf("%s at %d px is %d px wider than the window", p.name, width, over)
			}
			b.Screenshot(filepath.Join(shots, p.name+"-"+itoa64(int64(width))+".png"))
		}
	}
	b.Do("logout", chromedp.Navigate(base+"/admin/account"), chromedp.Click(chromedp.CSS(".logout button")))
	b.WaitFor("logged out", `document.title.startsWith("Log in") && document.body.innerText.includes("You are logged out.")`, 10*time.Second)
	b.Screenshot(filepath.Join(shots, "login-390.png"))

	if d := b.Dialogs(); len(d) > 0 {
		t.Errorf("dialogs opened (escaping failed): %v", d)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("console problems (CSP violations, script errors):\n%s", strings.Join(p, "\n"))
	}
}
