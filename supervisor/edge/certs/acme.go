package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

// acmeIssuer obtains certificates from an RFC 8555 CA with x/crypto/acme directly
// (autocert reports renewal errors to nobody). Its state lives under
// <state>/acme/<CA host>-<hash of the directory URL>/, so switching between staging and
// production never mixes accounts or certificates.
type acmeIssuer struct {
	m   *Manager
	cfg ACMEConfig
	dir string

	mu      sync.Mutex // guards client, account, failed
	client  *acme.Client
	account accountFile
	failed  map[string]time.Time
}

// accountFile is account.json: which account the key in account.key belongs to.
type accountFile struct {
	DirectoryURL string    `json:"directory_url"`
	URI          string    `json:"uri"`
	Email        string    `json:"email,omitempty"`
	Created      time.Time `json:"created"`
}

// failedOrderError marks an order the CA failed (an authorization or the order itself
// became invalid): these count against the CA's failed-validation limits.
type failedOrderError struct{ err error }

func (e *failedOrderError) Error() string { return e.err.Error() }
func (e *failedOrderError) Unwrap() error { return e.err }

func newACMEIssuer(m *Manager) (*acmeIssuer, error) {
	u, _ := url.Parse(m.cfg.ACME.DirectoryURL)
	sum := sha256.Sum256([]byte(m.cfg.ACME.DirectoryURL))
	a := &acmeIssuer{
		m:      m,
		cfg:    m.cfg.ACME,
		dir:    filepath.Join(m.cfg.StateDir, "acme", u.Hostname()+"-"+hex.EncodeToString(sum[:4])),
		failed: map[string]time.Time{},
	}
	if err := ensureDir(filepath.Join(a.dir, "certs")); err != nil {
		return nil, err
	}
	if err := readJSON(a.failedPath(), &a.failed); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := readJSON(a.accountPath(), &a.account); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return a, nil
}

func (a *acmeIssuer) accountPath() string    { return filepath.Join(a.dir, "account.json") }
func (a *acmeIssuer) accountKeyPath() string { return filepath.Join(a.dir, "account.key") }
func (a *acmeIssuer) failedPath() string     { return filepath.Join(a.dir, "failed-orders.json") }
func (a *acmeIssuer) certPath(name string) string {
	return filepath.Join(a.dir, "certs", name+".pem")
}

func (a *acmeIssuer) enabled(challenge string) bool {
	return slices.Contains(a.cfg.Challenges, challenge)
}

func (a *acmeIssuer) accountURI() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.account.URI
}

func (a *acmeIssuer) retryBounds() (time.Duration, time.Duration) {
	return a.cfg.RetryMin, a.cfg.RetryMax
}

func (a *acmeIssuer) nextCheck(c *tls.Certificate, now time.Time) time.Time {
	return nextRenewal(c, now, a.cfg.RetryMin)
}

// restore reads the cached certificate for s and the time of its last failed order.
func (a *acmeIssuer) restore(s *slot) (*tls.Certificate, error) {
	a.mu.Lock()
	s.lastFailedOrder = a.failed[s.name]
	a.mu.Unlock()
	c, err := readChainFile(a.certPath(s.name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if missing := uncovered(c.Leaf, s.names); len(missing) > 0 {
		return nil, fmt.Errorf("cached certificate %s is not valid for %v", a.certPath(s.name), missing)
	}
	return c, nil
}

// recordFailedOrder persists when the last order for name failed, so the failed-order
// limit holds across restarts of a crash-looping supervisor.
func (a *acmeIssuer) recordFailedOrder(name string, at time.Time) {
	a.mu.Lock()
	a.failed[name] = at
	snapshot := make(map[string]time.Time, len(a.failed))
	for k, v := range a.failed {
		snapshot[k] = v
	}
	a.mu.Unlock()
	if err := writeJSON(a.failedPath(), snapshot); err != nil {
		a.m.log.Error("certs: record failed order", "name", name, "err", err)
	}
}

// ensureClient returns a client with a registered account: the key is loaded or created
// (and stored before registering, so a crash cannot orphan an account), the account URI
// comes from account.json or from registering (an existing account is looked up).
func (a *acmeIssuer) ensureClient(ctx context.Context) (*acme.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil && a.client.KID != "" {
		return a.client, nil
	}
	if a.client == nil {
		key, err := a.loadOrCreateAccountKey()
		if err != nil {
			return nil, err
		}
		a.client = &acme.Client{
			Key:          key,
			DirectoryURL: a.cfg.DirectoryURL,
			HTTPClient:   a.m.http,
			UserAgent:    "corpintel",
		}
	}
	if a.account.URI != "" && a.account.DirectoryURL == a.cfg.DirectoryURL {
		a.client.KID = acme.KeyID(a.account.URI)
		return a.client, nil
	}
	acct := &acme.Account{}
	if a.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + a.cfg.Email}
	}
	if a.cfg.EAB != nil {
		key, err := decodeEABKey(a.cfg.EAB.HMACKey)
		if err != nil {
			return nil, fmt.Errorf("external account binding key: %w", err)
		}
		acct.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: a.cfg.EAB.KeyID, Key: key}
	}
	got, err := a.client.Register(ctx, acct, acme.AcceptTOS)
	if errors.Is(err, acme.ErrAccountAlreadyExists) {
		got, err = a.client.GetReg(ctx, "")
	}
	if err != nil {
		a.client.KID = ""
		return nil, fmt.Errorf("register ACME account: %w", err)
	}
	a.account = accountFile{DirectoryURL: a.cfg.DirectoryURL, URI: got.URI, Email: a.cfg.Email, Created: a.m.clock.Now().UTC()}
	if err := writeJSON(a.accountPath(), a.account); err != nil {
		return nil, err
	}
	a.client.KID = acme.KeyID(got.URI)
	a.m.log.Info("certs: ACME account registered", "directory", a.cfg.DirectoryURL, "account", got.URI)
	return a.client, nil
}

