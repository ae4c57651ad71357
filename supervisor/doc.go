// Package supervisor reconciles the corpintel stack (PostgreSQL, Redis, MinIO and N
// API replicas) against the Docker Engine: observe → plan → execute.
//
//   - [BuildSpec] derives the desired [Spec] from the config, secret file paths and
//     host facts (pure).
//   - Observe lists the project's objects by label into an [Observed] (the only reader
//     of Docker state).
//   - [BuildPlan] compares them and returns a [Plan] (pure, golden-tested; its String
//     is stable).
//   - Execute runs the plan's steps (the only writer of Docker state).
//
// Naming rules and labels are documented at [ContainerName] and [LabelProject].
// Containers of other projects and unlabelled objects are never touched; volumes and
// networks are never removed by a plan.
//
// # Reconciler API (used by the daemon loop, the proxy and the local API)
//
//	OpenReconciler(ctx, cfg, log) (*Reconciler, error)  docker client + state store; Close releases them
//	NewReconciler(cfg, engine, store, log) (*Reconciler, error)
//	(*Reconciler).ReconcileOnce(ctx) (Plan, error)      one observe → plan → execute pass (serialised)
//	(*Reconciler).Reconcile(ctx) (changed, summary, err) the Stack form of ReconcileOnce
//	(*Reconciler).Desired(ctx) (Spec, error)            config + secrets + image IDs + stored scale
//	(*Reconciler).Observe(ctx) (Observed, error)        containers with state, health, restarts, IP
//	(*Reconciler).SetScale(service, n) error            api only, 0…16, stored (survives restarts)
//	(*Reconciler).Scale(ctx, service) (int, error)      stored scale, else config
//	(*Reconciler).Services() []DesiredService           desired replicas per service, start order
//	(*Reconciler).MarkRestart(service) error            next pass recreates that service's containers
//	(*Reconciler).StopAll(ctx) error                    stop containers (API first), keep them and volumes
//	(*Reconciler).RemoveAll(ctx) error                  remove every labelled object incl. volumes
//
// A pass stops at the first failing step and returns the plan with the error; the
// caller owns retry timing and backoff. Restart loops (RestartCount ≥ 3 with a current
// config) come back as backoff steps (Plan.Backoffs), not errors. One-shot containers
// of other components must carry LabelProject and LabelJob (not LabelService): the
// reconciler only removes job containers whose job name is its own (migrate, seed).
package supervisor
