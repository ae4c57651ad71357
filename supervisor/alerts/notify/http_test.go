package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read when the client is built.
func TestProxyFromEnvironment(t *testing.T) {
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String()) // a proxy sees the absolute URL
		w.WriteHeader(http.StatusAccepted)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "internal.example")
	c, err := NewHTTPClient(HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pd := &PagerDuty{URL: "http://events.pagerduty.test/v2/enqueue", RoutingKeyFile: secretFile(t, strings.Repeat("k", 32)), Client: c}
	if _, err := pd.Notify(context.Background(), testMessage("pd", StatusFiring)); err != nil {
		t.Fatal(err)
	}
	if got, _ := proxied.Load().(string); got != "http://events.pagerduty.test/v2/enqueue" {
		t.Errorf("proxy saw %q", got)
	}
	tr := c.Transport.(*http.Transport)
	for target, wantProxy := range map[string]bool{"https://events.pagerduty.com/v2/enqueue": true, "https://relay.internal.example/x": false} {
		u, _ := url.Parse(target)
		p, err := tr.Proxy(&http.Request{URL: u})
		if err != nil || (p != nil) != wantProxy {
			t.Errorf("%s: proxy %v (%v), want proxied %v", target, p, err, wantProxy)
		}
	}
}

// An extra CA bundle makes a private CA's server trusted; without it the certificate
// is refused and the failure is not retried.
func TestCABundle(t *testing.T) {
	caFile, certFile, keyFile := testCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = cert
	srv.StartTLS()
	defer srv.Close()
	hook := func(c *http.Client) *Webhook { return &Webhook{URL: srv.URL, Client: c} }

	trusted, err := NewHTTPClient(HTTPOptions{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hook(trusted).Notify(context.Background(), testMessage("hook", StatusFiring)); err != nil {
		t.Fatalf("with the CA bundle: %v", err)
	}
	plain, _ := NewHTTPClient(HTTPOptions{})
	retry, err := hook(plain).Notify(context.Background(), testMessage("hook", StatusFiring))
	if err == nil || retry {
		t.Errorf("without the CA bundle: retry %v, err %v", retry, err)
	}
	if _, err := NewHTTPClient(HTTPOptions{CAFile: "/nonexistent.pem"}); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing bundle: %v", err)
	}
	notPEM := secretFile(t, "not a certificate")
	if _, err := TLSConfig(notPEM); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad bundle: %v", err)
	}
	_ = os.Remove(notPEM)
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newRecorder(t, http.StatusOK)
	redir := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusFound))
	defer redir.Close()
	_, err := (&Webhook{URL: redir.URL, Client: httpClient(t)}).Notify(context.Background(), testMessage("hook", StatusFiring))
	if err == nil || len(target.received()) != 0 {
		t.Errorf("redirect followed (err %v, target got %d)", err, len(target.received()))
	}
}

func TestRetryableTransport(t *testing.T) {
	if retryableTransport(&url.Error{Op: "parse", Err: context.Canceled}) {
		t.Error("a parse error is retryable")
	}
	if _, err := postJSON(context.Background(), httpClient(t), "http://[::1", nil, nil); err == nil {
		t.Error("bad URL accepted")
	}
	if _, err := postJSON(context.Background(), httpClient(t), "http://127.0.0.1:1", make(chan int), nil); err == nil {
		t.Error("unencodable payload accepted")
	}
}
