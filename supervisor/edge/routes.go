package edge

import (
	"net/http"
	"strings"
)

// Local paths the supervisor answers itself instead of forwarding to a replica.
const (
	PathMetrics = "/metrics"
)

// Loopback is the handler of the loopback listener (DESIGN.md "Port 8000"): the API
// routes go to the replicas; /metrics is the supervisor's own exposition (edge,
// reconcile, and what it scrapes), never a random replica's.
func Loopback(api http.Handler, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathMetrics || strings.HasPrefix(r.URL.Path, PathMetrics+"/") {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			metrics.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
