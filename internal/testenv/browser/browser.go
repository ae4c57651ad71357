// Package browser runs a real headless Chromium for browser tests (driven by chromedp):
// it finds the browser the way testenv finds every component (skip locally, fail under
// CI=true), starts it with the flags of ENVIRONMENT.md and a fresh profile, records
// what the page complains about (console errors, uncaught exceptions, CSP violations)
// and every JavaScript dialog (an alert is what an XSS probe would open), and saves
// screenshots.
package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/corpintel/corpintel/internal/testenv"
)

// Browser is one Chromium process with one tab.
type Browser struct {
	t   testing.TB
	Ctx context.Context

	mu       sync.Mutex
	problems []string
	dialogs  []string
	ignore   []string
}

// Options tune a browser.
type Options struct {
	// Width and Height are the viewport (default 1280×900).
	Width, Height int
	// IgnoreCertErrors accepts the edge's self-signed certificate (the local CA is
	// not in this fresh profile's trust store).
	IgnoreCertErrors bool
	// Timeout bounds the whole browser session (default 10 minutes).
	Timeout time.Duration
}

// New starts a browser; it is stopped when the test ends.
func New(t testing.TB, o Options) *Browser {
	t.Helper()
	path, err := testenv.Chromium()
	testenv.Require(t, "chromium", err)
	if o.Width == 0 {
		o.Width, o.Height = 1280, 900
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(o.Width, o.Height)}
	for _, f := range testenv.ChromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	if o.IgnoreCertErrors {
		opts = append(opts, chromedp.IgnoreCertErrors)
	}
	base, cancelTimeout := context.WithTimeout(context.Background(), o.Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelTimeout() })
	// Docker adds and removes veth interfaces as containers come and go; Chromium then
	// cancels what is loading (an EventSource reconnects by itself).
	b := &Browser{t: t, Ctx: ctx, ignore: []string{"net::ERR_NETWORK_CHANGED"}}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(o.Width), int64(o.Height))); err != nil {
		testenv.Require(t, "chromium", fmt.Errorf("start %s: %w", path, err))
	}
	b.watch()
	return b
}

// watch records console problems and dismisses (and records) dialogs.
func (b *Browser) watch() {
	console := chromedp.Console(b.Ctx)
	dialogs := chromedp.Events(b.Ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security" {
				b.mu.Lock()
				if !slices.ContainsFunc(b.ignore, func(s string) bool { return strings.Contains(m.Text, s) }) {
					b.problems = append(b.problems, fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				}
				b.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(b.Ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
}

// Ignore stops counting console messages that contain text as problems (a page that
// is meant to fail, such as a 403 the test provokes).
func (b *Browser) Ignore(text string) {
	b.mu.Lock()
	b.ignore = append(b.ignore, text)
	b.mu.Unlock()
}

// Problems returns the console errors, exceptions and CSP violations so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Dialogs returns the JavaScript dialogs that opened (none, in a page that escapes
// what it shows).
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Do runs steps and fails the test on an error, naming what was being done.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v (problems so far: %s)", what, err, strings.Join(b.Problems(), "; "))
	}
}

// Open navigates to url. A load that Chromium aborts because the machine's network
// changed (Docker adds and removes veth interfaces as containers come and go, and
// Chromium then cancels loads with net::ERR_NETWORK_CHANGED) is tried again.
func (b *Browser) Open(url string) {
	b.t.Helper()
	var err error
	for range 5 {
		if err = chromedp.Do(b.Ctx, chromedp.Navigate(url)); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			break
		}
	}
	if err != nil {
		b.t.Fatalf("browser: open %s: %v (problems so far: %s)", url, err, strings.Join(b.Problems(), "; "))
	}
}

// Text returns the text of the first element matching a CSS selector.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

// Eval evaluates a JavaScript expression.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: eval %s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript condition until it is true (or fails the test at the
// deadline with what the page showed).
func (b *Browser) WaitFor(what, cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	body, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	loc, _ := chromedp.Run(b.Ctx, chromedp.Location())
	b.t.Fatalf("browser: %s: not within %s (at %s)\n%.3000s", what, timeout, loc, body)
}

// Screenshot saves a full-page PNG at path (directories created).
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil { // #nosec G306 -- a test artifact
		b.t.Fatal(err)
	}
}

// Resize changes the viewport (for screenshots at several widths).
func (b *Browser) Resize(width, height int) {
	b.t.Helper()
	b.Do(fmt.Sprintf("viewport %dx%d", width, height), chromedp.EmulateViewport(int64(width), int64(height)))
}
