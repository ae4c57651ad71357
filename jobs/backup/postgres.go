package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/corpintel/corpintel/jobs/pgarchive"
)

// migrationsTable is the API's migration record (api/db); its highest version goes into
// the manifest so the restore can tell which schema the dump has.
const migrationsTable = "public.schema_migrations"

// pgDumpArgs is the pg_dump command for the configured source and format.
func pgDumpArgs(src PostgresSource, format Format) []string {
	args := []string{"pg_dump", "--no-password"}
	if format == FormatSQL {
		args = append(args, "--format=plain")
	} else {
		// -Z0: we compress with zstd ourselves (PostgreSQL 15 has no zstd), in parallel.
		args = append(args, "--format=custom", "--compress=0")
	}
	if src.Host != "" {
		args = append(args, "--host="+src.Host)
	}
	if src.Port != 0 {
		args = append(args, "--port="+strconv.Itoa(src.Port))
	}
	if src.User != "" {
		args = append(args, "--username="+src.User)
	}
	return append(args, "--dbname="+src.Database)
}

func pgEnv(src PostgresSource) []string {
	env := []string{"PGCONNECT_TIMEOUT=10", "PGAPPNAME=corpintel-backup"}
	if src.Password != "" {
		env = append(env, "PGPASSWORD="+src.Password)
	}
	return env
}

// dumpPostgres streams pg_dump's output into the partial directory, compressing it and,
// in the same pass, checking the archive and counting rows.
func (r *Runner) dumpPostgres(ctx context.Context, p *partial, prog *progress) (*PostgresPart, Versions, error) {
	var v Versions
	base, comp := "postgres.dump.zst", compZstd
	if r.cfg.Format == FormatSQL {
		base, comp = "postgres.sql.gz", compGzip
	}
	proc, err := r.deps.Exec.Exec(ctx, ExecRequest{
		Container: r.cfg.Postgres.Container, User: r.cfg.Postgres.OSUser,
		Env: pgEnv(r.cfg.Postgres), Cmd: pgDumpArgs(r.cfg.Postgres, r.cfg.Format),
	})
	if err != nil {
		return nil, v, fmt.Errorf("postgres: start pg_dump in %s: %w", r.cfg.Postgres.Container, err)
	}
	defer proc.Close()
	out, err := p.openStream(base, comp)
	if err != nil {
		return nil, v, fmt.Errorf("postgres: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			out.abort()
		}
	}()

	pr, pw := io.Pipe()
	type scanned struct {
		s   *pgarchive.Summary
		err error
	}
	done := make(chan scanned, 1)
	go func() {
		opts := pgarchive.Options{Capture: []string{migrationsTable}}
		var s *pgarchive.Summary
		var err error
		if r.cfg.Format == FormatSQL {
			s, err = pgarchive.ScanSQLWith(pr, opts)
		} else {
			s, err = pgarchive.ScanWith(pr, opts)
		}
		// Whatever happened, unblock the writer.
		pr.CloseWithError(errors.Join(err, errScanStopped))
		done <- scanned{s, err}
	}()

	var dumped int64
	readErr, writeErr := copyDump(proc, out, pw, prog, &dumped)
	pw.Close()
	res := <-done
	if readErr != nil || writeErr != nil {
		proc.Close()
	}
	exit, waitErr := proc.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, v, fmt.Errorf("postgres: %w", ctx.Err())
	case writeErr != nil && !errors.Is(writeErr, errScanStopped):
		return nil, v, fmt.Errorf("postgres: write the dump: %w", writeErr)
	case waitErr != nil:
		return nil, v, fmt.Errorf("postgres: pg_dump in %s: %w", r.cfg.Postgres.Container, waitErr)
	case exit.Code != 0:
		return nil, v, fmt.Errorf("postgres: pg_dump exited with code %d: %s (is PostgreSQL up? `corpintel status` shows it)", exit.Code, strings.TrimSpace(exit.Stderr))
	case readErr != nil:
		return nil, v, fmt.Errorf("postgres: read pg_dump's output: %w", readErr)
	case res.err != nil:
		return nil, v, fmt.Errorf("postgres: pg_dump's output is not a complete dump: %w", res.err)
	}
	if err := out.commit(); err != nil {
		return nil, v, fmt.Errorf("postgres: %w", err)
	}
	committed = true
	s := res.s
	v.Postgres, v.PgDump = s.ServerVersion, s.DumpVersion
	v.Migration = maxMigration(s.Captured[migrationsTable])
	part := &PostgresPart{
		Format: r.cfg.Format, File: out.name(), DumpBytes: dumped,
		Rows: s.Rows(), TotalRows: s.TotalRows(), LargeObjects: s.Blobs,
	}
	if r.cfg.Format == FormatCustom {
		part.ArchiveVersion = s.Version.String()
	}
	return part, v, nil
}

// errScanStopped marks the pipe to the scanner as closed by the scanner itself.
var errScanStopped = errors.New("archive scan stopped")

// copyDump copies the dump from src to the stored file and to the scanner. It tells
// read errors (the source) from write errors (the disk, the scanner) because they
// are reported differently. Chunks of 1 MiB are gathered before they are handed on: a
// pipe delivers 64 KiB per read, and every hand-off to the compressor and the scanner
// costs goroutine switches that, on two cores, add up to seconds per gigabyte.
func copyDump(src io.Reader, out io.Writer, scan io.Writer, prog *progress, n *int64) (readErr, writeErr error) {
	buf := make([]byte, 1<<20)
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			if _, werr := out.Write(buf[:k]); werr != nil {
				return nil, werr
			}
			if _, werr := scan.Write(buf[:k]); werr != nil {
				return nil, werr
			}
			*n += int64(k)
			prog.add(int64(k))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// maxMigration reads the highest version from schema_migrations' COPY text (first
// column); 0 when there is none.
func maxMigration(copyText []byte) int {
	best := 0
	sc := bufio.NewScanner(bytes.NewReader(copyText))
	for sc.Scan() {
		field, _, _ := strings.Cut(sc.Text(), "\t")
		if n, err := strconv.Atoi(field); err == nil && n > best {
			best = n
		}
	}
	return best
}
