package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxWait caps one sleep of Run, so a wall-clock jump (suspend, NTP step) is noticed
// within minutes.
const maxWait = 5 * time.Minute

// issuer is one mode's way of getting certificates.
type issuer interface {
	// restore returns what the state directory (or the operator's files) holds for s
	// without touching the network; nil when there is nothing usable.
	restore(s *slot) (*tls.Certificate, error)
	// obtain gets a certificate for s; errUnchanged means there is nothing new.
	obtain(ctx context.Context, s *slot) (*tls.Certificate, error)
	// nextCheck is when to look at s again after it got cert at now.
	nextCheck(cert *tls.Certificate, now time.Time) time.Time
	// retryBounds are the backoff bounds after a failure.
	retryBounds() (min, max time.Duration)
}

// errUnchanged: the source has nothing new (file mode: same files).
var errUnchanged = errors.New("unchanged")

// slot is one certificate the edge serves: its status and schedule. Guarded by
// Manager.mu except name and names, which never change.
type slot struct {
	name  string
	names []string

	cert            *tls.Certificate
	lastAttempt     time.Time
	lastSuccess     time.Time
	lastErr         error
	failures        int
	nextCheck       time.Time
	lastFailedOrder time.Time
	ocspNext        time.Time
	ocspErr         error
}

// currentCert is the certificate s serves now.
func (s *slot) currentCert(m *Manager) *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return s.cert
}

// servedIndex is what GetCertificate reads, replaced as a whole on every change.
type servedIndex struct {
	byName   map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // parent domain → certificate for *.parent
	def      *tls.Certificate
}

// Manager owns the edge's certificates: it restores them from the state directory, serves
// them (GetCertificate / TLSConfig), keeps them fresh (Run) and reports (Status).
type Manager struct {
	cfg   Config
	clock Clock
	log   *slog.Logger
	http  *http.Client
	met   *metrics
	lock  *dirLock

	iss  issuer
	acme *acmeIssuer // nil unless ACME mode
	self *selfSignedIssuer

	mu      sync.Mutex
	slots   []*slot
	tickets ticketKeys

	served atomic.Pointer[servedIndex]
	base   *tls.Config
	inner  atomic.Pointer[tls.Config]

	chal challenges
	// localIPs replaces the interface listing of the preflight (tests).
	localIPs func() ([]net.IP, error)

	wake      chan struct{}
	closeOnce sync.Once
}

// New builds a Manager: validates cfg, locks the state directory and restores the
// certificates found there, so a restart serves at once without asking the CA. In
// self-signed and file mode a certificate is made or read right away (an unreadable file
// is an error here); in ACME mode issuance starts with Run.
func New(cfg Config, deps Deps) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:   cfg,
		clock: deps.Clock,
		log:   deps.Logger,
		http:  deps.HTTPClient,
		wake:  make(chan struct{}, 1),
		tickets: ticketKeys{
			every: cfg.TicketKeyRotation,
			keep:  cfg.TicketKeysKept,
		},
	}
	if m.clock == nil {
		m.clock = SystemClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.http == nil {
		m.http = &http.Client{Timeout: 30 * time.Second}
	}
	if m.met, err = newMetrics(deps.Registerer); err != nil {
		return nil, err
	}
	m.chal.init()
	if err := ensureDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if m.lock, err = lockDir(cfg.StateDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.lock.unlock()
		}
	}()

	switch cfg.Mode {
	case ModeACME:
		m.acme, err = newACMEIssuer(m)
		m.iss = m.acme
		for _, n := range cfg.Names {
			m.slots = append(m.slots, &slot{name: n, names: []string{n}})
		}
	case ModeSelfSigned:
		m.self, err = newSelfSignedIssuer(m)
		m.iss = m.self
		m.slots = []*slot{{name: cfg.DefaultName, names: cfg.Names}}
	case ModeFile:
		m.iss = &fileIssuer{m: m}
		name := cfg.DefaultName
		if name == "" {
			name = "default"
		}
		m.slots = []*slot{{name: name, names: cfg.Names}}
	}
	if err != nil {
		return nil, err
	}

	m.base = ServerTLSConfig(PolicyOptions{
		GetCertificate:        m.GetCertificate,
		ACMEALPN:              cfg.Mode == ModeACME && m.acme.enabled(ChallengeTLSALPN01),
		DisableSessionTickets: cfg.DisableSessionTickets,
	})
	if err := m.rotateTickets(m.clock.Now()); err != nil {
		return nil, err
	}

	now := m.clock.Now()
	for _, s := range m.slots {
		c, err := m.iss.restore(s)
		if err != nil {
			// A damaged cache is not fatal in ACME mode: a new certificate replaces it.
			if cfg.Mode != ModeACME {
				return nil, err
			}
			m.log.Warn("certs: ignoring unusable cached certificate", "name", s.name, "err", err)
			s.lastErr = err
		}
		s.cert = c
		s.nextCheck = now
		if c != nil {
			s.ocspNext = now
			s.nextCheck = m.iss.nextCheck(c, now)
			if cfg.Mode != ModeFile {
				// A certificate restored inside its renewal window (or expired) is
				// renewed right away, without the floor that guards fresh ones.
				s.nextCheck = renewAt(c.Leaf)
			}
		}
		if w := m.failedOrderWait(s); w.After(s.nextCheck) {
			s.nextCheck = w
		}
	}
	m.rebuildIndex()
	// Self-signed and file mode must serve from the first handshake: get what is missing now.
	if cfg.Mode != ModeACME {
		for _, s := range m.slots {
			if s.cert == nil {
				m.refresh(context.Background(), s)
				if s.cert == nil {
					return nil, s.lastErr
				}
			}
		}
	}
	ok = true
	return m, nil
}

