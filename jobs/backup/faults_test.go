package backup_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corpintel/corpintel/jobs/backup"
	"github.com/corpintel/corpintel/jobs/hostexec"
)

// Cancelling a run at every step (the supervisor stopping, an operator's Ctrl-C) leaves
// no complete-looking backup and no partial, and the next run succeeds.
func TestCancelAtEveryStep(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seed()
	e.deps.ProgressEvery = time.Nanosecond
	for _, phase := range []string{"postgres", "redis", "objects", "kit", "verify"} {
		t.Run(phase, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			deps := e.deps
			deps.Progress = func(p backup.Progress) {
				if p.Phase == phase && (phase != "postgres" || p.Bytes > 0) {
					cancel()
				}
			}
			r, err := backup.New(e.cfg, deps)
			must(t, err)
			_, err = r.Run(ctx, "daily")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if c := complete(t, e.cfg.Root); len(c) != 0 {
				t.Errorf("a cancelled run left %v", c)
			}
			if p := partials(t, e.cfg.Root); len(p) != 0 {
				t.Errorf("a cancelled run left partials %v", p)
			}
		})
	}
	res, err := e.runner().Run(context.Background(), "daily")
	if err != nil || !res.Verified {
		t.Fatalf("run after cancellations: %v", err)
	}
}

// A crash leaves a partial directory, even one whose manifest was already written: it
// never lists as complete, never counts for status, and the next run removes it.
func TestCrashLeftoversNeverLookComplete(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true, noMinIO: true})
	e.seed()
	res, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	dead := filepath.Join(e.cfg.Root, "weekly", ".partial-20261206_010000-dead")
	must(t, os.MkdirAll(dead, 0o700))
	m, _ := os.ReadFile(filepath.Join(res.Dir, backup.ManifestFile))
	must(t, os.WriteFile(filepath.Join(dead, backup.ManifestFile), m, 0o600))
	must(t, os.WriteFile(filepath.Join(dead, "postgres.dump.zst"), []byte("half"), 0o600))
	must(t, os.MkdirAll(filepath.Join(e.cfg.Root, "objects", ".tmp"), 0o700))
	must(t, os.WriteFile(filepath.Join(e.cfg.Root, "objects", ".tmp", "put-dead"), []byte("x"), 0o600))
	all, err := backup.List(e.cfg.Root)
	must(t, err)
	for _, i := range all {
		if i.Tier == "weekly" && (i.Complete || i.Good()) {
			t.Errorf("a partial lists as complete: %+v", i)
		}
	}
	st, _ := backup.Status(e.cfg.Root)
	if !st["weekly"].LastSuccess.IsZero() {
		t.Errorf("a partial counts as a success: %+v", st["weekly"])
	}
	res2, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	if len(res2.Cleaned) != 1 || !strings.HasSuffix(res2.Cleaned[0], "dead") {
		t.Errorf("cleaned %v", res2.Cleaned)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Root, "objects", ".tmp", "put-dead")); err == nil {
		t.Error("temporary object left")
	}
	removed, err := backup.CleanPartials(e.cfg.Root)
	if err != nil || len(removed) != 0 {
		t.Errorf("CleanPartials: %v %v", removed, err)
	}
}

const helperEnv = "CORPINTEL_BACKUP_TEST_HELPER"

// helperProcess is the test binary re-executed as a backup process that the parent test
// kills with SIGKILL: it runs one backup and reports its progress on stdout, stopping
// (blocked) once it reaches the phase named in the environment.
func helperProcess() {
	var cfg backup.Config
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &cfg); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	stopAt := os.Getenv(helperEnv + "_STOP")
	r, err := backup.New(cfg, backup.Deps{
		Exec: &hostexec.Exec{}, Tools: &hostexec.Exec{}, ProgressEvery: time.Nanosecond,
		Progress: func(p backup.Progress) {
			if p.Phase == stopAt && p.Bytes > 0 {
				fmt.Println("AT", p.Phase)
				select {} // wait for SIGKILL mid-write
			}
		},
	})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	_, err = r.Run(context.Background(), "daily")
	fmt.Println("DONE", err)
	os.Exit(0)
}

// SIGKILL of the process mid-backup (the supervisor killed by the OOM killer or an
// operator): nothing looks complete, and the next backup cleans up and succeeds.
func TestSIGKILLMidBackup(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.seed()
	e.sql(`CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g`)
	cfgJSON, err := json.Marshal(e.cfg)
	must(t, err)
	for _, phase := range []string{"postgres", "objects"} {
		t.Run(phase, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(cfgJSON), helperEnv+"_STOP="+phase)
			stdout, err := cmd.StdoutPipe()
			must(t, err)
			cmd.Stderr = os.Stderr
			must(t, cmd.Start())
			line := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "AT ") || strings.HasPrefix(sc.Text(), "DONE") || strings.HasPrefix(sc.Text(), "ERROR") {
						line <- sc.Text()
						return
					}
				}
				line <- "EOF"
			}()
			select {
			case l := <-line:
				if l != "AT "+phase {
					t.Fatalf("helper said %q", l)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("helper never reached the phase")
			}
			must(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			if c := complete(t, e.cfg.Root); len(c) != 0 {
				t.Fatalf("killed backup looks complete: %+v", c)
			}
			if p := partials(t, e.cfg.Root); len(p) != 1 {
				t.Fatalf("partials after the kill: %v", p)
			}
			res, err := e.runner().Run(context.Background(), "daily")
			if err != nil || !res.Verified || len(res.Cleaned) != 1 {
				t.Fatalf("next run: %v, cleaned %v", err, res)
			}
			must(t, os.RemoveAll(res.Dir))
		})
	}
}

// A full disk mid-backup: a clean error, the previous backup untouched and still good,
// no partial left behind.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	root := filepath.Join(t.TempDir(), "small")
	must(t, os.MkdirAll(root, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", root).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", root).Run() })
	e := newEnv(t, envOpts{noRedis: true, root: root})
	e.seed()
	first, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	// ~40 MB of hex text: zstd gets it to about half, more than the 16 MB filesystem.
	e.sql(`CREATE TABLE big AS SELECT (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 20000) i) AS v FROM generate_series(1, 64) g`)
	_, err = e.runner().Run(context.Background(), "daily")
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v", err)
	}
	if p := partials(t, root); len(p) != 0 {
		t.Errorf("partials left on the full disk: %v", p)
	}
	c := complete(t, root)
	if len(c) != 1 || c[0].Name != first.Manifest.Name {
		t.Fatalf("complete backups after the failure: %+v", c)
	}
	v, err := e.runner().Verify(context.Background(), "daily/"+first.Manifest.Name, true)
	if err != nil || !v.Verified {
		t.Errorf("the previous backup after the failure: %v %s", err, v.Summary())
	}
	st, _ := backup.Status(root)
	if st["daily"].LastFailure.IsZero() || !strings.Contains(st["daily"].LastError, "no space") {
		t.Errorf("status %+v", st["daily"])
	}
}
