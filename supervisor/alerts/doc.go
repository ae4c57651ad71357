// Package alerts is the supervisor's built-in alerting: rules over a snapshot of samples,
// Alertmanager's semantics for what gets sent (pending → firing → resolved with `for`
// durations, grouping with group_wait / group_interval / repeat_interval, inhibition,
// silences, a notification log), and the [Engine] that runs it on a clock and hands
// notifications to the channels of package notify.
//
// The decision is a pure function, [Evaluator.Evaluate]: (rules, samples, state, clock)
// → (new state, [Plan]), golden-tested through Plan's stable String like the reconcile
// plan. Everything impure sits around it in the engine: reading samples and the
// operation lock, persisting state in the [Store] (SQLite, [Schema]), delivering, and
// recording what was delivered. A notification counts as sent only once a channel
// accepted it; a delivery cut short by a restart is sent again (at least once, never
// silently lost).
//
// The collectors fill [Samples] with the metrics named in metrics.go; the same names on
// the supervisor's /metrics make [ExportPrometheusRules] an equivalent rule file for an
// operator's own Prometheus.
package alerts
