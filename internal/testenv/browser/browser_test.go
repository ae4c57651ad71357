package browser

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
