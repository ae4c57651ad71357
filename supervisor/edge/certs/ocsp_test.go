package certs

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspResponder is a real OCSP responder (x/crypto/ocsp) for the test CA on 127.0.0.1.
type ocspResponder struct {
	ca       *testCA
	status   atomic.Int32 // ocsp.Good / ocsp.Revoked, or -1 for HTTP 500
	requests atomic.Int32
	srv      *httptest.Server
}

func newOCSPResponder(t *testing.T, ca *testCA) *ocspResponder {
	r := &ocspResponder{ca: ca}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		body, _ := io.ReadAll(req.Body)
		q, err := ocsp.ParseRequest(body)
		if err != nil || r.status.Load() < 0 {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: int(r.status.Load()), SerialNumber: q.SerialNumber,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(4 * 24 * time.Hour),
			RevokedAt: now.Add(-time.Hour),
		}, ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func newOCSPManager(t *testing.T, ca *testCA, responder string, clock Clock) *Manager {
	t.Helper()
	dir := t.TempDir()
	c, k, _ := ca.issue(t, leafOpts{names: []string{"edge.corpintel.test"}, ocsp: responder})
	writeFile(t, filepath.Join(dir, "c"), c)
	writeFile(t, filepath.Join(dir, "k"), k)
	m, err := New(Config{Mode: ModeFile, Names: []string{"edge.corpintel.test"}, StateDir: filepath.Join(dir, "s"),
		File: FileConfig{CertFile: filepath.Join(dir, "c"), KeyFile: filepath.Join(dir, "k")}}, Deps{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func stapleOf(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "edge.corpintel.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().OCSPResponse
}

func TestOCSPStapling(t *testing.T) {
	ca := newTestCA(t)
	r := newOCSPResponder(t, ca)
	clock := newFakeClock(time.Now())
	m := newOCSPManager(t, ca, r.srv.URL, clock)
	e := startEdge(t, m, nil, 0, 0)
	if len(stapleOf(t, e.tlsAddr)) != 0 {
		t.Fatal("stapled before asking the responder")
	}
	m.maintain(context.Background())
	staple := stapleOf(t, e.tlsAddr)
	resp, err := ocsp.ParseResponse(staple, ca.cert)
	if err != nil || resp.Status != ocsp.Good {
		t.Fatalf("staple: %v %+v", err, resp)
	}
	if st := m.Status().Certificates[0]; !st.OCSPStapled || st.OCSPError != "" {
		t.Fatalf("status %+v", st)
	}
	// Not asked again before half of the response's validity.
	n := r.requests.Load()
	clock.Advance(time.Hour)
	m.maintain(context.Background())
	if r.requests.Load() != n {
		t.Fatal("asked the responder again too early")
	}

	// The responder breaks: serving goes on with the old staple, the error is shown.
	r.status.Store(-1)
	clock.Advance(3 * 24 * time.Hour)
	m.maintain(context.Background())
	if st := m.Status().Certificates[0]; !strings.Contains(st.OCSPError, "500") {
		t.Fatalf("responder failure not shown: %+v", st)
	}
	if len(stapleOf(t, e.tlsAddr)) == 0 {
		t.Fatal("handshake lost the staple because the responder failed")
	}

	// A revoked status is an error to act on, not a staple.
	r.status.Store(int32(ocsp.Revoked))
	clock.Advance(ocspRetry)
	m.maintain(context.Background())
	if st := m.Status().Certificates[0]; !strings.Contains(st.OCSPError, "not good") {
		t.Fatalf("revoked: %+v", st)
	}
}

func TestNoOCSPWithoutResponder(t *testing.T) {
	ca := newTestCA(t)
	r := newOCSPResponder(t, ca)
	m := newOCSPManager(t, ca, "", nil)
	m.maintain(context.Background())
	m.maintain(context.Background())
	if r.requests.Load() != 0 || m.Status().Certificates[0].OCSPStapled {
		t.Fatal("asked for OCSP although the certificate names no responder")
	}
	if !m.slots[0].ocspNext.IsZero() {
		t.Fatal("OCSP still scheduled")
	}
}