// forgetAccount drops the account URI (the CA no longer knows it); the key stays, so
// registering again finds or recreates the account for the same key.
func (a *acmeIssuer) forgetAccount() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.account = accountFile{}
	if a.client != nil {
		a.client.KID = ""
	}
	_ = os.Remove(a.accountPath())
}

func (a *acmeIssuer) loadOrCreateAccountKey() (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(a.accountKeyPath())
	if err == nil {
		k, err := decodeKey(b)
		if err != nil {
			return nil, fmt.Errorf("ACME account key %s: %w (restore it from a backup; a new key means a new account)", a.accountKeyPath(), err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("ACME account key %s is %T, want ECDSA", a.accountKeyPath(), k)
		}
		return ek, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read ACME account key: %w", err)
	}
	k, err := newECDSAKey()
	if err != nil {
		return nil, err
	}
	pemKey, err := encodeKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(a.accountKeyPath(), pemKey); err != nil {
		return nil, err
	}
	return k, nil
}

// obtain places an order for s's names, answers one challenge per authorization and
// stores the certificate.
func (a *acmeIssuer) obtain(ctx context.Context, s *slot) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.OrderTimeout)
	defer cancel()
	c, err := a.order(ctx, s)
	if err != nil {
		return nil, a.explain(s, err)
	}
	return c, nil
}

func (a *acmeIssuer) order(ctx context.Context, s *slot) (*tls.Certificate, error) {
	client, err := a.ensureClient(ctx)
	if err != nil {
		return nil, err
	}
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(s.names...))
	if isAccountMissing(err) {
		a.m.log.Warn("certs: the CA does not know the account any more; registering again", "account", a.accountURI())
		a.forgetAccount()
		if client, err = a.ensureClient(ctx); err != nil {
			return nil, err
		}
		order, err = client.AuthorizeOrder(ctx, acme.DomainIDs(s.names...))
	}
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, zurl := range order.AuthzURLs {
		if err := a.authorize(ctx, client, zurl, s.failures); err != nil {
			return nil, err
		}
	}
	orderURI := order.URI
	order, err = client.WaitOrder(ctx, orderURI)
	if err != nil {
		return nil, failedIfInvalid(fmt.Errorf("wait for order: %w", err))
	}
	key, err := newECDSAKey()
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: s.names[0]},
		DNSNames: s.names,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	// The order URI of the response to the polling request is empty (no Location
	// header there): keep the one AuthorizeOrder returned. CreateCertFromOrder, unlike
	// CreateOrderCert, works with CAs that send no Location on finalize (Pebble).
	order.URI = orderURI
	der, _, err := client.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, failedIfInvalid(fmt.Errorf("finalize order: %w", err))
	}
	cert, err := certFromDER(der, key)
	if err != nil {
		return nil, fmt.Errorf("certificate from the CA: %w", err)
	}
	if missing := uncovered(cert.Leaf, s.names); len(missing) > 0 {
		return nil, fmt.Errorf("certificate from the CA is not valid for %v", missing)
	}
	data, err := encodeChain(key, der)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(a.certPath(s.name), data); err != nil {
		return nil, fmt.Errorf("store certificate: %w", err)
	}
	return cert, nil
}

