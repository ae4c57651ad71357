package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/corpintel/corpintel/jobs/objstore"
	"github.com/corpintel/corpintel/jobs/pgarchive"
)

// verifyDir checks the backup in dir (relative to root) against m: the exact set of
// files and their checksums, the structure of every part (the dump read to its end,
// pg_restore --list, the RDB's checksum, the object index and the blobs, the state
// store's integrity, the secrets tar), and the sanity comparison with prev. newBlobs are
// re-hashed (deep: every referenced blob).
func (r *Runner) verifyDir(ctx context.Context, root *os.Root, dir string, m *Manifest, prev *Manifest, newBlobs []objstore.Blob, deep bool) Verification {
	v := Verification{At: r.now()}
	d, err := root.OpenRoot(dir)
	if err != nil {
		v.fail("files", "open %s: %v", dir, err)
		return v
	}
	defer d.Close()
	want := map[string]File{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	r.checkFileSet(d, want, &v)
	checked := map[string]bool{}
	// check reads a stored file through fn (which consumes its plaintext) and compares
	// its checksum; an encrypted file without an identity is only checksummed.
	check := func(name, comp, what string, fn func(io.Reader) error) {
		f, ok := want[name]
		if !ok {
			v.fail("files", "%s is referenced but not listed", name)
			return
		}
		checked[name] = true
		rd, err := openReader(d, name, comp, r.ids, r.cfg.CompressionWorkers)
		if errors.Is(err, errNoIdentity) {
			r.checksumOnly(d, f, &v)
			v.pass(what + ": not re-read (encrypted, no identity on this machine)")
			return
		}
		if err != nil {
			v.fail("structure", "%s: %v", name, err)
			return
		}
		defer rd.Close()
		ferr := fn(rd)
		sum, n, err := rd.finish()
		switch {
		case err != nil:
			v.fail("checksum", "%s: %v", name, err)
		case n != f.Size || sum != f.SHA256:
			v.fail("checksum", "%s: %d bytes with SHA-256 %s, the manifest says %d bytes %s", name, n, sum[:12], f.Size, f.SHA256[:min(12, len(f.SHA256))])
		default:
			v.pass("checksum " + name)
		}
		if ferr != nil {
			v.fail(what, "%s: %v", name, ferr)
		} else {
			v.pass(what + " " + name)
		}
	}

	if pg := m.Postgres; pg != nil {
		comp := compZstd
		if pg.Format == FormatSQL {
			comp = compGzip
		}
		check(pg.File, comp, "structure", func(rd io.Reader) error {
			var s *pgarchive.Summary
			var err error
			if pg.Format == FormatSQL {
				s, err = pgarchive.ScanSQL(rd)
			} else {
				s, err = pgarchive.Scan(rd)
			}
			if err != nil {
				return err
			}
			if got := s.Rows(); !maps.Equal(got, pg.Rows) {
				return fmt.Errorf("row counts differ from the manifest: %s", diffRows(pg.Rows, got))
			}
			return nil
		})
		if pg.Format == FormatCustom {
			r.pgRestoreList(ctx, d, pg, &v)
		}
	}
	if rd := m.Redis; rd != nil {
		check(rd.File, compZstd, "redis", func(in io.Reader) error {
			c := newRDBChecker()
			if _, err := io.Copy(c, in); err != nil {
				return err
			}
			_, err := c.finish()
			return err
		})
	}
	if o := m.Objects; o != nil {
		var index []objstore.Entry
		check(o.Index, compZstd, "objects", func(in io.Reader) error {
			var err error
			index, err = objstore.ReadIndex(in)
			return err
		})
		if index != nil || o.Count == 0 {
			r.checkObjects(index, o, newBlobs, deep, &v)
		}
	}
	if k := m.Kit; k != nil {
		if k.StateDB != "" {
			check(k.StateDB, compZstd, "kit", func(in io.Reader) error { return r.checkStateDB(ctx, in) })
		}
		if k.Secrets != "" {
			check(k.Secrets, compNone, "kit", func(in io.Reader) error { return checkSecretsTar(in, k.Files) })
		}
	}
	for _, f := range m.Files {
		if !checked[f.Path] {
			r.checksumOnly(d, f, &v)
		}
	}
	v.Problems = append(v.Problems, sanity(m, prev, r.cfg.Sanity)...)
	if prev != nil {
		v.pass("sanity vs " + prev.Tier + "/" + prev.Name)
	}
	v.Verified = len(v.Problems) == 0
	return v
}

// checkFileSet compares the directory's files with the manifest: a missing, extra or
// special file (symlink, device) is a problem.
func (r *Runner) checkFileSet(d *os.Root, want map[string]File, v *Verification) {
	found := map[string]bool{}
	err := fs.WalkDir(d.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || e.IsDir() {
			return nil
		}
		if p == ManifestFile || p == StateFile || strings.HasPrefix(path.Base(p), ".tmp-") {
			return nil
		}
		if !e.Type().IsRegular() {
			v.fail("files", "%s is a %s, not a regular file", p, e.Type())
			return nil
		}
		if _, ok := want[p]; !ok {
			v.fail("files", "%s is not in the manifest", p)
		}
		found[p] = true
		return nil
	})
	if err != nil {
		v.fail("files", "read the backup directory: %v", err)
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if !found[p] {
			v.fail("files", "%s is missing", p)
		}
	}
}