// Close releases the state directory lock; cancel Run's context first. Handshakes still
// get the last certificates, but nothing refreshes them any more.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() { m.lock.unlock() })
	return nil
}

// TLSConfig is the edge's TLS configuration (see ServerTLSConfig) bound to this Manager.
// Safe to clone (http.Server does): the per-handshake config, which carries the rotating
// session ticket keys, is looked up through GetConfigForClient.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.base.Clone()
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return m.inner.Load(), nil
	}
	return c
}

// GetCertificate picks the certificate for a handshake: a TLS-ALPN-01 challenge answer,
// the certificate covering the SNI name, or the default certificate (unknown names unless
// RejectUnknownSNI, and clients without SNI). It never blocks on the network.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello == nil {
		return nil, errors.New("certs: no client hello")
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProtoACME {
		if c := m.chal.alpnCert(name); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("certs: no TLS-ALPN-01 challenge pending for %q", name)
	}
	idx := m.served.Load()
	if name != "" {
		if c := idx.byName[name]; c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := idx.wildcard[name[i+1:]]; c != nil {
				return c, nil
			}
		}
		if m.cfg.RejectUnknownSNI {
			return nil, fmt.Errorf("certs: no certificate for server name %q", name)
		}
	}
	if idx.def == nil {
		if m.cfg.Mode == ModeACME {
			return nil, fmt.Errorf("certs: no certificate for %q yet: ACME issuance is pending or failing (see corpintel status)", name)
		}
		return nil, fmt.Errorf("certs: no certificate for %q", name)
	}
	return idx.def, nil
}

// Run keeps the certificates fresh until ctx ends: renewals, retries with backoff, file
// polling, OCSP staples and session ticket key rotation. It returns nil when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	for {
		next := m.maintain(ctx)
		wait := next.Sub(m.clock.Now())
		if wait < 0 {
			wait = 0
		}
		if wait > maxWait {
			wait = maxWait
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.clock.After(wait):
		case <-m.wake:
		}
	}
}

