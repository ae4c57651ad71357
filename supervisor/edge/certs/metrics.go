package certs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names (the alerts issue builds rules on them).
const (
	MetricRenewalFailures = "corpintel_cert_renewal_failures_total"
	MetricRenewals        = "corpintel_cert_renewals_total"
	MetricExpiry          = "corpintel_cert_expiry_timestamp_seconds"
	MetricProbeSuccess    = "corpintel_cert_probe_success"
)

type metrics struct {
	failures *prometheus.CounterVec
	renewals *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRenewalFailures,
			Help: "Failed attempts to obtain, renew or reload a certificate (ACME order, self-signed leaf, operator file), by certificate name.",
		}, []string{"name"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRenewals,
			Help: "Certificates obtained, renewed or reloaded, by certificate name.",
		}, []string{"name"}),
	}
	var err error
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.renewals, err = register(reg, m.renewals); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg (nil: nothing), reusing an identical collector that is already
// registered (a Manager recreated in the same process keeps counting on the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("certs: register metrics: %w", err)
	}
	return c, nil
}
