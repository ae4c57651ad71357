package reconcile

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// testSecrets returns secret paths for every service (the files need not exist for
// BuildSpec).
func testSecrets(dir string) SecretFiles {
	sf := SecretFiles{}
	for svc, names := range stack.ServiceSecrets {
		sf[svc] = map[string]string{}
		for _, n := range names {
			sf[svc][n] = filepath.Join(dir, "secrets", svc, n+".v1")
		}
	}
	return sf
}

var testHost = Host{CPUs: 2, Memory: 24 << 30, ImageIDs: map[string]string{
	"corpintel/api:latest":   "sha256:api1",
	"corpintel/postgres:15":  "sha256:pg1",
	"corpintel/redis:7":      "sha256:redis1",
	"corpintel/minio:latest": "sha256:minio1",
}}

func testConfig(t *testing.T, profile string, mutate func(*config.Config)) *config.Config {
	t.Helper()
	c := config.Default(profile)
	c.Project = "cit"
	if mutate != nil {
		mutate(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func testSpec(t *testing.T, profile string, mutate func(*config.Config)) Spec {
	t.Helper()
	s, err := BuildSpec(testConfig(t, profile, mutate), testSecrets("/var/lib/corpintel/cit"), testHost)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// healthy returns the observation of a fully converged stack for spec.
func healthy(spec Spec) Observed {
	obs := Observed{NetworkExists: true, Volumes: map[string]bool{}, JobsDone: map[string]bool{stack.JobSeed: true}}
	for _, v := range spec.Volumes {
		obs.Volumes[v] = true
	}
	for _, svc := range spec.Services {
		for r := 1; r <= svc.Replicas; r++ {
			obs.Containers = append(obs.Containers, ObservedContainer{
				ID: svc.Name + "-id-" + string(rune('0'+r)), Name: stack.ContainerName(spec.Project, svc.Name, r), Project: spec.Project,
				Service: svc.Name, Replica: r, Hash: svc.Container.Hash, State: StateRunning, Health: HealthHealthy,
			})
		}
	}
	return obs
}

func edit(obs Observed, name string, f func(*ObservedContainer)) Observed {
	out := obs
	out.Containers = append([]ObservedContainer(nil), obs.Containers...)
	for i := range out.Containers {
		if out.Containers[i].Name == name {
			f(&out.Containers[i])
		}
	}
	return out
}

func TestPlanGolden(t *testing.T) {
	prod := testSpec(t, "prod", nil)
	dev := testSpec(t, "dev", nil)
	prodObs := healthy(prod)

	cases := []struct {
		name string
		spec Spec
		obs  Observed
	}{
		{"empty_dev", dev, Observed{}},
		{"empty_prod", prod, Observed{JobsDone: map[string]bool{}}},
		{"all_healthy", prod, prodObs},
		{"dev_seed_pending", dev, func() Observed { o := healthy(dev); o.JobsDone = nil; return o }()},
		{"api_config_change", testSpec(t, "prod", func(c *config.Config) { c.LogLevel = "warn" }), prodObs},
		{"postgres_config_change", testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 32 * config.MiB }), prodObs},
		{"api_image_rebuilt", func() Spec {
			h := testHost
			h.ImageIDs = map[string]string{"corpintel/api:latest": "sha256:api2", "corpintel/postgres:15": "sha256:pg1", "corpintel/redis:7": "sha256:redis1", "corpintel/minio:latest": "sha256:minio1"}
			s, err := BuildSpec(testConfig(t, "prod", nil), testSecrets("/var/lib/corpintel/cit"), h)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), prodObs},
		{"scale_up", prod.WithScale(stack.ServiceAPI, 4), prodObs},
		{"scale_down", prod.WithScale(stack.ServiceAPI, 1), prodObs},
		{"scale_zero", prod.WithScale(stack.ServiceAPI, 0), prodObs},
		{"killed_api", prod, edit(prodObs, "cit-api-2", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 137 })},
		{"killed_api_migrated", prod, func() Observed {
			o := edit(prodObs, "cit-api-2", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 137 })
			o.JobsDone = map[string]bool{MigratedKey(prod.Jobs[0]): true}
			return o
		}()},
		{"api_image_rebuilt_after_migrate", func() Spec {
			h := testHost
			h.ImageIDs = map[string]string{"corpintel/api:latest": "sha256:api2", "corpintel/postgres:15": "sha256:pg1", "corpintel/redis:7": "sha256:redis1", "corpintel/minio:latest": "sha256:minio1"}
			s, err := BuildSpec(testConfig(t, "prod", nil), testSecrets("/var/lib/corpintel/cit"), h)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), func() Observed {
			o := prodObs
			o.JobsDone = map[string]bool{MigratedKey(prod.Jobs[0]): true}
			return o
		}()},
		{"killed_redis", prod, edit(prodObs, "cit-redis", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 137 })},
		{"missing_minio", prod, func() Observed {
			o := prodObs
			o.Containers = nil
			for _, c := range prodObs.Containers {
				if c.Service != stack.ServiceMinIO {
					o.Containers = append(o.Containers, c)
				}
			}
			return o
		}()},
		{"unhealthy_api", prod, edit(prodObs, "cit-api-1", func(c *ObservedContainer) { c.Health = HealthUnhealthy })},
		{"unhealthy_postgres", prod, edit(prodObs, "cit-postgres", func(c *ObservedContainer) { c.Health = HealthUnhealthy })},
		{"starting_api", prod, edit(prodObs, "cit-api-1", func(c *ObservedContainer) { c.Health = HealthStarting })},
		{"created_never_started", prod, edit(prodObs, "cit-api-1", func(c *ObservedContainer) { c.State, c.Health = StateCreated, "" })},
		{"paused_redis", prod, edit(prodObs, "cit-redis", func(c *ObservedContainer) { c.State, c.Health = StatePaused, HealthHealthy })},
		{"restart_loop", prod, edit(prodObs, "cit-redis", func(c *ObservedContainer) { c.State, c.Health, c.RestartCount = StateRestarting, HealthUnhealthy, 5 })},
		{"restart_loop_fixed_by_config", testSpec(t, "prod", func(c *config.Config) { c.Redis.Memory = 3 * config.GiB }),
			edit(prodObs, "cit-redis", func(c *ObservedContainer) { c.State, c.Health, c.RestartCount = StateRestarting, HealthUnhealthy, 5 })},
		{"force_restart_redis", func() Spec {
			s := testSpec(t, "prod", nil)
			s.Services[1].ForceRecreate = true
			return s
		}(), prodObs},
		{"unlabelled_and_foreign_untouched", prod, func() Observed {
			o := prodObs
			o.Containers = append(append([]ObservedContainer(nil), prodObs.Containers...),
				ObservedContainer{ID: "x1", Name: "someone-elses", Project: "", State: StateExited},
				ObservedContainer{ID: "x2", Name: "other-api-1", Project: "other", Service: stack.ServiceAPI, Replica: 1, State: StateExited},
				ObservedContainer{ID: "x3", Name: "cit-backup-dump", Project: "cit", Job: "dump", State: StateRunning},
			)
			return o
		}()},
		{"orphans", prod, func() Observed {
			o := prodObs
			o.Containers = append(append([]ObservedContainer(nil), prodObs.Containers...),
				ObservedContainer{ID: "o1", Name: "cit-api-7", Project: "cit", Service: stack.ServiceAPI, Replica: 7, State: StateRunning, Health: HealthHealthy},
				ObservedContainer{ID: "o2", Name: "cit-grafana", Project: "cit", Service: "grafana", Replica: 1, State: StateRunning},
				ObservedContainer{ID: "o3", Name: "cit-job-migrate", Project: "cit", Job: stack.JobMigrate, State: StateExited},
			)
			return o
		}()},
		{"interrupted_rollout", prod, func() Observed {
			o := edit(prodObs, "cit-api-1", func(c *ObservedContainer) { c.Hash = "0ldhash0ld" })
			o.Containers = append(o.Containers, ObservedContainer{ID: "n1", Name: "cit-api-1-next", Project: "cit", Service: stack.ServiceAPI, Replica: 1,
				Hash: prod.Services[3].Container.Hash, State: StateRunning, Health: HealthHealthy})
			return o
		}()},
		{"interrupted_stateful_recreate", prod, func() Observed {
			o := edit(prodObs, "cit-postgres", func(c *ObservedContainer) { c.Name, c.State, c.Health = "cit-postgres-old", StateExited, "" })
			return o
		}()},
		{"max_connections_change", testSpec(t, "prod", func(c *config.Config) { c.Postgres.MaxConnections = 300 }), prodObs},
		{"duplicate_postgres", prod, func() Observed {
			o := prodObs
			o.Containers = append(append([]ObservedContainer(nil), prodObs.Containers...),
				ObservedContainer{ID: "d1", Name: "cit-postgres-old", Project: "cit", Service: stack.ServicePostgres, Replica: 1, Hash: "0ldhash0ld", State: StateExited})
			return o
		}()},
		// Defect: a replica that once crash-looped (RestartCount 4) and was then killed
		// is replaced, not left exited forever.
		{"looping_replica_killed", prod, edit(prodObs, "cit-api-2", func(c *ObservedContainer) {
			c.State, c.Health, c.ExitCode, c.RestartCount = StateExited, "", 137, 4
		})},
		// While its service backs off, a failing container waits and the step says until when.
		{"restart_loop_in_backoff", prod, func() Observed {
			o := edit(prodObs, "cit-redis", func(c *ObservedContainer) { c.State, c.Health, c.RestartCount = StateRestarting, HealthUnhealthy, 5 })
			o.Now = planNow
			o.Backoff = map[string]Backoff{stack.ServiceRedis: {Failures: 3, Until: planNow.Add(20 * time.Second)}}
			return o
		}()},
		// One service's backoff never delays another's repair.
		{"backoff_other_service", prod, func() Observed {
			o := edit(prodObs, "cit-postgres", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 137 })
			o = edit(o, "cit-api-1", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 1 })
			o.Now = planNow
			o.Backoff = map[string]Backoff{stack.ServiceAPI: {Failures: 5, Until: planNow.Add(time.Minute)}}
			return o
		}()},
		{"backoff_expired", prod, func() Observed {
			o := edit(prodObs, "cit-api-1", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 1 })
			o.Now = planNow
			o.Backoff = map[string]Backoff{stack.ServiceAPI: {Failures: 5, Until: planNow.Add(-time.Second)}}
			return o
		}()},
		// Defect: a stateful recreate that rolled back is not retried for the same spec.
		{"held_recreate", testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 32 * config.MiB }), func() Observed {
			o := prodObs
			o.Held = map[string]HeldRecreate{stack.ServicePostgres: {Hash: testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 32 * config.MiB }).Services[0].Container.Hash,
				At: planNow, Err: "container cit-postgres exited with code 1\n--- last log lines ---"}}
			return o
		}()},
		// ... but a held service whose old container was stopped is started again.
		{"held_recreate_old_killed", testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 32 * config.MiB }), func() Observed {
			o := edit(prodObs, "cit-postgres", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 137 })
			o.Held = map[string]HeldRecreate{stack.ServicePostgres: {Hash: testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 32 * config.MiB }).Services[0].Container.Hash, At: planNow, Err: "exited"}}
			return o
		}()},
		// A different config than the one that failed is tried.
		{"held_recreate_config_changed_again", testSpec(t, "prod", func(c *config.Config) { c.Postgres.WorkMem = 64 * config.MiB }), func() Observed {
			o := prodObs
			o.Held = map[string]HeldRecreate{stack.ServicePostgres: {Hash: "0ldfailedhash", At: planNow, Err: "exited"}}
			return o
		}()},
		// Services an operation owns are left alone, killed or not.
		{"owned_by_operation", testSpec(t, "prod", func(c *config.Config) { c.Redis.Memory = 3 * config.GiB }), func() Observed {
			o := edit(prodObs, "cit-postgres", func(c *ObservedContainer) { c.State, c.Health, c.ExitCode = StateExited, "", 0 })
			o.Owned = map[string]string{stack.ServicePostgres: "restore #4", stack.ServiceRedis: "restore #4"}
			return o
		}()},
		{"network_and_volume_missing", prod, func() Observed {
			o := prodObs
			o.NetworkExists = false
			o.Volumes = map[string]bool{"cit_postgres_data": true}
			return o
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name, BuildPlan(c.spec, c.obs).String())
		})
	}
}

