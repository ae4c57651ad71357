package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOVersion is the MinIO server release scripts/install-deps.sh builds.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// defaultMinIOPath is where scripts/install-deps.sh puts the MinIO server binary.
func defaultMinIOPath() string {
	cache := os.Getenv("CORPINTEL_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		cache = filepath.Join(home, ".cache", "corpintel")
	}
	return filepath.Join(cache, "tools", "minio-"+MinIOVersion, "minio")
}

// MinIOBucket is one test's bucket (already created) on a MinIO server.
type MinIOBucket struct {
	Endpoint  string // 127.0.0.1:port, plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string
	UseTLS    bool // always false

	srv *minioServer
}

// Client returns a minio-go client for the server.
func (m *MinIOBucket) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := newMinIOClient(m.Endpoint, m.AccessKey, m.SecretKey)
	if err != nil {
		t.Fatalf("testenv: minio client: %v", err)
	}
	return c
}

// Stop shuts the MinIO server down. Only private servers (MinIOServer) can be stopped.
func (m *MinIOBucket) Stop(t testing.TB) {
	t.Helper()
	if m.srv.shared {
		t.Fatal("testenv: ", errShared)
	}
	m.srv.proc.stop()
}

// MinIO returns a fresh bucket on the MinIO server shared by this test binary.
func MinIO(t testing.TB) *MinIOBucket {
	t.Helper()
	srv, err := sharedMinIO.get(func() (*minioServer, error) { return startMinIO(true) })
	Require(t, "minio", err)
	return srv.newBucket(t)
}

// MinIOServer starts a private MinIO server for this test (stopped when the test ends)
// and returns a fresh bucket on it.
func MinIOServer(t testing.TB) *MinIOBucket {
	t.Helper()
	srv, err := startMinIO(false)
	Require(t, "minio", err)
	t.Cleanup(srv.proc.stop)
	return srv.newBucket(t)
}

var sharedMinIO lazy[minioServer]

type minioServer struct {
	proc      *server
	endpoint  string
	accessKey string
	secretKey string
	shared    bool
}

func newMinIOClient(endpoint, accessKey, secretKey string) (*minio.Client, error) {
	return minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Secure: false})
}

func (s *minioServer) newBucket(t testing.TB) *MinIOBucket {
	t.Helper()
	m := &MinIOBucket{
		Endpoint: s.endpoint, AccessKey: s.accessKey, SecretKey: s.secretKey,
		Bucket: resourceName("t", nextSeq(), t.Name(), "-", 63), srv: s,
	}
	c := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, m.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", m.Bucket, err)
	}
	return m
}

func startMinIO(shared bool) (*minioServer, error) {
	bin, err := lookBin("CORPINTEL_MINIO_BIN", "minio", defaultMinIOPath())
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := runMinIO(bin)
		if err == nil {
			s.shared = shared
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func runMinIO(bin string) (*minioServer, error) {
	dir, err := serverDir("minio")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &minioServer{
		endpoint:  net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		accessKey: "testenv-" + randomHex(6),
		secretKey: randomHex(20),
	}
	cmd := exec.Command(bin, "server", "--quiet",
		"--address", s.endpoint,
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(consolePort)),
		filepath.Join(dir, "data"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.accessKey,
		"MINIO_ROOT_PASSWORD="+s.secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	)
	proc, err := startServer("minio", dir, cmd, syscall.SIGTERM, nil)
	if err != nil {
		return nil, err
	}
	s.proc = proc
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitReady(proc, 60*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.endpoint+"/minio/health/ready", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		proc.stop()
		return nil, fmt.Errorf("minio: %w", err)
	}
	return s, nil
}
