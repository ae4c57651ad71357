package health

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corpintel/corpintel/supervisor/alerts"
)

// benchValues is one cycle of a busy appliance: ~150 series like the live stack's
// (host, 4 mounts, 3 API replicas, 6 containers, the services).
func benchValues(i int) []value {
	var vs []value
	add := func(f *Family, v float64, labels ...string) { vs = append(vs, value{fam: f, labels: labels, v: v}) }
	for _, m := range cpuModes {
		add(famCPUSeconds, float64(i), m)
	}
	for _, mount := range []string{"/", "/var/lib/docker", "/var/lib/corpintel", "/var/backups"} {
		add(famDiskUsed, 0.5+float64(i%100)/1000, mount)
		add(famDiskSize, 1e12, mount)
		add(famDiskAvail, 5e11, mount)
	}
	for r := 1; r <= 3; r++ {
		for _, c := range apiCodeClasses {
			add(famAPIRequests, float64(i*r), fmt.Sprint(r), c)
		}
	}
	for _, svc := range []string{"postgres", "redis", "minio", "api/1", "api/2", "api/3"} {
		for _, f := range []*Family{famContainerUp, famContainerHealthy, famContainerRestart, famContainerCPU, famContainerCPUUsed, famContainerMem, famContainerMemLimit} {
			add(f, float64(i), svc, "")
		}
	}
	for len(vs) < 150 {
		add(famTestGauge, float64(i), fmt.Sprint(len(vs)))
	}
	return dedupe(vs)
}

var benchNeeds = map[string]time.Duration{alerts.MetricAPIRequests: 5 * time.Minute, alerts.MetricContainerRestarts: 15 * time.Minute,
	alerts.MetricDiskUsedRatio: 6 * time.Hour}

// fullHistory is 24 h of 15-second cycles.
func fullHistory() (*history, time.Time) {
	h := newHistory(time.Minute, 24*time.Hour, 15*time.Minute+30*time.Second, 15*time.Second)
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 24 * 60 * 4 {
		h.record(at, benchValues(i))
		at = at.Add(15 * time.Second)
	}
	return h, at.Add(-15 * time.Second)
}

// BenchmarkSamples is what every evaluation costs on the metrics side: the rules'
// snapshot from a full day of history.
func BenchmarkSamples(b *testing.B) {
	h, at := fullHistory()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = h.samples(at, benchNeeds)
	}
}

// BenchmarkRecord is the buffer's share of a collection cycle.
func BenchmarkRecord(b *testing.B) {
	h, at := fullHistory()
	vs := benchValues(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		at = at.Add(15 * time.Second)
		h.record(at, vs)
	}
}

// BenchmarkGather is one scrape of the collectors' part of /metrics.
func BenchmarkGather(b *testing.B) {
	src := funcSource{"bench", func(bt *Batch) error {
		for _, v := range benchValues(1) {
			bt.add(v.fam, v.v, v.labels...)
		}
		return nil
	}}
	m, err := NewMetrics(MetricsOptions{Sources: []Source{src}})
	if err != nil {
		b.Fatal(err)
	}
	m.CollectOnce(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHistoryFootprint reports the heap a full day of history holds.
func BenchmarkHistoryFootprint(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h, _ := fullHistory()
		runtime.GC()
		runtime.ReadMemStats(&after)
		series, points := h.size()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		b.ReportMetric(float64(series), "series")
		b.ReportMetric(float64(points), "points")
		runtime.KeepAlive(h)
	}
}