// planNow is the clock of the golden plans that involve time.
var planNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func TestStopAndRemovePlanGolden(t *testing.T) {
	prod := testSpec(t, "prod", nil)
	obs := edit(healthy(prod), "cit-redis", func(c *ObservedContainer) { c.State = StateExited })
	obs.Containers = append(obs.Containers,
		ObservedContainer{ID: "j1", Name: "cit-job-migrate", Project: "cit", Job: stack.JobMigrate, State: StateRunning},
		ObservedContainer{ID: "x2", Name: "other-api-1", Project: "other", Service: stack.ServiceAPI, Replica: 1, State: StateRunning})
	obs.Volumes = map[string]bool{"cit_postgres_data": true, "cit_redis_data": true}
	for name, plan := range map[string]Plan{"stop": BuildStopPlan("cit", obs), "remove_project": BuildRemovePlan("cit", obs)} {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, plan.String()) })
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", "plans", name+".txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden) // #nosec G304 -- test data
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("plan differs from %s (-update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

func TestPlanHelpers(t *testing.T) {
	prod := testSpec(t, "prod", nil)
	if p := BuildPlan(prod, healthy(prod)); p.HasChanges() || len(p.Reports()) != 0 || p.String() != "no changes\n" {
		t.Errorf("healthy plan: %q", p)
	}
	loop := edit(healthy(prod), "cit-redis", func(c *ObservedContainer) { c.State, c.RestartCount = StateRestarting, 9 })
	p := BuildPlan(prod, loop)
	if !p.HasChanges() || len(p.Steps) != 1 || !p.Steps[0].Failure || !strings.Contains(p.Steps[0].Reason, "9 restarts") {
		t.Errorf("restart loop plan: %q", p)
	}
	loop.Now, loop.Backoff = planNow, map[string]Backoff{stack.ServiceRedis: {Failures: 4, Until: planNow.Add(time.Minute)}}
	p = BuildPlan(prod, loop)
	if p.HasChanges() || len(p.Reports()) != 1 || !strings.Contains(p.Reports()[0].Reason, "next attempt at 2026-12-06T10:01:00Z (in 1m0s)") {
		t.Errorf("restart loop in backoff: %q", p)
	}
	// Changing the config is not a failure: it never waits for a backoff.
	changed := testSpec(t, "prod", func(c *config.Config) { c.Redis.Memory = 3 * config.GiB })
	if p := BuildPlan(changed, loop); !p.HasChanges() || p.Steps[0].Failure {
		t.Errorf("config change in backoff: %q", p)
	}
	if p := BuildPlan(prod, Observed{}); !p.HasChanges() {
		t.Error("empty observation: no changes")
	}
}

func TestBatches(t *testing.T) {
	plan := BuildPlan(testSpec(t, "prod", nil), Observed{})
	var got []string
	for _, b := range batches(plan.Steps) {
		var names []string
		for _, s := range b {
			names = append(names, s.Name)
		}
		got = append(got, strings.Join(names, "+"))
	}
	want := []string{"cit_corpintel", "cit_postgres_data", "cit_redis_data", "cit_minio_data",
		"cit-postgres+cit-redis+cit-minio", "cit-job-migrate", "cit-api-1+cit-api-2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("batches\n%q\nwant\n%q", got, want)
	}
}
