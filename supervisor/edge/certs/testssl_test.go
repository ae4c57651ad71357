package certs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// testsslFinding is one entry of testssl.sh's --jsonfile output.
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// aeadCipher matches the OpenSSL names of AEAD suites (the only ones allowed).
var aeadCipher = regexp.MustCompile(`GCM|CHACHA20-POLY1305|CCM|TLS_AES_|TLS_CHACHA20_`)

// TestTestSSLScan runs a real testssl.sh scan against an HTTPS server on 127.0.0.1 with
// the edge's TLS config and HSTS, trusting the self-signed CA, and fails on any weak
// protocol or cipher, any HIGH/CRITICAL finding, or missing HSTS.
func TestTestSSLScan(t *testing.T) {
	if testing.Short() {
		t.Skip("testssl.sh scan takes about a minute")
	}
	bin, err := testenv.TestSSL()
	testenv.Require(t, "testssl.sh", err)

	const name = "edge.corpintel.test"
	dir := t.TempDir()
	m, err := New(Config{Mode: ModeSelfSigned, Names: []string{name, "127.0.0.1"}, StateDir: filepath.Join(dir, "state")},
		Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := startEdge(t, m, nil, 0, 0)
	caPEM, err := m.CACertificatePEM()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(e.tlsAddr, ":")
	jsonFile := filepath.Join(dir, "testssl.json")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Protocols, cipher categories, per-protocol cipher lists, server defaults, headers
	// and vulnerabilities; no DNS (the name is not in DNS: --ip pins the address, and
	// --nodns none skips the CAA/rDNS lookups). --fast skips only the slow duplicate
	// checks of the cipher enumeration.
	cmd := exec.CommandContext(ctx, bin,
		"--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
		"--ip", "127.0.0.1", "--add-ca", caFile,
		"--protocols", "--std", "--each-cipher", "--server-defaults", "--headers", "--vulnerable",
		"--jsonfile", jsonFile,
		"https://"+name+":"+port+"/")
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("testssl.sh took %s", time.Since(start).Round(time.Second))
	raw, readErr := os.ReadFile(jsonFile)
	if readErr != nil {
		t.Fatalf("testssl.sh wrote no JSON (%v; exit %v): %s", readErr, err, tail(out, 3000))
	}
	var findings []testsslFinding
	if err := json.Unmarshal(raw, &findings); err != nil {
		t.Fatalf("parse testssl.sh JSON: %v: %s", err, tail(raw, 2000))
	}
	if len(findings) < 20 {
		t.Fatalf("only %d findings: the scan did not run (exit %v): %s", len(findings), err, tail(out, 3000))
	}
	problems := evaluateTestSSL(findings)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Logf("testssl.sh output:\n%s", tail(out, 6000))
	}
}

