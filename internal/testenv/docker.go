package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Docker checks that a Docker Engine answers on $DOCKER_HOST (unix:// or tcp://) or
// /var/run/docker.sock; it skips or fails the test (see Require) when it does not.
func Docker(t testing.TB) {
	t.Helper()
	_, err := dockerCheck.get(func() (*struct{}, error) { return &struct{}{}, pingDocker(os.Getenv("DOCKER_HOST")) })
	Require(t, "docker", err)
}

var dockerCheck lazy[struct{}]

// pingDocker calls the engine's /_ping endpoint.
func pingDocker(host string) error {
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	transport := &http.Transport{}
	base := ""
	switch {
	case strings.HasPrefix(host, "unix://"):
		sock := strings.TrimPrefix(host, "unix://")
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://docker"
	case strings.HasPrefix(host, "tcp://"):
		base = "http://" + strings.TrimPrefix(host, "tcp://")
	default:
		return fmt.Errorf("DOCKER_HOST=%s: only unix:// and tcp:// are supported", host)
	}
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	defer transport.CloseIdleConnections()
	resp, err := client.Get(base + "/_ping") // #nosec G704 -- the engine address is the test machine's own DOCKER_HOST
	if err != nil {
		return fmt.Errorf("ping docker at %s: %w", host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping docker at %s: %s %s", host, resp.Status, body)
	}
	if strings.TrimSpace(string(body)) != "OK" {
		return errors.New("ping docker at " + host + ": unexpected answer " + string(body))
	}
	return nil
}
