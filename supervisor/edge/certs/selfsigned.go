package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// selfSignedIssuer is a local CA (ECDSA P-256, created once in the state directory) that
// issues the edge's leaf certificate. Operators trust the CA once (`corpintel tls ca`),
// and leaf renewals never need them again.
type selfSignedIssuer struct {
	m   *Manager
	cfg SelfSignedConfig
	dir string

	mu     sync.Mutex
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	serial func() (*big.Int, error)

	crl        []byte    // cached DER CRL
	crlRefresh time.Time // when to sign a new one
}

// backdate covers clients whose clock is a little behind.
const backdate = time.Hour

func newSelfSignedIssuer(m *Manager) (*selfSignedIssuer, error) {
	s := &selfSignedIssuer{m: m, cfg: m.cfg.SelfSigned, dir: filepath.Join(m.cfg.StateDir, "self-signed"), serial: randomSerial}
	if err := ensureDir(s.dir); err != nil {
		return nil, err
	}
	if err := s.ensureCA(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *selfSignedIssuer) caCertPath() string { return filepath.Join(s.dir, "ca.pem") }
func (s *selfSignedIssuer) caKeyPath() string  { return filepath.Join(s.dir, "ca.key") }
func (s *selfSignedIssuer) leafPath() string   { return filepath.Join(s.dir, "leaf.pem") }

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// ensureCA loads the CA or creates it when neither file exists. A half-present CA is an
// error: silently replacing a CA that clients trust would break all of them.
func (s *selfSignedIssuer) ensureCA() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	certPEM, certErr := os.ReadFile(s.caCertPath())
	keyPEM, keyErr := os.ReadFile(s.caKeyPath())
	switch {
	case certErr == nil && keyErr == nil:
		c, err := parseKeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("self-signed CA in %s: %w (restore ca.pem and ca.key from a backup, or remove both to create a new CA that clients must trust anew)", s.dir, err)
		}
		k, ok := c.PrivateKey.(*ecdsa.PrivateKey)
		if !ok || !c.Leaf.IsCA {
			return fmt.Errorf("self-signed CA in %s is not an ECDSA CA certificate", s.dir)
		}
		s.ca, s.caKey, s.caPEM = c.Leaf, k, certPEM
		return nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return s.createCALocked()
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return fmt.Errorf("read self-signed CA: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return fmt.Errorf("read self-signed CA key: %w", keyErr)
	default:
		return fmt.Errorf("self-signed CA in %s is incomplete (one of ca.pem and ca.key is missing): restore it from a backup, or remove both to create a new CA that clients must trust anew", s.dir)
	}
}

func (s *selfSignedIssuer) createCALocked() error {
	key, err := newECDSAKey()
	if err != nil {
		return err
	}
	serial, err := s.serial()
	if err != nil {
		return err
	}
	now := s.m.clock.Now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{s.cfg.Organization}, CommonName: "corpintel local CA " + host},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(s.cfg.CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create self-signed CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse self-signed CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Key first: a certificate without its key would be the "incomplete" error above.
	if err := writeFileAtomic(s.caKeyPath(), keyPEM); err != nil {
		return err
	}
	if err := writeFileAtomic(s.caCertPath(), certPEM); err != nil {
		return err
	}
	s.ca, s.caKey, s.caPEM = ca, key, certPEM
	s.m.log.Info("certs: created the self-signed CA", "dir", s.dir, "not_after", ca.NotAfter)
	return nil
}

func (s *selfSignedIssuer) retryBounds() (time.Duration, time.Duration) {
	return defaultRetryMin, defaultRetryMax
}

func (s *selfSignedIssuer) nextCheck(c *tls.Certificate, now time.Time) time.Time {
	return nextRenewal(c, now, defaultRetryMin)
}

// restore returns the stored leaf if this CA signed it and it covers the names.
func (s *selfSignedIssuer) restore(sl *slot) (*tls.Certificate, error) {
	c, err := readChainFile(s.leafPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		s.m.log.Warn("certs: replacing unreadable self-signed leaf", "err", err)
		return nil, nil
	}
	s.mu.Lock()
	ca := s.ca
	s.mu.Unlock()
	if c.Leaf.CheckSignatureFrom(ca) != nil || len(uncovered(c.Leaf, sl.names)) > 0 {
		return nil, nil // made by an older CA or for other names: issue a new one
	}
	return c, nil
}

// obtain issues a new leaf for all names.
func (s *selfSignedIssuer) obtain(_ context.Context, sl *slot) (*tls.Certificate, error) {
	s.mu.Lock()
	ca, caKey := s.ca, s.caKey
	s.mu.Unlock()
	now := s.m.clock.Now()
	notAfter := now.Add(s.cfg.LeafValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("self-signed: the local CA expired on %s: remove %s and %s to create a new one (clients must trust it anew)",
			ca.NotAfter.Format(time.DateOnly), s.caCertPath(), s.caKeyPath())
	}
	key, err := newECDSAKey()
	if err != nil {
		return nil, err
	}
	serial, err := s.serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{s.cfg.Organization}, CommonName: sl.names[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A revocation pointer: without one a leaked leaf key could never be revoked
		// (testssl.sh rates its absence HIGH). Superseded leaves are listed there.
		CRLDistributionPoints: []string{s.crlURL()},
	}
	for _, n := range sl.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("self-signed: issue leaf: %w", err)
	}
	chain := [][]byte{der}
	cert, err := certFromDER(chain, key)
	if err != nil {
		return nil, err
	}
	data, err := encodeChain(key, chain)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.leafPath(), data); err != nil {
		return nil, fmt.Errorf("self-signed: store leaf: %w", err)
	}
	if old := sl.currentCert(s.m); old != nil {
		if err := s.revoke(old.Leaf, now); err != nil {
			s.m.log.Warn("certs: superseded self-signed leaf not listed in the CRL", "err", err)
		}
	}
	return cert, nil
}

// CACertificatePEM is the self-signed CA certificate for operators to trust
// (`corpintel tls ca > ca.pem`). Only self-signed mode has one.
func (m *Manager) CACertificatePEM() ([]byte, error) {
	if m.self == nil {
		return nil, fmt.Errorf("certs: no local CA: the edge runs in %s mode, not self-signed", m.cfg.Mode)
	}
	m.self.mu.Lock()
	defer m.self.mu.Unlock()
	return append([]byte(nil), m.self.caPEM...), nil
}

// ReadCACertificate reads the self-signed CA certificate from a state directory without a
// running Manager (for the CLI on the same host).
func ReadCACertificate(stateDir string) ([]byte, error) {
	path := filepath.Join(stateDir, "self-signed", "ca.pem")
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's state directory
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no self-signed CA in %s: the edge has not run in self-signed mode with this state dir", stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read self-signed CA: %w", err)
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return b, nil
}