// Wake makes Run look at every certificate now (e.g. after `corpintel tls renew`),
// ignoring backoff but not the failed-order limit.
func (m *Manager) Wake() {
	m.mu.Lock()
	now := m.clock.Now()
	for _, s := range m.slots {
		s.nextCheck = now
		if w := m.failedOrderWait(s); w.After(now) {
			s.nextCheck = w
		}
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// maintain does everything that is due and returns when it next has something to do.
func (m *Manager) maintain(ctx context.Context) time.Time {
	now := m.clock.Now()
	next := now.Add(maxWait)
	if !m.cfg.DisableSessionTickets {
		if err := m.rotateTickets(now); err != nil {
			m.log.Error("certs: rotate session ticket keys", "err", err)
		}
		next = earliest(next, m.tickets.next())
	}
	for _, s := range m.slots {
		m.mu.Lock()
		due := !now.Before(s.nextCheck)
		m.mu.Unlock()
		if due && ctx.Err() == nil {
			m.refresh(ctx, s)
		}
		if ctx.Err() == nil {
			m.maybeStaple(ctx, s)
		}
		m.mu.Lock()
		next = earliest(next, s.nextCheck)
		if !s.ocspNext.IsZero() {
			next = earliest(next, s.ocspNext)
		}
		m.mu.Unlock()
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// refresh asks the mode's issuer for a certificate for s and records the outcome.
func (m *Manager) refresh(ctx context.Context, s *slot) {
	start := m.clock.Now()
	c, err := m.iss.obtain(ctx, s)
	now := m.clock.Now()

	m.mu.Lock()
	defer m.mu.Unlock()
	if errors.Is(err, errUnchanged) {
		s.nextCheck = m.iss.nextCheck(s.cert, now)
		return
	}
	s.lastAttempt = start
	if err != nil {
		s.failures++
		s.lastErr = err
		s.nextCheck = m.retryAt(s, now, err)
		m.met.failures.WithLabelValues(s.name).Inc()
		m.log.Error("certs: certificate not renewed; the current one keeps being served",
			"name", s.name, "attempt", s.failures, "next_attempt", s.nextCheck, "err", err)
		return
	}
	s.cert = c
	s.failures = 0
	s.lastErr = nil
	s.lastSuccess = now
	s.ocspNext = now
	s.ocspErr = nil
	s.nextCheck = m.iss.nextCheck(c, now)
	m.met.renewals.WithLabelValues(s.name).Inc()
	m.rebuildIndexLocked()
	m.log.Info("certs: certificate installed", "name", s.name, "serial", serialHex(c.Leaf),
		"not_after", c.Leaf.NotAfter, "renew_at", s.nextCheck)
}

// retryAt is when to try s again after its failures-th consecutive failure: exponential
// backoff, at least the CA's Retry-After, and at least FailedOrderInterval after a
// failed order.
func (m *Manager) retryAt(s *slot, now time.Time, err error) time.Time {
	lo, hi := m.iss.retryBounds()
	d := lo
	for i := 1; i < s.failures && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	at := now.Add(d)
	if ra, ok := retryAfter(err); ok && now.Add(ra).After(at) {
		at = now.Add(ra)
	}
	var fo *failedOrderError
	if errors.As(err, &fo) && m.acme != nil {
		s.lastFailedOrder = now
		m.acme.recordFailedOrder(s.name, now)
		if w := m.failedOrderWait(s); w.After(at) {
			at = w
		}
	}
	return at
}

// failedOrderWait is the earliest time another order for s may be placed.
func (m *Manager) failedOrderWait(s *slot) time.Time {
	if m.cfg.Mode != ModeACME || s.lastFailedOrder.IsZero() || m.cfg.ACME.FailedOrderInterval <= 0 {
		return time.Time{}
	}
	return s.lastFailedOrder.Add(m.cfg.ACME.FailedOrderInterval)
}

// renewAt is when a third of cert's lifetime remains.
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 3)
}

// nextRenewal is renewAt, but never sooner than floor from now (a CA that issues a
// certificate already inside its renewal window must not cause an order loop).
func nextRenewal(c *tls.Certificate, now time.Time, floor time.Duration) time.Time {
	at := renewAt(c.Leaf)
	if min := now.Add(floor); at.Before(min) {
		return min
	}
	return at
}

func (m *Manager) rebuildIndex() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rebuildIndexLocked()
}

func (m *Manager) rebuildIndexLocked() {
	idx := &servedIndex{byName: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for _, s := range m.slots {
		c := s.cert
		if c == nil {
			continue
		}
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				idx.wildcard[parent] = c
			} else {
				idx.byName[n] = c
			}
		}
		for _, ip := range c.Leaf.IPAddresses {
			idx.byName[ip.String()] = c
		}
		// A slot's own names point at its certificate even if the leaf does not list
		// them (file mode with a mismatching certificate: serve it, status shows why).
		for _, n := range s.names {
			if idx.byName[n] == nil {
				idx.byName[n] = c
			}
		}
		if s.name == m.cfg.DefaultName || idx.def == nil {
			idx.def = c
		}
	}
	m.served.Store(idx)
}

