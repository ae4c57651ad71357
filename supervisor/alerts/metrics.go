package alerts

import "slices"

// The metric names the built-in rules read from [Samples]. The collectors (supervisor/health)
// fill them under these names, and the supervisor's /metrics should expose the same names,
// so [ExportPrometheusRules] works against an external Prometheus too.
//
// "History" says how many past points a rule needs; a gauge needs only the current one.
// Timestamps are Unix seconds. A metric that is absent means "not known" (not zero): for
// the timestamp metrics absent means "never happened".
const (
	// MetricAPIHealthFailures: consecutive failed health checks of the API (GET /health
	// through the supervisor's proxy), 0 after a success. No labels. Gauge.
	MetricAPIHealthFailures = "corpintel_api_health_consecutive_failures"

	// MetricAPIRequests: requests answered, per replica and status class. Labels:
	// replica ("1", "2", …, and "edge" for requests the edge answered itself because no
	// replica did: 502/503/504), code_class ("2xx", "3xx", "4xx", "5xx"). Counter, one
	// series per replica, NEVER pre-summed across replicas (a replaced replica restarts
	// from zero; see [Increase]). History: the error-rate window (5m) at the scrape
	// interval.
	MetricAPIRequests = "corpintel_api_requests_total"

	// MetricDBQueryP95: p95 of the API's database query durations over the last 5 minutes,
	// in seconds, from the query-duration histogram of all replicas. No labels. Gauge.
	MetricDBQueryP95 = "corpintel_db_query_duration_p95_seconds"

	// MetricDiskUsedRatio: used / size of a filesystem, 0…1. Label mount (the mount point:
	// "/", the state dir's, the Docker data root's, the backup root's). Gauge. History:
	// the forecast window (6h) at 1-minute resolution or better for DiskFullForecast.
	MetricDiskUsedRatio = "corpintel_disk_used_ratio"

	// MetricMemoryUsedRatio: host memory in use (MemTotal - MemAvailable) / MemTotal.
	// No labels. Gauge.
	MetricMemoryUsedRatio = "corpintel_memory_used_ratio"

	// MetricServiceUp: the supervisor's own probe of a stateful service (PostgreSQL
	// startup message, Redis PING, MinIO /minio/health/live) answered: 1, else 0. Label
	// service ("postgres", "redis", "minio"). Gauge.
	MetricServiceUp = "corpintel_service_up"

	// MetricDockerUp: the Docker Engine answered the last ping: 1, else 0. Gauge.
	MetricDockerUp = "corpintel_docker_up"

	// MetricBackupLastSuccess: when the newest backup that passed verification finished.
	// Absent until the first one (BackupFailed then fires 25h after the supervisor first
	// evaluates). Gauge.
	MetricBackupLastSuccess = "corpintel_backup_last_success_timestamp_seconds"

	// MetricBackupVerifyLastSuccess / MetricBackupVerifyLastFailure: when a backup's
	// verification last passed / last failed. Gauges.
	MetricBackupVerifyLastSuccess = "corpintel_backup_verify_last_success_timestamp_seconds"
	MetricBackupVerifyLastFailure = "corpintel_backup_verify_last_failure_timestamp_seconds"

	// MetricOffsiteLastSuccess / MetricOffsiteLastFailure: when the offsite copy last
	// succeeded / failed. Absent when no offsite target is configured. Gauges.
	MetricOffsiteLastSuccess = "corpintel_offsite_last_success_timestamp_seconds"
	MetricOffsiteLastFailure = "corpintel_offsite_last_failure_timestamp_seconds"

	// MetricDrillLastSuccess: when the newest restore drill that verified its restore
	// finished. Absent until the first one. Gauge.
	MetricDrillLastSuccess = "corpintel_restore_drill_last_success_timestamp_seconds"

	// MetricWALArchiveLag: seconds since PostgreSQL last archived a WAL segment while
	// newer WAL exists (0 when caught up). Absent when WAL archiving is not configured.
	// Gauge.
	MetricWALArchiveLag = "corpintel_postgres_wal_archive_lag_seconds"

	// MetricCertExpiry: NotAfter of the certificate the edge serves. Label name (the
	// certificate's primary DNS name). Gauge.
	MetricCertExpiry = "corpintel_cert_expiry_timestamp_seconds"

	// MetricCertRenewalLastSuccess / MetricCertRenewalLastFailure: when renewing the
	// certificate last succeeded / failed. Label name. Gauges.
	MetricCertRenewalLastSuccess = "corpintel_cert_renewal_last_success_timestamp_seconds"
	MetricCertRenewalLastFailure = "corpintel_cert_renewal_last_failure_timestamp_seconds"

	// MetricContainerRestarts: restarts of a stack container's replica — Docker's
	// RestartCount plus one for each replacement of the container (Docker never
	// restarts a killed container; the supervisor replaces it). Labels service
	// ("postgres", "redis", "minio", "api") and replica ("" for single services). Counter
	// (from zero when the supervisor starts). History: the restart-loop window (15m).
	MetricContainerRestarts = "corpintel_container_restarts_total"
)

// MetricNames lists every metric the built-in rules read, sorted.
func MetricNames() []string {
	names := []string{
		MetricAPIHealthFailures, MetricAPIRequests, MetricBackupLastSuccess, MetricBackupVerifyLastFailure,
		MetricBackupVerifyLastSuccess, MetricCertExpiry, MetricCertRenewalLastFailure, MetricCertRenewalLastSuccess,
		MetricContainerRestarts, MetricDBQueryP95, MetricDiskUsedRatio, MetricDockerUp, MetricMemoryUsedRatio,
		MetricOffsiteLastFailure, MetricOffsiteLastSuccess, MetricWALArchiveLag, MetricDrillLastSuccess,
		MetricServiceUp,
	}
	slices.Sort(names)
	return names
}
