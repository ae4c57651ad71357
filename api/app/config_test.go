package app

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvDefaultsAndOverrides(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	c, err := FromEnv(envOf(map[string]string{
		"CORPINTEL_PG_PASSWORD_FILE": pw, "CORPINTEL_PG_PORT": "6543", "CORPINTEL_PG_POOL_MAX": "7",
		"CORPINTEL_CORS_ORIGINS": "https://a.example, https://b.example,", "CORPINTEL_UPLOAD_MAX_BYTES": "1024",
		"CORPINTEL_ACCESS_TTL": "5m", "CORPINTEL_PROFILE": "prod", "CORPINTEL_JWT_KEK": strings.Repeat("k", 32),
		"CORPINTEL_REDIS_PASSWORD_FILE": pw,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PGPassword != "s3cret" || c.RedisPassword != "s3cret" || c.PGPort != 6543 || c.PGPoolMax != 7 || c.UploadMaxBytes != 1024 ||
		c.AccessTTL != 5*time.Minute || len(c.CORSOrigins) != 2 || c.Profile != "prod" || c.Listen != ":8080" {
		t.Fatalf("unexpected config %+v", c)
	}
	if err := c.RequireServing(); err != nil {
		t.Fatal(err)
	}
}

func TestFromEnvErrors(t *testing.T) {
	_, err := FromEnv(envOf(map[string]string{
		"CORPINTEL_PG_PORT": "99999", "CORPINTEL_PG_POOL_MAX": "x", "CORPINTEL_ACCESS_TTL": "-1s",
		"CORPINTEL_PROFILE": "qa", "CORPINTEL_LOG_LEVEL": "loud", "CORPINTEL_UPLOAD_MAX_BYTES": "0",
		"CORPINTEL_PG_PASSWORD_FILE": "/nonexistent/pw",
	}))
	if err == nil {
		t.Fatal("bad environment accepted")
	}
	for _, want := range []string{"CORPINTEL_PG_PORT", "CORPINTEL_PG_POOL_MAX", "CORPINTEL_ACCESS_TTL", "CORPINTEL_PROFILE",
		"CORPINTEL_LOG_LEVEL", "CORPINTEL_UPLOAD_MAX_BYTES", "CORPINTEL_PG_PASSWORD_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	c, _ := FromEnv(envOf(nil))
	if err := c.RequireServing(); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("RequireServing = %v", err)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	gw := func() (net.IP, error) { return net.ParseIP("172.28.0.1"), nil }
	noGW := func() (net.IP, error) { return nil, errors.New("no default route") }
	for _, c := range []struct {
		in   string
		gw   func() (net.IP, error)
		want string
		err  bool
	}{
		{"", gw, "172.28.0.1/32", false},
		{"gateway", gw, "172.28.0.1/32", false},
		{"gateway", noGW, "", false},
		{"none", gw, "", false},
		{"10.0.0.0/8, 192.0.2.7 ,2001:db8::1", gw, "10.0.0.0/8 192.0.2.7/32 2001:db8::1/128", false},
		{"example.com", gw, "", true},
	} {
		nets, err := ParseTrustedProxies(c.in, c.gw)
		var got []string
		for _, n := range nets {
			got = append(got, n.String())
		}
		if (err != nil) != c.err || strings.Join(got, " ") != c.want {
			t.Errorf("ParseTrustedProxies(%q) = %v %v, want %q", c.in, got, err, c.want)
		}
	}
	table := "Iface\tDestination\tGateway \tFlags\nnet1\t001CA8C0\t00000000\t0001\neth0\t00000000\t01001CAC\t0003\n"
	if ip, err := parseRouteGateway(table); err != nil || ip.String() != "172.28.0.1" {
		t.Errorf("gateway %v %v", ip, err)
	}
	if _, err := parseRouteGateway("Iface\tDestination\tGateway\n"); err == nil {
		t.Error("no default route accepted")
	}
	if _, err := DefaultGateway(); err != nil && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no default route") {
		t.Errorf("DefaultGateway: %v", err)
	}
}
