package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// MinIOOptions configure the MinIO collector.
type MinIOOptions struct {
	Desired    Desired
	StartGrace time.Duration
	Target     Target
	Probe      Prober
	Port       int
	// AccessKey and SecretKey are MinIO's root credentials: they sign the short-lived
	// bearer token its metrics endpoint wants (what `mc admin prometheus generate`
	// makes).
	AccessKey, SecretKey Secret
	Now                  func() time.Time
}

// MinIO collects MinIO's availability and its usable free and total space, from MinIO's
// own cluster metrics (its view of its drives, whatever volume or disk holds them).
type MinIO struct {
	o      MinIOOptions
	grace  startGrace
	client *http.Client
}

// NewMinIO returns the MinIO collector.
func NewMinIO(o MinIOOptions) *MinIO {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MinIO{o: o, grace: startGrace{grace: o.StartGrace, now: o.Now}, client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1, IdleConnTimeout: time.Minute}}}
}

// Name implements Source.
func (m *MinIO) Name() string { return "minio" }

// minioMetricsPath is MinIO's cluster metrics (v2), which carry the capacity.
const minioMetricsPath = "/minio/v2/metrics/cluster"

// Collect implements Source.
func (m *MinIO) Collect(ctx context.Context, b *Batch) error {
	ip, err := probeUp(ctx, b, "minio", m.o.Desired, &m.grace, m.o.Target, m.o.Probe)
	if err != nil {
		return quiet(err)
	}
	token, err := m.token()
	if err != nil {
		return fmt.Errorf("minio: metrics token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, strconv.Itoa(m.o.Port))+minioMetricsPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("minio: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("minio: metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("minio: parse metrics: %w", err)
	}
	free, okF := firstGauge(fams["minio_cluster_capacity_usable_free_bytes"])
	total, okT := firstGauge(fams["minio_cluster_capacity_usable_total_bytes"])
	if !okF || !okT {
		return fmt.Errorf("minio: %s has no usable capacity metrics", minioMetricsPath)
	}
	b.add(famMinIOFree, free)
	b.add(famMinIOTotal, total)
	return nil
}

func (m *MinIO) token() (string, error) {
	ak, err := m.o.AccessKey()
	if err != nil {
		return "", err
	}
	sk, err := m.o.SecretKey()
	if err != nil {
		return "", err
	}
	now := m.o.Now()
	claims := jwt.RegisteredClaims{Subject: ak, Issuer: "prometheus", ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute))}
	return jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(sk))
}

func firstGauge(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.Metric) == 0 {
		return 0, false
	}
	m := f.Metric[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	}
	return 0, false
}

// Pinger is the Docker Engine's ping (internal/docker.Client).
type Pinger interface {
	Ping(ctx context.Context) error
}

var famDockerUp = gauge(alerts.MetricDockerUp, "1 when the Docker Engine answered the supervisor's ping, else 0.")

// Docker reports whether the Docker Engine answers.
type Docker struct{ Engine Pinger }

// Name implements Source.
func (d Docker) Name() string { return "docker" }

// Collect implements Source.
func (d Docker) Collect(ctx context.Context, b *Batch) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Engine.Ping(ctx); err != nil {
		b.add(famDockerUp, 0)
		return fmt.Errorf("docker: %w", err)
	}
	b.add(famDockerUp, 1)
	return nil
}
