package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static/*
var staticFiles embed.FS

// assets are the embedded static files under names that carry their content's
// checksum (console.3f2a1b0c9d8e.css): a changed file gets a new URL, so every asset
// can be cached forever.
type assets struct {
	byName map[string]string // console.css → /admin/static/console.<sum>.css
	files  map[string]asset  // console.<sum>.css → content
}

type asset struct {
	body        []byte
	contentType string
}

func loadAssets() (*assets, error) {
	as := &assets{byName: map[string]string{}, files: map[string]asset{}}
	entries, err := fs.ReadDir(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		b, err := staticFiles.ReadFile("static/" + e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		as.byName[e.Name()] = "/admin/static/" + hashed
		as.files[hashed] = asset{body: b, contentType: mime.TypeByExtension(ext)}
	}
	return as, nil
}

func (as *assets) url(name string) (string, error) {
	u, ok := as.byName[name]
	if !ok {
		return "", fmt.Errorf("console: no static asset %q", name)
	}
	return u, nil
}

// templates holds one template set per page (the layout, the shared fragments and the
// page), and the fragments alone for live updates.
type templates struct {
	pages     map[string]*template.Template
	fragments *template.Template
}

const layoutFile, fragmentsFile = "layout.html", "fragments.html"

func parseTemplates(as *assets, now func() time.Time) (*templates, error) {
	funcs := templateFuncs(as, now)
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFiles, "templates/"+layoutFile, "templates/"+fragmentsFile)
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	entries, err := fs.ReadDir(templateFiles, "templates")
	if err != nil {
		return nil, err
	}
	ts := &templates{pages: map[string]*template.Template{}, fragments: base}
	for _, e := range entries {
		if e.Name() == layoutFile || e.Name() == fragmentsFile {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFiles, "templates/"+e.Name()); err != nil {
			return nil, fmt.Errorf("console: template %s: %w", e.Name(), err)
		}
		ts.pages[strings.TrimSuffix(e.Name(), ".html")] = t
	}
	return ts, nil
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Project string
	User    *User
	CSRF    string
	Flash   string
	Error   string
	// Live is the URL of the page's live updates ("" none); Refresh the noscript
	// reload interval in seconds of pages that change on their own (0 none).
	Live    string
	Refresh int
	Now     time.Time
	Data    any
}

// render executes a page into a buffer (a template error never sends half a page) and
// writes it with the Server-Timing of the request.
func (c *Console) render(w http.ResponseWriter, r *http.Request, rq *request, status int, page string, v view) error {
	t, ok := c.tmpl.pages[page]
	if !ok {
		return fmt.Errorf("console: no page template %q", page)
	}
	v.Project, v.Now = c.opts.Project, c.now()
	if rq != nil {
		if v.User == nil && rq.session != nil && rq.session.Stage == stageFull {
			v.User = rq.user // a half-logged-in user sees no navigation
		}
		if v.CSRF == "" && rq.route != nil {
			v.CSRF = c.csrfToken(w, r, rq)
		}
	}
	renderStart := time.Now()
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("console: render %s: %w", page, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if rq != nil {
		timing := fmt.Sprintf("render;dur=%.2f, total;dur=%.2f", ms(time.Since(renderStart)), ms(time.Since(rq.start)))
		if rq.statusDur > 0 {
			how := "cached"
			if rq.statusFresh {
				how = "fresh"
			}
			timing = fmt.Sprintf("status;dur=%.2f;desc=%q, ", ms(rq.statusDur), how) + timing
		}
		h.Set("Server-Timing", timing)
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fragment renders one shared fragment (live updates).
func (c *Console) fragment(name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := c.tmpl.fragments.ExecuteTemplate(&buf, name, data); err != nil {
		return "", fmt.Errorf("console: fragment %s: %w", name, err)
	}
	return buf.String(), nil
}

// renderError shows an error page; unexpected errors are logged and shown without
// their details (which may name internals).
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		c.log.Error("console: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{status: http.StatusInternalServerError, msg: "Something went wrong on the server; the supervisor's log says what (journalctl -u corpintel)."}
	}
	if isEventStream(r) {
		http.Error(w, he.msg, he.status)
		return
	}
	v := view{Title: http.StatusText(he.status), Data: he.msg}
	if rerr := c.render(w, r, rq, he.status, "error", v); rerr != nil {
		c.log.Error("console: render error page", "err", rerr)
		http.Error(w, he.msg, he.status)
	}
}

func templateFuncs(as *assets, now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"asset":    as.url,
		"rel":      func(t time.Time) string { return relTime(t, now()) },
		"abs":      absTime,
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"uptime":   func(t time.Time) string { return uptime(t, now()) },
		"bytes":    humanBytes,
		"pct":      func(f float64) string { return fmt.Sprintf("%.1f %%", f) },
		"level":    serviceLevel,
		"levelOf":  levelWord,
		"stateful": stack.Stateful,
		"scalable": stack.Scalable,
		"atLeast":  func(u *User, role string) bool { return u != nil && roleOf(u.Role) >= roleOf(role) },
		"roles":    func() []string { return userRoles },
		"add":      func(a, b int) int { return a + b },
		"short":    func(s string, n int) string { return truncate(s, n) },
		"shortID":  func(s string) string { return s[:min(12, len(s))] },
		"maxScale": func() int { return stack.MaxScale },
		"groups":   groupsOf4,
	}
}

// groupsOf4 spaces a key for reading aloud or typing ("ABCD EFGH …").
func groupsOf4(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// relTime says how long ago (or from now) t is, in words.
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func absTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// uptime is a compact duration since t ("3d 4h", "2h 5m", "40s").
func uptime(t, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours()/24), int(d.Hours())%24)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	exp := int(math.Log(float64(n)) / math.Log(unit))
	exp = min(exp, 5)
	return fmt.Sprintf("%.1f %ciB", float64(n)/math.Pow(unit, float64(exp)), "KMGTPE"[exp-1])
}

// Levels of attention: ok (green), warn (amber), bad (red).
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelBad  = "bad"
)

// serviceLevel is how a service looks at a glance.
func serviceLevel(s Service) string {
	switch {
	case s.Desired == 0:
		return levelWarn
	case s.Healthy == 0:
		return levelBad
	case s.Healthy < s.Desired || s.Running != s.Desired || s.Backoff != "" || s.Held != "":
		return levelWarn
	}
	return levelOK
}

func levelWord(level string) string {
	switch level {
	case levelOK:
		return "healthy"
	case levelWarn:
		return "needs attention"
	}
	return "down"
}