// authorize answers one authorization. attempt rotates the challenge preference so that a
// failed challenge type is not retried forever when another is enabled.
func (a *acmeIssuer) authorize(ctx context.Context, client *acme.Client, zurl string, attempt int) error {
	z, err := client.GetAuthorization(ctx, zurl)
	if err != nil {
		return fmt.Errorf("get authorization: %w", err)
	}
	switch z.Status {
	case acme.StatusValid:
		return nil
	case acme.StatusPending:
	default:
		return &failedOrderError{fmt.Errorf("authorization for %s is %s", z.Identifier.Value, z.Status)}
	}
	prefs := a.cfg.Challenges
	if n := len(prefs); n > 1 {
		k := attempt % n
		prefs = append(append([]string(nil), prefs[k:]...), prefs[:k]...)
	}
	var chal *acme.Challenge
	for _, want := range prefs {
		for _, c := range z.Challenges {
			if c.Type == want {
				chal = c
				break
			}
		}
		if chal != nil {
			break
		}
	}
	if chal == nil {
		var offered []string
		for _, c := range z.Challenges {
			offered = append(offered, c.Type)
		}
		return &failedOrderError{fmt.Errorf("the CA offers the challenges %v for %s, none of the enabled %v", offered, z.Identifier.Value, a.cfg.Challenges)}
	}
	name := z.Identifier.Value
	switch chal.Type {
	case ChallengeHTTP01:
		ka, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return fmt.Errorf("http-01 response: %w", err)
		}
		defer a.m.chal.putHTTP01(chal.Token, ka)()
	case ChallengeTLSALPN01:
		cert, err := client.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return fmt.Errorf("tls-alpn-01 certificate: %w", err)
		}
		defer a.m.chal.putALPN(name, &cert)()
	}
	if _, err := client.Accept(ctx, chal); err != nil {
		return failedIfInvalid(fmt.Errorf("accept %s challenge: %w", chal.Type, err))
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return &failedOrderError{fmt.Errorf("%s validation of %s failed: %w", chal.Type, name, err)}
	}
	return nil
}

// failedIfInvalid marks err as a failed order when the CA declared the order or an
// authorization invalid (as opposed to a network error, which says nothing about
// validation).
func failedIfInvalid(err error) error {
	var oe *acme.OrderError
	var ae *acme.AuthorizationError
	if errors.As(err, &oe) || errors.As(err, &ae) {
		return &failedOrderError{err}
	}
	return err
}

func isAccountMissing(err error) bool {
	var e *acme.Error
	return errors.Is(err, acme.ErrNoAccount) ||
		(errors.As(err, &e) && strings.HasSuffix(e.ProblemType, ":accountDoesNotExist"))
}

// retryAfter is the CA's Retry-After of a rate-limit error.
func retryAfter(err error) (time.Duration, bool) {
	var e *acme.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	d, ok := acme.RateLimit(e)
	return d, ok && d > 0
}

// explain wraps err with the certificate, the CA and what the operator can do next.
func (a *acmeIssuer) explain(s *slot, err error) error {
	hint := ""
	var netErr net.Error
	var fo *failedOrderError
	var ae *acme.Error
	switch {
	case errors.As(err, &fo):
		hint = fmt.Sprintf("the CA could not validate %s: check that it resolves to this host and that ports %d (http-01) and %d (tls-alpn-01) are reachable from the internet; `corpintel check tls` tells more",
			strings.Join(s.names, ", "), a.m.cfg.HTTPPort, a.m.cfg.HTTPSPort)
	case errors.As(err, &ae) && strings.HasSuffix(ae.ProblemType, ":rateLimited"):
		hint = "the CA rate-limits this account or name; the next attempt waits for its Retry-After"
	case errors.As(err, &ae) && strings.HasSuffix(ae.ProblemType, ":externalAccountRequired"):
		hint = "this CA requires an external account binding: set the EAB key id and HMAC key from the CA's account page"
	case errors.As(err, &ae) && strings.HasSuffix(ae.ProblemType, ":unauthorized"):
		hint = "the CA refused the account or the request: check the EAB credentials and the CA's policy for these names"
	case errors.As(err, &netErr), isConnError(err):
		hint = "the CA is unreachable from this host: check the directory URL, DNS, firewall and proxy; the current certificate keeps being served and the next attempt backs off"
	case errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf("the order took longer than %s; the CA may be slow or validation hangs", a.cfg.OrderTimeout)
	}
	msg := fmt.Sprintf("acme: certificate for %s from %s: %v", strings.Join(s.names, ", "), a.cfg.DirectoryURL, err)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return &explainedError{msg: msg, err: err}
}

// explainedError carries a message for people and the original error for errors.As.
type explainedError struct {
	msg string
	err error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

func isConnError(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var ue *url.Error
	return errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &ue)
}