func (r *Runner) checksumOnly(d *os.Root, f File, v *Verification) {
	rd, err := openRawReader(d, f.Path)
	if err != nil {
		v.fail("checksum", "%s: %v", f.Path, err)
		return
	}
	defer rd.Close()
	sum, n, err := rd.finish()
	switch {
	case err != nil:
		v.fail("checksum", "%s: %v", f.Path, err)
	case n != f.Size || sum != f.SHA256:
		v.fail("checksum", "%s: %d bytes, SHA-256 %s; the manifest says %d bytes %s", f.Path, n, sum, f.Size, f.SHA256)
	default:
		v.pass("checksum " + f.Path)
	}
}

// openRawReader reads the stored bytes only (for checksums).
func openRawReader(d *os.Root, name string) (*reader, error) {
	fi, err := d.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := d.Open(name)
	if err != nil {
		return nil, err
	}
	rd := &reader{f: f}
	rd.h = sha256.New()
	rd.tee = io.TeeReader(f, countWriter{rd.h, &rd.n})
	rd.plain = rd.tee
	return rd, nil
}

// pgRestoreList runs PostgreSQL's own reader over the dump's table of contents.
func (r *Runner) pgRestoreList(ctx context.Context, d *os.Root, pg *PostgresPart, v *Verification) {
	if r.deps.Tools == nil {
		v.fail("pg_restore", "no tool runner configured: the dump was not checked by pg_restore")
		return
	}
	rd, err := openReader(d, pg.File, compZstd, r.ids, r.cfg.CompressionWorkers)
	if errors.Is(err, errNoIdentity) {
		v.pass("pg_restore --list: skipped (encrypted, no identity on this machine)")
		return
	}
	if err != nil {
		v.fail("pg_restore", "%v", err)
		return
	}
	defer rd.Close()
	res, err := r.deps.Tools.RunTool(ctx, ToolRequest{Image: "postgres", Cmd: []string{"pg_restore", "--list"}, Stdin: rd})
	if err != nil {
		v.fail("pg_restore", "run pg_restore --list: %v", err)
		return
	}
	if res.Code != 0 {
		v.fail("pg_restore", "pg_restore --list exited with code %d: %s", res.Code, strings.TrimSpace(res.Stderr))
		return
	}
	tables := 0
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	for sc.Scan() {
		if strings.Contains(sc.Text(), " TABLE DATA ") {
			tables++
		}
	}
	if tables != len(pg.Rows) {
		v.fail("pg_restore", "pg_restore --list shows %d tables with data, the manifest %d", tables, len(pg.Rows))
		return
	}
	v.pass(fmt.Sprintf("pg_restore --list (%d tables)", tables))
}

func (r *Runner) checkObjects(index []objstore.Entry, o *ObjectsPart, newBlobs []objstore.Blob, deep bool, v *Verification) {
	var bytes int64
	for _, e := range index {
		bytes += e.Size
	}
	if len(index) != o.Count || bytes != o.Bytes {
		v.fail("objects", "the index has %d objects (%d bytes), the manifest %d (%d bytes)", len(index), bytes, o.Count, o.Bytes)
		return
	}
	store, err := objstore.Open(path.Join(r.cfg.Root, objstore.Dir))
	if err != nil {
		v.fail("objects", "%v", err)
		return
	}
	defer store.Close()
	rehash := map[objstore.Blob]bool{}
	for _, b := range newBlobs {
		rehash[b] = true
	}
	missing, bad := 0, 0
	var first string
	done := map[objstore.Blob]bool{}
	for _, e := range index {
		b := e.Blob()
		if _, ok := store.Stat(b); !ok {
			missing++
			if first == "" {
				first = e.Bucket + "/" + e.Key
			}
			continue
		}
		if (deep || rehash[b]) && !done[b] {
			done[b] = true
			if err := store.Verify(b, e.Size, r.ids...); err != nil {
				bad++
				if first == "" {
					first = err.Error()
				}
			}
		}
	}
	if missing > 0 || bad > 0 {
		v.fail("objects", "%d object bodies missing, %d corrupt (first: %s)", missing, bad, first)
		return
	}
	v.pass(fmt.Sprintf("objects: %d present, %d re-hashed", len(index), len(done)))
}

