package certs

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// The local CA publishes a CRL on the plain-HTTP listener (a CRL is signed, so HTTP is
// the norm, and HTTPS would need the certificate it is about). It lists the leaves that
// renewals superseded, until they expire.

const (
	crlPath     = "/.well-known/corpintel/ca.crl"
	crlValidity = 7 * 24 * time.Hour
)

// revokedLeaf is one entry of revoked.json.
type revokedLeaf struct {
	Serial    string    `json:"serial"` // decimal
	RevokedAt time.Time `json:"revoked_at"`
	NotAfter  time.Time `json:"not_after"`
}

func (s *selfSignedIssuer) revokedPath() string { return filepath.Join(s.dir, "revoked.json") }

// crlURL is where leaves say the CRL is: the default name on the HTTP port.
func (s *selfSignedIssuer) crlURL() string {
	host := s.m.cfg.DefaultName
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	if p := s.m.cfg.HTTPPort; p != 80 {
		host += ":" + strconv.Itoa(p)
	}
	return "http://" + host + crlPath
}

// revoke lists leaf as superseded and drops entries of expired leaves.
func (s *selfSignedIssuer) revoke(leaf *x509.Certificate, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, err := s.loadRevokedLocked()
	if err != nil {
		return err
	}
	kept := list[:0]
	for _, r := range list {
		if r.NotAfter.After(at) {
			kept = append(kept, r)
		}
	}
	kept = append(kept, revokedLeaf{Serial: leaf.SerialNumber.String(), RevokedAt: at.UTC(), NotAfter: leaf.NotAfter.UTC()})
	s.crl = nil
	return writeJSON(s.revokedPath(), kept)
}

func (s *selfSignedIssuer) loadRevokedLocked() ([]revokedLeaf, error) {
	var list []revokedLeaf
	if err := readJSON(s.revokedPath(), &list); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return list, nil
}

// currentCRL returns the DER CRL, signing a new one when the cached one is half-way to
// its NextUpdate or the list changed.
func (s *selfSignedIssuer) currentCRL() ([]byte, error) {
	now := s.m.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crl != nil && now.Before(s.crlRefresh) {
		return s.crl, nil
	}
	list, err := s.loadRevokedLocked()
	if err != nil {
		return nil, err
	}
	var entries []x509.RevocationListEntry
	for _, r := range list {
		if !r.NotAfter.After(now) {
			continue
		}
		serial, ok := new(big.Int).SetString(r.Serial, 10)
		if !ok {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: r.RevokedAt, ReasonCode: 4 /* superseded */})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now,
		NextUpdate:                now.Add(crlValidity),
		RevokedCertificateEntries: entries,
	}, s.ca, s.caKey)
	if err != nil {
		return nil, fmt.Errorf("self-signed: sign CRL: %w", err)
	}
	s.crl, s.crlRefresh = der, now.Add(crlValidity/2)
	return der, nil
}

func (m *Manager) serveCRL(w http.ResponseWriter, r *http.Request) {
	if m.self == nil {
		http.NotFound(w, r)
		return
	}
	der, err := m.self.currentCRL()
	if err != nil {
		m.log.Error("certs: CRL", "err", err)
		http.Error(w, "CRL unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(der)
}
