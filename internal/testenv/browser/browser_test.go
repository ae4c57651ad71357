package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser reports what a page complains about and every dialog, and saves
// screenshots — the page here does all of it on purpose.
func TestBrowserReportsProblemsAndDialogs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write([]byte(`console.error("boom"); document.getElementById("x").textContent = "ready"; alert("hello");`))
		default:
			w.Header().Set("Content-Security-Policy", "script-src 'self'")
			_, _ = w.Write([]byte(`<!doctype html><title>t</title><p id="x">wait</p><script>window.inline = 1</script><script src="/app.js"></script>`))
		}
	}))
	defer srv.Close()
	b := New(t, Options{Width: 390, Height: 700, Timeout: time.Minute})
	b.Do("open", chromedp.Navigate(srv.URL))
	b.WaitFor("script ran", `document.getElementById("x").textContent === "ready"`, 10*time.Second)
	if got := b.Text("#x"); got != "ready" {
		t.Fatalf("text %q", got)
	}
	if w := Eval[int](b, `window.innerWidth`); w != 390 {
		t.Fatalf("width %d", w)
	}
	b.WaitFor("dialog seen", `true`, time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (len(b.Dialogs()) == 0 || len(b.Problems()) < 2) {
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if d := b.Dialogs(); len(d) != 1 || d[0] != "alert: hello" {
		t.Fatalf("dialogs %v", d)
	}
	all := strings.Join(b.Problems(), "\n")
	if !strings.Contains(all, "boom") || !strings.Contains(all, "Content Security Policy") {
		t.Fatalf("problems:\n%s", all)
	}
	b.Resize(1280, 800)
	shot := filepath.Join(t.TempDir(), "shots", "page.png")
	b.Screenshot(shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 100 {
		t.Fatalf("screenshot %v %v", st, err)
	}
}

// fatalTB records a Fatalf and ends the goroutine as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalTB) Helper() {}

// failsWith runs fn with b reporting to a recording TB and returns what it failed with.
func failsWith(b *Browser, fn func()) string {
	rec := &fatalTB{TB: b.t}
	saved := b.t
	b.t = rec
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	b.t = saved
	return rec.msg
}

// Every helper fails the test with what it was doing, never silently.
func TestBrowserFailuresSayWhat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<!doctype html><title>t</title><p id="x">x</p>`))
	}))
	defer srv.Close()
	b := New(t, Options{Timeout: time.Minute})
	b.Open(srv.URL)
	b.Ignore("nothing")
	for what, fn := range map[string]func(){
		"not within":    func() { b.WaitFor("never", `false`, 200*time.Millisecond) },
		"text of #nope": func() { b.Text("#nope:not(*)") },
		"eval":          func() { Eval[int](b, `(`) },
		"open":          func() { b.Open("http://127.0.0.1:1/") },
		"do":            func() { b.Do("navigate nowhere", chromedp.Navigate("not a url at all")) },
		"screenshot":    func() { b.Screenshot("/proc/no/such/dir/x.png") },
	} {
		ctx, cancel := context.WithTimeout(b.Ctx, time.Second)
		orig := b.Ctx
		if what == "text of #nope" {
			b.Ctx = ctx
		}
		msg := failsWith(b, fn)
		b.Ctx = orig
		cancel()
		if msg == "" {
			t.Errorf("%s: no failure", what)
		}
	}
}