// checkStateDB writes the state store copy to a temporary file and runs SQLite's
// integrity check on it.
func (r *Runner) checkStateDB(ctx context.Context, in io.Reader) error {
	tmp, err := os.MkdirTemp(r.cfg.Root, ".kit-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p := path.Join(tmp, "state.db")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, in)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return kit.CheckSQLite(ctx, p)
}

// checkSecretsTar reads the tar's headers: safe names, only files and directories, the
// recorded number of files.
func checkSecretsTar(in io.Reader, want int) error {
	tr := tar.NewReader(in)
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("secrets tar: %w", err)
		}
		if err := checkRelPath(strings.TrimSuffix(h.Name, "/")); err != nil {
			return fmt.Errorf("secrets tar: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			files++
		case tar.TypeDir:
		default:
			return fmt.Errorf("secrets tar: %s has type %q", h.Name, h.Typeflag)
		}
	}
	if files != want {
		return fmt.Errorf("secrets tar holds %d files, the manifest says %d", files, want)
	}
	return nil
}

func diffRows(want, got map[string]int64) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			d = append(d, k+" missing")
		} else if g != want[k] {
			d = append(d, fmt.Sprintf("%s %d≠%d", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			d = append(d, k+" unexpected")
		}
	}
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("and %d more", len(d)-5))
	}
	return strings.Join(d, ", ")
}

// sanity compares a backup with the previous one of its tier: the problems that mean
// "something is wrong with the data", not with the backup's bytes.
func sanity(m, prev *Manifest, s Sanity) []Problem {
	var out []Problem
	add := func(format string, a ...any) {
		out = append(out, Problem{Check: "sanity", Detail: fmt.Sprintf(format, a...)})
	}
	if pg := m.Postgres; pg != nil {
		if len(pg.Rows) == 0 || pg.TotalRows == 0 {
			add("the dump is empty: no table has rows")
		}
		if prev != nil && prev.Postgres != nil {
			pp := prev.Postgres
			if float64(pg.DumpBytes) < float64(pp.DumpBytes)*(1-s.MaxDumpShrink) {
				add("the dump shrank from %s to %s (more than %.0f%%) since %s", humanBytes(pp.DumpBytes), humanBytes(pg.DumpBytes), s.MaxDumpShrink*100, prev.Name)
			}
			for _, t := range slices.Sorted(maps.Keys(pp.Rows)) {
				was := pp.Rows[t]
				if was < s.MinTableRows {
					continue
				}
				now, ok := pg.Rows[t]
				switch {
				case !ok:
					add("table %s is gone (had %d rows in %s)", t, was, prev.Name)
				case float64(now) < float64(was)*(1-s.MaxTableLoss):
					add("table %s lost %d of its %d rows since %s", t, was-now, was, prev.Name)
				}
			}
		}
	}
	if o := m.Objects; o != nil && prev != nil && prev.Objects != nil && prev.Objects.Count >= 10 {
		if float64(o.Count) < float64(prev.Objects.Count)*(1-s.MaxObjectsLoss) {
			add("objects fell from %d to %d since %s", prev.Objects.Count, o.Count, prev.Name)
		}
	}
	return out
}

// Verify re-runs the verification of one backup on demand (`corpintel backup verify
// DIR`): ref is "tier/name" or a path inside the root. deep re-hashes every object body
// it references (not only the ones it added). The result is recorded in the backup's
// state.json, so a backup that went bad stops counting as good.
func (r *Runner) Verify(ctx context.Context, ref string, deep bool) (Verification, error) {
	rel, err := resolve(r.cfg.Root, ref)
	if err != nil {
		return Verification{}, err
	}
	root, err := os.OpenRoot(r.cfg.Root)
	if err != nil {
		return Verification{}, fmt.Errorf("backup: open root %s: %w", r.cfg.Root, err)
	}
	defer root.Close()
	unlock, err := lockRoot(r.cfg.Root)
	if err != nil {
		return Verification{}, err
	}
	defer unlock()
	d, err := root.OpenRoot(rel)
	if err != nil {
		return Verification{}, fmt.Errorf("backup: %s: %w", rel, err)
	}
	defer d.Close()
	m, err := readManifestIn(d)
	if err != nil {
		return Verification{}, fmt.Errorf("backup: %s: %w", rel, err)
	}
	all, err := list(root, r.cfg.Root)
	if err != nil {
		return Verification{}, err
	}
	t, _ := ParseName(m.Name)
	var prev *Manifest
	if p := previousOf(all, m.Tier, t); p != nil {
		prev = p.Manifest
	}
	v := r.verifyDir(ctx, root, rel, m, prev, nil, deep)
	if err := ctx.Err(); err != nil {
		return v, err
	}
	st, err := readState(d)
	if err != nil {
		return v, err
	}
	st.Verification = &v
	if err := writeState(d, st); err != nil {
		return v, err
	}
	return v, nil
}
