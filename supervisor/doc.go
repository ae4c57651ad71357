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
package supervisor
