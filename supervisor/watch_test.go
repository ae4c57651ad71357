package supervisor

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// WatchStatus hears of a change of the stack (a container killed and replaced) at once,
// and not of observations that changed nothing (status calls refresh the snapshot too).
func TestWatchStatus(t *testing.T) {
	admin := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("console")) })
	td := newTestDaemon(t, nil, t.TempDir(), func(o *Options) { o.Admin = admin })
	c := td.run(t)
	waitStatus(t, c, "healthy", healthyWith(2))
	changes, stop := td.d.WatchStatus()
	drain := func() {
		for {
			select {
			case <-changes:
			default:
				return
			}
		}
	}
	drain()
	// Quiet: status calls alone are not news.
	for range 3 {
		if _, err := td.d.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changes:
		t.Fatal("a status call without a change notified the watchers")
	default:
	}
	td.eng.Kill("cit-redis")
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("a killed container was not news")
	}
	stop()
	// The console is served under /admin by the edge.
	rec := httptest.NewRecorder()
	td.d.Edge().Handler("loopback").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/", nil))
	if rec.Body.String() != "console" {
		t.Fatalf("edge /admin: %d %q", rec.Code, rec.Body.String())
	}
}
