package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// HTTPOptions shape the outbound HTTP client every HTTP channel uses.
type HTTPOptions struct {
	// CAFile is an extra PEM bundle trusted in addition to the system roots (a corporate
	// TLS-inspecting proxy's CA, a private PagerDuty relay).
	CAFile string
	// Proxy picks the proxy per request; nil means HTTPS_PROXY / HTTP_PROXY / NO_PROXY,
	// read when the client is built (the same rules as http.ProxyFromEnvironment, which
	// would cache the environment for the whole process at first use).
	Proxy func(*http.Request) (*url.URL, error)
}

// NewHTTPClient returns a client honouring the proxy environment and the extra CA
// bundle. It has no overall timeout: the dispatcher bounds every attempt by context.
func NewHTTPClient(o HTTPOptions) (*http.Client, error) {
	tlsConf, err := TLSConfig(o.CAFile)
	if err != nil {
		return nil, err
	}
	proxy := o.Proxy
	if proxy == nil {
		pf := httpproxy.FromEnvironment().ProxyFunc()
		proxy = func(r *http.Request) (*url.URL, error) { return pf(r.URL) }
	}
	tr := &http.Transport{
		Proxy:                 proxy,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		// A redirect could carry the request (and its secret path) elsewhere; webhooks
		// and event APIs answer directly.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// TLSConfig returns a TLS configuration trusting the system roots plus caFile (if set).
func TLSConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(caFile) // #nosec G304 -- the operator's configured CA bundle
	if err != nil {
		return nil, fmt.Errorf("read CA bundle %s: %w (fix ca_file or remove it)", caFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate (fix ca_file)", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// postJSON posts v as JSON and checks the answer. Errors never contain the URL's path or
// query (a Slack webhook URL is a secret) nor the request body.
func postJSON(ctx context.Context, c *http.Client, rawURL string, v any, header http.Header) (retry bool, err error) {
	body, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("encode payload: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("build request for %s: %w", RedactURL(rawURL), redactErr(err, rawURL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "corpintel-alerts")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		return retryableTransport(err), fmt.Errorf("post to %s: %w", RedactURL(rawURL), redactErr(err, rawURL))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return checkStatus(resp.StatusCode, snippet, rawURL)
}

// checkStatus maps an HTTP answer to Alertmanager's retry rule: 2xx is success, 429 and
// 5xx may succeed later, any other status will not.
func checkStatus(code int, body []byte, rawURL string) (bool, error) {
	if code/100 == 2 {
		return false, nil
	}
	msg := fmt.Sprintf("%s answered %d %s", RedactURL(rawURL), code, http.StatusText(code))
	if b := bytes.TrimSpace(body); len(b) > 0 {
		msg += ": " + truncate(string(b), 200)
	}
	return code == http.StatusTooManyRequests || code >= 500, errors.New(msg)
}

// retryableTransport tells a transport error that retrying cannot fix (a certificate the
// client does not trust, a malformed URL) from one it might (refused, reset, timeout).
func retryableTransport(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Op == "parse" {
		return false
	}
	return true
}

// RedactURL keeps scheme and host of a URL and hides the rest, which for webhooks is the
// secret.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted URL]"
	}
	if u.Path == "" || u.Path == "/" {
		if u.RawQuery == "" && u.User == nil {
			return u.Scheme + "://" + u.Host
		}
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}

// redactErr removes the URL from errors of the HTTP client, which print it in full.
func redactErr(err error, rawURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: RedactURL(rawURL), Err: ue.Err}
	}
	return err
}
