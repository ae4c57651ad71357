package backup

import (
	"context"
	"fmt"
	"path"

	"github.com/corpintel/corpintel/jobs/objstore"
	"github.com/corpintel/corpintel/jobs/retention"
)

// Prune applies retention to the root: it observes the backups and the object store,
// asks retention.Decide for a plan and, unless dryRun, deletes what the plan says —
// through an os.Root, so nothing outside the backup root is ever touched, and only
// directories (a symlink named like a backup is not one). It runs under the root's
// flock; the caller runs it after a backup, inside the same operation.
func (r *Runner) Prune(ctx context.Context, pol retention.Policy, dryRun bool) (retention.Plan, error) {
	root, err := prepareRoot(r.cfg.Root)
	if err != nil {
		return retention.Plan{}, err
	}
	defer root.Close()
	unlock, err := lockRoot(r.cfg.Root)
	if err != nil {
		return retention.Plan{}, err
	}
	defer unlock()
	infos, err := list(root, r.cfg.Root)
	if err != nil {
		return retention.Plan{}, err
	}
	store, err := objstore.Open(path.Join(r.cfg.Root, objstore.Dir))
	if err != nil {
		return retention.Plan{}, err
	}
	defer store.Close()
	blobs, err := store.List()
	if err != nil {
		return retention.Plan{}, err
	}
	in := retention.Input{Now: r.now()}
	byKey := map[string]objstore.Blob{}
	for _, b := range blobs {
		k := blobKey(b)
		byKey[k] = b
		in.Blobs = append(in.Blobs, k)
	}
	for _, i := range infos {
		b := retention.Backup{Tier: i.Tier, Name: i.Name, Time: i.Time, Complete: i.Complete,
			Readable: i.Manifest != nil && i.Error == "", Verified: i.Verified, Pinned: i.Pinned}
		if b.Readable && i.Manifest.Objects != nil {
			d, err := root.OpenRoot(i.rel())
			if err == nil {
				var index []objstore.Entry
				index, err = readObjectIndex(d, i.Manifest, r.ids, r.cfg.CompressionWorkers)
				d.Close()
				for _, e := range index {
					b.Blobs = append(b.Blobs, blobKey(e.Blob()))
				}
			}
			if err != nil {
				r.log.Warn("object index unreadable: objects are not cleaned up", "backup", i.rel(), "err", err)
				b.Readable = false
			}
		}
		in.Backups = append(in.Backups, b)
	}
	plan := retention.Decide(in, pol)
	if dryRun || plan.Halted != "" {
		if plan.Halted != "" {
			r.log.Warn("retention halted", "reason", plan.Halted)
		}
		return plan, nil
	}
	for _, d := range plan.Delete {
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		fi, err := root.Lstat(d.Backup)
		if err != nil || !fi.IsDir() {
			return plan, fmt.Errorf("backup: retention: %s is not a backup directory any more; stopping", d.Backup)
		}
		if err := root.RemoveAll(d.Backup); err != nil {
			return plan, fmt.Errorf("backup: retention: delete %s: %w", d.Backup, err)
		}
		r.log.Info("retention deleted backup", "backup", d.Backup, "reason", d.Reason)
	}
	for _, k := range plan.DeleteBlobs {
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		if err := store.Remove(byKey[k]); err != nil {
			return plan, fmt.Errorf("backup: retention: %w", err)
		}
	}
	return plan, nil
}

func blobKey(b objstore.Blob) string {
	if b.Encrypted {
		return b.SHA256 + ".age"
	}
	return b.SHA256
}