// evaluateTestSSL applies the edge's policy to a scan: what must not be there.
func evaluateTestSSL(findings []testsslFinding) []string {
	var problems []string
	byID := map[string]testsslFinding{}
	ciphers := 0
	for _, f := range findings {
		byID[f.ID] = f
		switch f.Severity {
		case "HIGH", "CRITICAL":
			problems = append(problems, "severity "+f.Severity+": "+f.ID+": "+f.Finding)
		case "FATAL":
			problems = append(problems, "scan error: "+f.ID+": "+f.Finding)
		}
		if strings.HasPrefix(f.ID, "cipher-") || strings.HasPrefix(f.ID, "cipher_x") {
			ciphers++
			if !aeadCipher.MatchString(f.Finding) {
				problems = append(problems, "non-AEAD cipher offered: "+f.ID+": "+f.Finding)
			}
			if regexp.MustCompile(`RC4|3DES|DES-CBC|CBC|NULL|EXP`).MatchString(f.Finding) {
				problems = append(problems, "weak cipher offered: "+f.ID+": "+f.Finding)
			}
		}
	}
	for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1"} {
		if f, ok := byID[id]; !ok || !strings.Contains(f.Finding, "not offered") {
			problems = append(problems, id+" must not be offered: "+f.Finding)
		}
	}
	for _, id := range []string{"TLS1_2", "TLS1_3"} {
		if f, ok := byID[id]; !ok || !strings.HasPrefix(f.Finding, "offered") {
			problems = append(problems, id+" must be offered: "+f.Finding)
		}
	}
	for _, id := range []string{"cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "RC4"} {
		if f, ok := byID[id]; !ok || !strings.Contains(f.Finding, "not offered") && !strings.Contains(f.Finding, "not vulnerable") && !strings.Contains(f.Finding, "no RC4") {
			problems = append(problems, id+" must not be offered: "+f.Finding)
		}
	}
	if f, ok := byID["HSTS_time"]; !ok || f.Severity != "OK" || !strings.Contains(f.Finding, "63072000") {
		problems = append(problems, "HSTS missing or short: "+f.Severity+" "+f.Finding)
	}
	if f, ok := byID["HSTS_subdomains"]; !ok || f.Severity != "OK" {
		problems = append(problems, "HSTS without includeSubDomains: "+f.Finding)
	}
	if f, ok := byID["cert_chain_of_trust"]; !ok || f.Severity != "OK" {
		problems = append(problems, "certificate not trusted with the CA added: "+f.Finding)
	}
	if ciphers == 0 {
		problems = append(problems, "no per-cipher findings: the cipher enumeration did not run")
	}
	return problems
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// TestEvaluateTestSSL proves the scan's verdict catches what it must (the scan itself
// only sees a good server).
func TestEvaluateTestSSL(t *testing.T) {
	good := []testsslFinding{
		{"SSLv2", "OK", "not offered"}, {"SSLv3", "OK", "not offered"}, {"TLS1", "INFO", "not offered"},
		{"TLS1_1", "INFO", "not offered"}, {"TLS1_2", "OK", "offered"}, {"TLS1_3", "OK", "offered with final"},
		{"cipherlist_NULL", "OK", "not offered"}, {"cipherlist_aNULL", "OK", "not offered"},
		{"cipherlist_EXPORT", "OK", "not offered"}, {"cipherlist_LOW", "OK", "not offered"},
		{"cipherlist_3DES_IDEA", "INFO", "not offered"}, {"cipherlist_AVERAGE", "INFO", "not offered"},
		{"RC4", "OK", "not vulnerable"}, {"HSTS_time", "OK", "730 days (=63072000 seconds)"},
		{"HSTS_subdomains", "OK", "includes subdomains"}, {"cert_chain_of_trust", "OK", "passed."},
		{"cipher_xc02b", "INFO", "xc02b ECDHE-ECDSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128"},
		{"TLS_session_ticket", "LOW", "valid for 604800 seconds (>daily)"},
	}
	if p := evaluateTestSSL(good); len(p) != 0 {
		t.Fatalf("good scan judged bad: %v", p)
	}
	bad := []struct {
		name    string
		replace testsslFinding
	}{
		{"TLS 1.0", testsslFinding{"TLS1", "LOW", "offered (deprecated)"}},
		{"TLS 1.1", testsslFinding{"TLS1_1", "LOW", "offered (deprecated)"}},
		{"CBC cipher", testsslFinding{"cipher_xc009", "INFO", "xc009 ECDHE-ECDSA-AES128-SHA ECDH 253 AES 128"}},
		{"3DES", testsslFinding{"cipherlist_3DES_IDEA", "MEDIUM", "offered"}},
		{"HIGH", testsslFinding{"heartbleed", "HIGH", "VULNERABLE"}},
		{"CRITICAL", testsslFinding{"ROBOT", "CRITICAL", "VULNERABLE"}},
		{"no HSTS", testsslFinding{"HSTS_time", "HIGH", "not offered"}},
		{"untrusted", testsslFinding{"cert_chain_of_trust", "CRITICAL", "failed (self signed)"}},
	}
	for _, b := range bad {
		fs := append([]testsslFinding(nil), good...)
		replaced := false
		for i := range fs {
			if fs[i].ID == b.replace.ID {
				fs[i], replaced = b.replace, true
			}
		}
		if !replaced {
			fs = append(fs, b.replace)
		}
		if p := evaluateTestSSL(fs); len(p) == 0 {
			t.Errorf("%s not caught", b.name)
		}
	}
}
