package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"filippo.io/age"
	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/corpintel/corpintel/jobs/objstore"
)

// Runner makes and checks backups of one stack. Run is what `corpintel backup TIER` and
// the schedule both call.
type Runner struct {
	cfg  Config
	deps Deps
	ids  []age.Identity // the identity kept on the machine, for checking encrypted parts
	log  *slog.Logger
}

// New validates the config and returns a Runner.
func New(cfg Config, deps Deps) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Exec == nil {
		return nil, errors.New("backup: no Exec: the runner cannot reach the containers")
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.ProgressEvery == 0 {
		deps.ProgressEvery = time.Second
	}
	if deps.Poll == nil {
		deps.Poll = func(ctx context.Context) error {
			t := time.NewTimer(100 * time.Millisecond)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	r := &Runner{cfg: cfg, deps: deps, log: deps.Log}
	if cfg.Kit.IdentityFile != "" {
		if r.ids, err = kit.LoadIdentities(cfg.Kit.IdentityFile); err != nil {
			return nil, fmt.Errorf("backup: the kit identity kept on this machine: %w", err)
		}
	}
	return r, nil
}

func (r *Runner) now() time.Time { return r.deps.Clock().UTC() }

// Root is the backup root.
func (r *Runner) Root() string { return r.cfg.Root }

// Result is what Run produced.
type Result struct {
	Tier     string
	Dir      string // absolute path of the complete backup
	Manifest *Manifest
	Verified bool
	Cleaned  []string // interrupted backups removed before this one started
}

// ErrNotVerified is wrapped by Run's error when the backup was written but failed
// verification: it is kept (marked) for inspection and never counts as a good backup.
var ErrNotVerified = errors.New("backup failed verification")

// Services is what a backup owns while it runs: the reconciler must not recreate them.
var Services = []string{"postgres", "redis", "minio"}

type nopOp struct{}

func (nopOp) Step(string, string) {}
func (nopOp) End(error)           {}

// Run makes one backup of tier: under the operation lock and the root's flock it
// removes interrupted backups, checks free space, writes every part into a hidden
// partial directory, verifies it, writes the manifest last and renames the directory
// into place. A backup that fails verification is still renamed (marked as bad) and
// Run returns it with an error wrapping ErrNotVerified.
func (r *Runner) Run(ctx context.Context, tier string) (res *Result, err error) {
	if err := ValidTier(tier); err != nil {
		return nil, err
	}
	var op Op = nopOp{}
	if r.deps.Lock != nil {
		op, err = r.deps.Lock.Begin(ctx, "backup "+tier, Services)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %w", tier, err)
		}
	}
	defer func() { op.End(err) }()

	root, err := prepareRoot(r.cfg.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	unlock, err := lockRoot(r.cfg.Root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	start := r.now()
	defer func() { r.recordStatus(root, tier, start, res, err) }()

	op.Step("cleanup", "remove interrupted backups")
	cleaned, err := cleanPartials(root)
	if err != nil {
		return nil, err
	}
	if len(cleaned) > 0 {
		r.log.Warn("removed interrupted backups", "dirs", cleaned)
	}
	if err := tierDir(root, tier); err != nil {
		return nil, err
	}
	all, err := list(root, r.cfg.Root)
	if err != nil {
		return nil, err
	}
	prevTier := previousOf(all, tier, start.Add(time.Hour*24*365*100))
	var prevAny *Info
	for i := range all {
		if all[i].Complete && all[i].Manifest != nil && (prevAny == nil || all[i].Time.After(prevAny.Time)) {
			prevAny = &all[i]
		}
	}

	op.Step("preflight", "free space")
	if err := r.preflight(prevTier, prevAny); err != nil {
		return nil, err
	}

	name := start.Format(nameLayout)
	partialDir := path.Join(tier, partialPrefix+name+"-"+randHex(4))
	if err := root.Mkdir(partialDir, 0o700); err != nil {
		return nil, fmt.Errorf("backup: create %s: %w", partialDir, err)
	}
	placed := false
	defer func() {
		if !placed {
			if rmErr := root.RemoveAll(partialDir); rmErr != nil {
				r.log.Error("remove partial backup", "dir", partialDir, "err", rmErr)
			}
		}
	}()
	p := &partial{root: root, dir: partialDir, workers: r.cfg.CompressionWorkers}
	m := Manifest{
		FormatVersion: ManifestVersion, Tier: tier, Name: name, Started: start,
		Host: r.cfg.Host, Corpintel: r.cfg.Corpintel, Compression: compZstd,
		DurationsMS: map[string]int64{},
	}
	if r.cfg.Encrypt {
		if p.rcpt, err = r.cfg.recipient(); err != nil {
			return nil, err
		}
		m.Encryption = &Encryption{Method: "age", Recipient: r.cfg.Kit.Recipient}
	}
	prog := newProgress(r.deps.Progress, r.now, r.deps.ProgressEvery, tier, estimateBytes(prevTier, prevAny))
	defer prog.close()
	step := func(name, detail string, fn func() error) error {
		op.Step(name, detail)
		prog.setPhase(name)
		t := r.now()
		err := fn()
		m.DurationsMS[name] = r.now().Sub(t).Milliseconds()
		return err
	}

	if err := step("postgres", "pg_dump "+string(r.cfg.Format), func() error {
		part, v, err := r.dumpPostgres(ctx, p, prog)
		m.Postgres, m.Versions.Postgres, m.Versions.PgDump, m.Versions.Migration = part, v.Postgres, v.PgDump, v.Migration
		return err
	}); err != nil {
		return nil, fmt.Errorf("backup %s: %w", tier, err)
	}
	if r.cfg.Format == FormatSQL {
		m.Compression = compGzip
	}
	if r.cfg.Redis != nil {
		if err := step("redis", "BGSAVE and RDB", func() error {
			part, version, err := r.backupRedis(ctx, p, prog)
			m.Redis, m.Versions.Redis = part, version
			return err
		}); err != nil {
			return nil, fmt.Errorf("backup %s: %w", tier, err)
		}
	}
	var newBlobs []objstore.Blob
	if r.cfg.MinIO != nil {
		var prevIndex []objstore.Entry
		if prevObj := newestWithObjects(all); prevObj != nil {
			if d, err := root.OpenRoot(prevObj.rel()); err == nil {
				prevIndex, err = readObjectIndex(d, prevObj.Manifest, r.ids, r.cfg.CompressionWorkers)
				d.Close()
				if err != nil {
					r.log.Warn("previous object index unreadable: copying every object", "backup", prevObj.rel(), "err", err)
				}
			}
		}
		if err := step("objects", "incremental copy", func() error {
			part, blobs, err := r.backupObjects(ctx, root, p, prevIndex, prog)
			m.Objects, newBlobs = part, blobs
			return err
		}); err != nil {
			return nil, fmt.Errorf("backup %s: %w", tier, err)
		}
		m.Versions.MinIO = r.cfg.MinIO.Version
	}
	if err := step("kit", "config, state store, secrets", func() error {
		part, err := r.backupKit(ctx, p)
		m.Kit = part
		return err
	}); err != nil {
		return nil, fmt.Errorf("backup %s: %w", tier, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("backup %s: %w", tier, err)
	}
	m.Files = p.files

	var prevManifest *Manifest
	if prevTier != nil {
		prevManifest = prevTier.Manifest
	}
	if err := step("verify", "checksums, structure, pg_restore --list, sanity", func() error {
		m.Verification = r.verifyDir(ctx, root, partialDir, &m, prevManifest, newBlobs, false)
		return ctx.Err()
	}); err != nil {
		return nil, fmt.Errorf("backup %s: %w", tier, err)
	}

	op.Step("commit", "manifest and rename")
	final, err := freeName(root, tier, name)
	if err != nil {
		return nil, err
	}
	m.Name = final
	m.Finished = r.now()
	body, err := encodeManifest(m)
	if err != nil {
		return nil, err
	}
	// The manifest goes last: a directory without one is never taken for a backup.
	if err := writeFileAtomic(root, path.Join(partialDir, ManifestFile), body); err != nil {
		return nil, fmt.Errorf("backup %s: %w", tier, err)
	}
	if err := syncDir(root, partialDir); err != nil {
		return nil, err
	}
	if err := root.Rename(partialDir, path.Join(tier, final)); err != nil {
		return nil, fmt.Errorf("backup %s: put %s in place: %w", tier, final, err)
	}
	placed = true
	if err := syncDir(root, tier); err != nil {
		return nil, err
	}
	res = &Result{Tier: tier, Dir: path.Join(r.cfg.Root, tier, final), Manifest: &m, Verified: m.Verification.Verified, Cleaned: cleaned}
	if !res.Verified {
		return res, fmt.Errorf("backup %s %s: %w: %s", tier, final, ErrNotVerified, m.Verification.Summary())
	}
	r.log.Info("backup done", "tier", tier, "dir", res.Dir, "duration", m.Finished.Sub(start))
	return res, nil
}

// freeName returns name, or name-N when a backup of the same second exists.
func freeName(root interface {
	Lstat(string) (fs.FileInfo, error)
}, tier, name string) (string, error) {
	for i := 0; i < 100; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s-%d", name, i)
		}
		if _, err := root.Lstat(path.Join(tier, n)); errors.Is(err, fs.ErrNotExist) {
			return n, nil
		}
	}
	return "", fmt.Errorf("backup: %s/%s: too many backups in one second", tier, name)
}

// estimateBytes is the progress total: what the previous backup read.
func estimateBytes(prevTier, prevAny *Info) int64 {
	prev := prevTier
	if prev == nil {
		prev = prevAny
	}
	if prev == nil || prev.Manifest == nil {
		return 0
	}
	m := prev.Manifest
	var n int64
	if m.Postgres != nil {
		n += m.Postgres.DumpBytes
	}
	if m.Redis != nil {
		n += m.Redis.RDBBytes
	}
	if m.Objects != nil {
		n += m.Objects.Downloaded
	}
	return n
}

// preflight refuses to start without room for a backup as large as the previous one.
func (r *Runner) preflight(prevTier, prevAny *Info) error {
	free, err := freeBytes(r.cfg.Root)
	if err != nil {
		return err
	}
	prev := prevTier
	if prev == nil {
		prev = prevAny
	}
	var need int64
	if prev != nil && prev.Manifest != nil {
		need = prev.Size
		if prev.Manifest.Objects != nil {
			need += prev.Manifest.Objects.Stored
		}
		need += need / 10
	}
	if free < need+r.cfg.MinFreeBytes {
		return fmt.Errorf("backup: not enough free space in %s: %s free, the previous backup needed %s plus a margin of %s: free space there or move the backup root",
			r.cfg.Root, humanBytes(free), humanBytes(need), humanBytes(r.cfg.MinFreeBytes))
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