// rotateTickets installs a new per-handshake config when the ticket ring changed.
func (m *Manager) rotateTickets(now time.Time) error {
	if m.cfg.DisableSessionTickets {
		if m.inner.Load() == nil {
			m.inner.Store(m.base)
		}
		return nil
	}
	m.mu.Lock()
	changed, err := m.tickets.rotateIfDue(now)
	keys := append([][32]byte(nil), m.tickets.keys...)
	m.mu.Unlock()
	if err != nil || !changed {
		return err
	}
	c := m.base.Clone()
	c.SetSessionTicketKeys(keys)
	m.inner.Store(c)
	return nil
}

// Status is the certificate part of `corpintel status`.
type Status struct {
	Mode         Mode         `json:"mode"`
	DirectoryURL string       `json:"directory_url,omitempty"`
	Account      string       `json:"account,omitempty"`
	Certificates []CertStatus `json:"certificates"`
}

// CertStatus is one certificate: what is served and how keeping it fresh goes.
type CertStatus struct {
	Name      string    `json:"name"`
	Names     []string  `json:"names"`
	Serial    string    `json:"serial,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	// RenewAt is when a third of the lifetime remains (ACME, self-signed).
	RenewAt     time.Time `json:"renew_at,omitzero"`
	OCSPStapled bool      `json:"ocsp_stapled,omitempty"`
	OCSPError   string    `json:"ocsp_error,omitempty"`
	// LastAttempt is the start of the last attempt that did something (an order, a new
	// leaf, a changed file); LastError its error ("" when it worked).
	LastAttempt         time.Time `json:"last_attempt,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	NextAttempt         time.Time `json:"next_attempt,omitzero"`
}

// Status reports every certificate.
func (m *Manager) Status() Status {
	st := Status{Mode: m.cfg.Mode}
	if m.acme != nil {
		st.DirectoryURL = m.cfg.ACME.DirectoryURL
		st.Account = m.acme.accountURI()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		cs := CertStatus{
			Name:                s.name,
			Names:               append([]string(nil), s.names...),
			LastAttempt:         s.lastAttempt,
			LastSuccess:         s.lastSuccess,
			ConsecutiveFailures: s.failures,
			NextAttempt:         s.nextCheck,
		}
		if s.lastErr != nil {
			cs.LastError = s.lastErr.Error()
		}
		if s.ocspErr != nil {
			cs.OCSPError = s.ocspErr.Error()
		}
		if c := s.cert; c != nil {
			cs.Serial = serialHex(c.Leaf)
			cs.Issuer = c.Leaf.Issuer.String()
			cs.NotBefore = c.Leaf.NotBefore
			cs.NotAfter = c.Leaf.NotAfter
			cs.OCSPStapled = len(c.OCSPStaple) > 0
			if m.cfg.Mode != ModeFile {
				cs.RenewAt = renewAt(c.Leaf)
			}
		}
		st.Certificates = append(st.Certificates, cs)
	}
	return st
}

func serialHex(leaf *x509.Certificate) string {
	if leaf == nil || leaf.SerialNumber == nil {
		return ""
	}
	return hex.EncodeToString(leaf.SerialNumber.Bytes())
}

// covers reports the names of want that leaf is not valid for.
func uncovered(leaf *x509.Certificate, want []string) []string {
	var missing []string
	for _, n := range want {
		host := n
		if ip := net.ParseIP(n); ip != nil {
			host = ip.String()
		}
		if leaf.VerifyHostname(host) != nil {
			missing = append(missing, n)
		}
	}
	return missing
}
