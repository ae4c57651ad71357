package auth

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	logins            *prometheus.CounterVec
	verifications     prometheus.Counter
	refreshReuse      prometheus.Counter
	maintenanceErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corpintel_api_auth_logins_total", Help: "Password logins by outcome (success, failure, throttled).",
		}, []string{"outcome"}),
		verifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corpintel_api_auth_token_verifications_total",
			Help: "Access tokens verified from scratch (signature + database check): cache misses and invalid tokens.",
		}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corpintel_api_auth_refresh_reuse_total", Help: "Spent refresh tokens presented again (each revoked a session).",
		}),
		maintenanceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corpintel_api_auth_key_maintenance_errors_total", Help: "Failed signing-key rotation/retirement passes.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.logins, m.verifications, m.refreshReuse, m.maintenanceErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue // a second Service in one process (tests) shares the collectors' names
			}
			return nil, fmt.Errorf("auth: register metrics: %w", err)
		}
	}
	return m, nil
}
