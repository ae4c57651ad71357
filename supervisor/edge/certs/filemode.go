package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// maxPEMFile bounds what is read from an operator's file: a certificate chain is a few KB.
const maxPEMFile = 1 << 20

// fileIssuer serves the operator's certificate and key files and reloads them when their
// content changes (polled on the clock: inotify misses edits through symlink swaps, as
// Kubernetes secrets and certbot's live/ directory do them). A changed pair that does not
// load — unparsable, key not matching, expired, not covering the names — is reported and
// the previous certificate keeps being served.
type fileIssuer struct {
	m *Manager

	mu      sync.Mutex
	hash    [32]byte // of the files last looked at
	served  [32]byte // of the files the served certificate came from
	readErr string   // the last read error, reported once until it changes
}

func (f *fileIssuer) retryBounds() (time.Duration, time.Duration) {
	return f.m.cfg.File.PollInterval, f.m.cfg.File.PollInterval
}

func (f *fileIssuer) nextCheck(_ *tls.Certificate, now time.Time) time.Time {
	return now.Add(f.m.cfg.File.PollInterval)
}

func (f *fileIssuer) read() (certPEM, keyPEM []byte, sum [32]byte, err error) {
	fc := f.m.cfg.File
	if certPEM, err = readLimited(fc.CertFile); err != nil {
		return nil, nil, sum, fmt.Errorf("certificate file: %w", err)
	}
	if keyPEM, err = readLimited(fc.KeyFile); err != nil {
		return nil, nil, sum, fmt.Errorf("key file: %w", err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	copy(sum[:], h.Sum(nil))
	return certPEM, keyPEM, sum, nil
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path) // #nosec G304 -- the operator's configured certificate path
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a certificate or key file", path, maxPEMFile)
	}
	return b, nil
}

// restore loads the files at start; a pair that cannot be used at all is an error (the
// edge has nothing else to serve), an expired or mismatching one is served and reported.
func (f *fileIssuer) restore(s *slot) (*tls.Certificate, error) {
	certPEM, keyPEM, sum, err := f.read()
	if err != nil {
		return nil, f.describe(err)
	}
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, f.describe(err)
	}
	f.mu.Lock()
	f.hash, f.served = sum, sum
	f.mu.Unlock()
	if err := f.validate(c, s); err != nil {
		s.lastErr = f.describe(err)
	}
	return c, nil
}

// obtain reloads the files if they changed.
func (f *fileIssuer) obtain(_ context.Context, s *slot) (*tls.Certificate, error) {
	certPEM, keyPEM, sum, err := f.read()
	f.mu.Lock()
	if err != nil {
		repeated := err.Error() == f.readErr
		f.readErr = err.Error()
		f.mu.Unlock()
		if repeated {
			return nil, errUnchanged
		}
		return nil, f.describe(fmt.Errorf("%w (the previous certificate keeps being served)", err))
	}
	hadReadErr := f.readErr != ""
	f.readErr = ""
	same := sum == f.hash
	backToServed := sum == f.served && (!same || hadReadErr)
	// Remember bad content too: it is reported once, not on every poll, and the error
	// stays in the status until the files change.
	f.hash = sum
	f.mu.Unlock()
	if backToServed {
		// The files are again what is being served (a bad edit was undone): that is a
		// success, which clears the reported error.
		if c := s.currentCert(f.m); c != nil {
			return c, nil
		}
	}
	if same {
		return nil, errUnchanged
	}
	c, err := parseKeyPair(certPEM, keyPEM)
	if err == nil {
		err = f.validate(c, s)
	}
	if err != nil {
		return nil, f.describe(fmt.Errorf("new files not loaded: %w (the previous certificate keeps being served)", err))
	}
	f.mu.Lock()
	f.served = sum
	f.mu.Unlock()
	return c, nil
}

func (f *fileIssuer) validate(c *tls.Certificate, s *slot) error {
	now := f.m.clock.Now()
	switch {
	case now.After(c.Leaf.NotAfter):
		return fmt.Errorf("certificate expired on %s", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Leaf.NotBefore):
		return fmt.Errorf("certificate is not valid before %s", c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if missing := uncovered(c.Leaf, s.names); len(missing) > 0 {
		return fmt.Errorf("certificate is not valid for %v (it names %v)", missing, c.Leaf.DNSNames)
	}
	return nil
}

func (f *fileIssuer) describe(err error) error {
	return fmt.Errorf("file: %s + %s: %w", f.m.cfg.File.CertFile, f.m.cfg.File.KeyFile, err)
}
