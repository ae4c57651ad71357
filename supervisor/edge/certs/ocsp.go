package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP stapling happens only for certificates that name a responder (Let's Encrypt's no
// longer do), in Run's loop, never in a handshake: a slow or dead responder costs a
// missing staple, nothing more.

const (
	ocspTimeout    = 10 * time.Second
	ocspRetry      = 10 * time.Minute
	maxOCSPRespLen = 64 << 10
)

// maybeStaple refreshes s's OCSP staple when one is due.
func (m *Manager) maybeStaple(ctx context.Context, s *slot) {
	m.mu.Lock()
	c := s.cert
	due := c != nil && !s.ocspNext.IsZero() && !m.clock.Now().Before(s.ocspNext)
	m.mu.Unlock()
	if !due {
		return
	}
	if len(c.Leaf.OCSPServer) == 0 || len(c.Certificate) < 2 {
		m.mu.Lock()
		s.ocspNext = time.Time{} // nothing to staple for this certificate
		m.mu.Unlock()
		return
	}
	staple, next, err := m.fetchOCSP(ctx, c)
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.cert != c {
		return // replaced meanwhile; the new one gets its own staple
	}
	if err != nil {
		s.ocspErr = err
		s.ocspNext = now.Add(ocspRetry)
		m.log.Warn("certs: OCSP staple not refreshed", "name", s.name, "err", err)
		return
	}
	stapled := *c
	stapled.OCSPStaple = staple
	s.cert = &stapled
	s.ocspErr = nil
	s.ocspNext = next
	m.rebuildIndexLocked()
}

// fetchOCSP asks the leaf's responder about it and returns the response and when to ask
// again (halfway to its NextUpdate).
func (m *Manager) fetchOCSP(ctx context.Context, c *tls.Certificate) ([]byte, time.Time, error) {
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: parse issuer: %w", err)
	}
	req, err := ocsp.CreateRequest(c.Leaf, issuer, nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: create request: %w", err)
	}
	responder := c.Leaf.OCSPServer[0]
	ctx, cancel := context.WithTimeout(ctx, ocspTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(req))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := m.http.Do(hreq)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: ask %s: %w", responder, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, fmt.Errorf("ocsp: %s answered %s", responder, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPRespLen))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: read response from %s: %w", responder, err)
	}
	r, err := ocsp.ParseResponseForCert(body, c.Leaf, issuer)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ocsp: response from %s: %w", responder, err)
	}
	if r.Status != ocsp.Good {
		return nil, time.Time{}, fmt.Errorf("ocsp: %s says the certificate is not good (status %d): renew or replace it", responder, r.Status)
	}
	now := m.clock.Now()
	if r.NextUpdate.IsZero() || !r.NextUpdate.After(now) {
		return nil, time.Time{}, errors.New("ocsp: response from " + responder + " is already stale")
	}
	next := r.ThisUpdate.Add(r.NextUpdate.Sub(r.ThisUpdate) / 2)
	if floor := now.Add(time.Minute); next.Before(floor) {
		next = floor
	}
	return body, next, nil
}
