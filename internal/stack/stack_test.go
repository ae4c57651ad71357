package stack

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ContainerName("corporate-intel", ServicePostgres, 1), "corporate-intel-postgres"},
		{ContainerName("p", ServiceAPI, 3), "p-api-3"},
		{JobContainerName("p", JobMigrate), "p-job-migrate"},
		{NetworkName("p"), "p_corpintel"},
		{VolumeName("p", ServiceMinIO), "p_minio_data"},
		{StateDir("p"), "/var/lib/corpintel/p"},
		{SocketPath("p"), "/run/corpintel/p.sock"},
		{SecretPath(SecretJWTKEK), "/run/secrets/jwt_kek"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestServices(t *testing.T) {
	if !Stateful(ServicePostgres) || Stateful(ServiceAPI) || Stateful("grafana") {
		t.Error("Stateful")
	}
	if err := CheckService("grafana"); err == nil || !strings.Contains(err.Error(), "postgres, redis, minio, api") {
		t.Errorf("CheckService: %v", err)
	}
	for _, svc := range Services {
		if CheckService(svc) != nil || len(ServiceSecrets[svc]) == 0 || SecretUIDs[svc] == 0 {
			t.Errorf("%s: incomplete facts", svc)
		}
	}
}

func TestValidateScale(t *testing.T) {
	for _, c := range []struct {
		svc  string
		n    int
		want string
	}{
		{ServiceAPI, 0, ""},
		{ServiceAPI, MaxScale, ""},
		{ServiceAPI, MaxScale + 1, "between 0 and 16"},
		{ServiceAPI, -1, "between 0 and 16"},
		{ServiceRedis, 2, "only api can be scaled"},
		{"web", 1, "unknown service"},
	} {
		err := ValidateScale(c.svc, c.n)
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateScale(%s, %d) = %v, want %q", c.svc, c.n, err, c.want)
		}
	}
}
