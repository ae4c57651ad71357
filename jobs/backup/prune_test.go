package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/jobs/retention"
	"github.com/minio/minio-go/v7"
)

func TestPruneDeletesExpiredBackupsAndUnreferencedObjects(t *testing.T) {
	e := newEnv(t, envOpts{noRedis: true})
	e.seed()
	first, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	// An object only the first backup has.
	must(t, e.minio.Client(t).RemoveObject(context.Background(), e.minio.Bucket, "docs/0.pdf", minio.RemoveObjectOptions{}))
	e.clock = e.clock.Add(3 * retention.Day)
	second, err := e.runner().Run(context.Background(), "daily")
	must(t, err)
	weekly, err := e.runner().Run(context.Background(), "weekly")
	must(t, err)

	// A symlink named like a backup, pointing outside the root: never followed.
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "keep-me"), []byte("x"), 0o600))
	must(t, os.Symlink(outside, filepath.Join(e.cfg.Root, "daily", "20200101_000000")))

	e.clock = e.clock.Add(6 * retention.Day) // first is 9 days old, second 6
	dry, err := e.runner().Prune(context.Background(), retention.DefaultPolicy(), true)
	must(t, err)
	if len(dry.Delete) != 1 || len(complete(t, e.cfg.Root)) != 3 {
		t.Fatalf("dry run: %s", dry)
	}
	plan, err := e.runner().Prune(context.Background(), retention.DefaultPolicy(), false)
	must(t, err)
	t.Logf("plan:\n%s", plan)
	if len(plan.Delete) != 1 || plan.Delete[0].Backup != "daily/"+first.Manifest.Name || len(plan.DeleteBlobs) != 1 {
		t.Fatalf("plan %s", plan)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Errorf("expired backup still there: %v", err)
	}
	for _, d := range []string{second.Dir, weekly.Dir, filepath.Join(outside, "keep-me")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	// What remains still verifies, objects included.
	v, err := e.runner().Verify(context.Background(), "daily/"+second.Manifest.Name, true)
	if err != nil || !v.Verified {
		t.Errorf("remaining backup: %v %s", err, v.Summary())
	}
	blobs, _ := filepath.Glob(filepath.Join(e.cfg.Root, "objects", "*", "*"))
	if len(blobs) != 4 {
		t.Errorf("blobs left: %d, want 4", len(blobs))
	}

	// The clock set back a month: nothing is deleted, however old it looks.
	e.clock = e.clock.Add(-40 * retention.Day)
	plan, err = e.runner().Prune(context.Background(), retention.Policy{Keep: map[string]time.Duration{"daily": time.Hour, "weekly": time.Hour}}, false)
	must(t, err)
	if plan.Halted == "" || len(complete(t, e.cfg.Root)) != 2 {
		t.Errorf("clock set back: %s", plan)
	}
	if !strings.Contains(plan.String(), "HALTED") {
		t.Errorf("plan text %s", plan)
	}
}
