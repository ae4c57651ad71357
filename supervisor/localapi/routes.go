package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// Route is one entry of the local API: method and path, and the handler that turns
// the request into one Operations call.
type Route struct {
	Method, Path string
	// Summary says what the route does (for `corpintel help` and the docs).
	Summary string
	Handle  func(ops Operations, w http.ResponseWriter, r *http.Request) error
}

// Routes is the whole local API; nothing is served outside this table.
var Routes = []Route{
	{http.MethodGet, "/v1/status", "the stack's status", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		rep, err := ops.Status(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rep)
		return nil
	}},
	{http.MethodPost, "/v1/scale", "set the replicas of a service", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		var req scaleRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return done(w, ops.Scale(r.Context(), req.Service, req.Replicas))
	}},
	{http.MethodPost, "/v1/restart", "recreate a service's containers", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		var req serviceRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return done(w, ops.Restart(r.Context(), req.Service))
	}},
	{http.MethodPost, "/v1/stop", "stop the stack, keep the data", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		return done(w, ops.Stop(r.Context()))
	}},
	{http.MethodPost, "/v1/start", "bring a stopped stack up", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		return done(w, ops.Start(r.Context()))
	}},
	{http.MethodPost, "/v1/create-admin", "create an API admin user", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		var req createAdminRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return done(w, ops.CreateAdmin(r.Context(), req.Email, []byte(req.Password)))
	}},
	{http.MethodGet, "/v1/logs", "a service's logs (follow=1 streams)", serveLogs},
	{http.MethodPost, "/v1/tls/check", "certificate preflight for the configured names", func(ops Operations, w http.ResponseWriter, r *http.Request) error {
		fs, err := ops.TLSCheck(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, fs)
		return nil
	}},
	{http.MethodGet, "/v1/alerts", "active and recent alerts, silences and channels", serveAlerts},
	{http.MethodPost, "/v1/alerts/silences", "silence alerts for a while", serveSilence},
	{http.MethodPost, "/v1/alerts/unsilence", "end a silence now", serveUnsilence},
	{http.MethodPost, "/v1/alerts/test", "send a test notification through a channel", serveTestChannel},
	{http.MethodGet, "/v1/alerts/rules", "the alert rules as a Prometheus rule file", servePrometheusRules},
}

func serveLogs(ops Operations, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := LogOptions{Follow: q.Get("follow") == "1", Tail: -1}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return RequestErrorf("tail must be a number, got %q", t)
		}
		opts.Tail = n
	}
	fw := &firstWriteHeader{w: w}
	err := ops.Logs(r.Context(), q.Get("service"), opts, fw)
	if err != nil && !fw.started {
		return err
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return &streamError{err}
	}
	return nil
}

// streamError is a failure after the response started: it can only be logged.
type streamError struct{ error }

// NewHandler serves ops over HTTP (on the unix socket), exactly the routes of Routes.
func NewHandler(ops Operations, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) {
			if err := rt.Handle(ops, w, r); err != nil {
				var se *streamError
				if errors.As(err, &se) {
					log.Warn("local API: stream ended", "path", rt.Path, "err", se.error)
					return
				}
				writeError(w, log, err)
			}
		})
	}
	return mux
}

// maxRequest bounds a request body.
const maxRequest = 1 << 16

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return RequestErrorf("bad request to %s: %v", r.URL.Path, err)
	}
	return nil
}

func done(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// firstWriteHeader commits a 200 text response on the first write and flushes every
// write, so that `logs -f` shows lines as they come and errors before the first line
// can still be reported with a status code.
type firstWriteHeader struct {
	w       http.ResponseWriter
	started bool
}

func (f *firstWriteHeader) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: re.Msg})
		return
	}
	log.Error("local API: operation failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: fmt.Sprint(err)})
}
