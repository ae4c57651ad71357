// Command backupbench times corpintel's backup against `pg_dump | gzip` and
// `pg_dump -Fc` on the same database, then a second (incremental) backup with unchanged
// objects, prints a table and writes bench/results/backup.json. bench/backup.sh starts
// the servers and seeds the database; this program only measures.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/jobs/backup"
	"github.com/corpintel/corpintel/jobs/hostexec"
	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	var (
		pgHost    = flag.String("pg-host", "127.0.0.1", "PostgreSQL host or socket directory")
		pgPort    = flag.Int("pg-port", 5432, "PostgreSQL port")
		pgDB      = flag.String("pg-db", "bench", "database")
		pgUser    = flag.String("pg-user", "postgres", "role")
		redisAddr = flag.String("redis", "", "Redis host:port (empty: no Redis)")
		minioEP   = flag.String("minio", "", "MinIO endpoint (empty: no objects)")
		minioKey  = flag.String("minio-user", "", "MinIO access key")
		minioSec  = flag.String("minio-password-file", "", "file holding the MinIO secret key")
		objects   = flag.Int("objects", 200, "objects to upload")
		objSize   = flag.Int("object-size", 256<<10, "bytes per object")
		work      = flag.String("work", "", "scratch directory (backup root and baseline files)")
		out       = flag.String("out", "bench/results/backup.json", "result file")
		seedInfo  = flag.String("seed-info", "", "JSON object describing how the data was made (merged into the result)")
		rounds    = flag.Int("rounds", 3, "measured rounds (each contender once per round; medians reported)")
	)
	flag.Parse()
	if *work == "" {
		fail(fmt.Errorf("-work is required"))
	}
	if err := os.MkdirAll(*work, 0o700); err != nil {
		fail(err)
	}
	ctx := context.Background()
	pgEnv := []string{"PGHOST=" + *pgHost, "PGPORT=" + strconv.Itoa(*pgPort), "PGUSER=" + *pgUser, "PGDATABASE=" + *pgDB}
	bin := hostexec.PGBinDir()
	if bin == "" {
		fail(fmt.Errorf("PostgreSQL 15 client programs not found"))
	}
	pgDump := filepath.Join(bin, "pg_dump")

	dbSize := strings.TrimSpace(sh(pgEnv, filepath.Join(bin, "psql")+` -XAtc "SELECT pg_database_size(current_database())"`))

	cfg := backup.Config{
		Root: filepath.Join(*work, "root"), Host: "bench", Corpintel: "bench",
		Postgres: backup.PostgresSource{Container: "postgres", Database: *pgDB, User: *pgUser, Host: *pgHost, Port: *pgPort},
	}
	if *redisAddr != "" {
		host, port, _ := strings.Cut(*redisAddr, ":")
		p, _ := strconv.Atoi(port)
		cfg.Redis = &backup.RedisSource{Container: "redis", Host: host, Port: p}
	}
	if *minioEP != "" {
		secret, err := os.ReadFile(*minioSec)
		if err != nil {
			fail(err)
		}
		cfg.MinIO = &backup.MinIOSource{Endpoint: *minioEP, AccessKey: *minioKey, SecretKey: strings.TrimSpace(string(secret)), Buckets: []string{"documents"}}
		if err := uploadObjects(ctx, cfg.MinIO, *objects, *objSize); err != nil {
			fail(err)
		}
	}
	idFile := filepath.Join(*work, "kit.key")
	rcpt, err := kit.GenerateIdentity(idFile, time.Now())
	if err != nil {
		fail(err)
	}
	cfg.Kit = backup.KitSource{Recipient: rcpt, IdentityFile: idFile, SecretsDir: filepath.Join(*work, "secrets")}
	if err := os.MkdirAll(cfg.Kit.SecretsDir, 0o700); err != nil {
		fail(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Kit.SecretsDir, "postgres_password"), []byte("bench"), 0o600); err != nil {
		fail(err)
	}
	ex := &hostexec.Exec{PGBinDir: bin}
	runner, err := backup.New(cfg, backup.Deps{Exec: ex, Tools: ex, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fail(err)
	}

	// Warm the page cache so the first contender does not pay for everyone.
	logf("warm-up: pg_dump -Fc -Z0 > /dev/null")
	sh(pgEnv, pgDump+" -Fc -Z0 > /dev/null")

	type row struct {
		Name    string    `json:"name"`
		Seconds float64   `json:"seconds"` // median of the rounds
		Runs    []float64 `json:"runs_seconds"`
		Bytes   int64     `json:"bytes"`
		Note    string    `json:"note,omitempty"`
	}
	shell := func(cmd, file string) (float64, int64) {
		t := time.Now()
		sh(pgEnv, cmd)
		d := time.Since(t).Seconds()
		n := fileSize(file)
		_ = os.Remove(file)
		return d, n
	}

	// The first backup copies every object; it is reported on its own.
	logf("corpintel backup (first: copies every object)")
	t := time.Now()
	res1, err := runner.Run(ctx, "daily")
	if err != nil {
		fail(err)
	}
	first := time.Since(t).Seconds()
	m1 := res1.Manifest
	var dumpStored int64
	for _, f := range m1.Files {
		if f.Path == m1.Postgres.File {
			dumpStored = f.Size
		}
	}

	// Then rounds, each contender once per round in the same order, so the load other
	// work puts on the machine falls on all of them alike; medians are reported.
	gzFile, fcFile, zsFile := filepath.Join(*work, "dump.sql.gz"), filepath.Join(*work, "dump.fc"), filepath.Join(*work, "dump.zst")
	_, haveZstd := exec.LookPath("zstd")
	var corp, dumpStep, verifyStep, gz, fc, zs []float64
	var gzBytes, fcBytes, zsBytes int64
	var last *backup.Result
	prev := ""
	for round := 1; round <= *rounds; round++ {
		logf("round %d/%d: corpintel backup (incremental), pg_dump | gzip, pg_dump -Fc, zstd reference", round, *rounds)
		t := time.Now()
		res, err := runner.Run(ctx, "daily")
		if err != nil {
			fail(err)
		}
		corp = append(corp, time.Since(t).Seconds())
		dumpStep = append(dumpStep, ms(res.Manifest.DurationsMS["postgres"]))
		verifyStep = append(verifyStep, ms(res.Manifest.DurationsMS["verify"]))
		last = res
		// Keep the root small: only the first and the latest backup stay.
		if round > 1 && prev != "" {
			_ = os.RemoveAll(prev)
		}
		prev = res.Dir
		var d float64
		d, gzBytes = shell(pgDump+" | gzip > "+gzFile, gzFile)
		gz = append(gz, d)
		d, fcBytes = shell(pgDump+" -Fc -f "+fcFile, fcFile)
		fc = append(fc, d)
		if haveZstd == nil {
			d, zsBytes = shell(pgDump+" -Fc -Z0 | zstd -1 -T2 -q -c > "+zsFile, zsFile)
			zs = append(zs, d)
		}
	}
	m2 := last.Manifest
	note := "no objects"
	var objDownloaded, objStored int64
	if m2.Objects != nil {
		objDownloaded, objStored = m2.Objects.Downloaded, m2.Objects.Stored
		note = fmt.Sprintf("%d objects (%s) unchanged: %d bytes downloaded, %d stored", m2.Objects.Count, human(m2.Objects.Bytes), objDownloaded, objStored)
	}
	rows := []row{
		{Name: "corpintel backup (incremental)", Seconds: median(corp), Runs: corp, Bytes: dumpStored,
			Note: fmt.Sprintf("dump step %.1f s + verify %.1f s; %s", median(dumpStep), median(verifyStep), note)},
		{Name: "pg_dump | gzip", Seconds: median(gz), Runs: gz, Bytes: gzBytes, Note: "the seed's backup.sh"},
		{Name: "pg_dump -Fc", Seconds: median(fc), Runs: fc, Bytes: fcBytes, Note: "pg_dump's own compression (zlib level 6)"},
	}
	if len(zs) > 0 {
		rows = append(rows, row{Name: "pg_dump -Fc -Z0 | zstd -1 -T2", Seconds: median(zs), Runs: zs, Bytes: zsBytes, Note: "reference pipeline (no verification)"})
	}
	rows = append(rows, row{Name: "corpintel backup (first)", Seconds: first, Runs: []float64{first}, Bytes: dumpStored,
		Note: fmt.Sprintf("copies every object: %s downloaded", func() string {
			if m1.Objects == nil {
				return "none"
			}
			return human(m1.Objects.Downloaded)
		}())})

	fmt.Printf("\n%-32s %8s %11s  %-24s %s\n", "contender", "median s", "dump size", "runs", "note")
	for _, r := range rows {
		var rs []string
		for _, x := range r.Runs {
			rs = append(rs, fmt.Sprintf("%.1f", x))
		}
		fmt.Printf("%-32s %8.1f %11s  %-24s %s\n", r.Name, r.Seconds, human(r.Bytes), strings.Join(rs, " "), r.Note)
	}
	full, mgz := median(corp), median(gz)
	result := map[string]any{
		"benchmark":                           "backup",
		"date":                                time.Now().UTC().Format(time.RFC3339),
		"commit":                              gitRev(),
		"cores":                               runtime.NumCPU(),
		"load_average":                        loadAvg(),
		"rounds":                              *rounds,
		"database_bytes":                      atoi(dbSize),
		"dump_bytes_uncompressed":             m1.Postgres.DumpBytes,
		"dump_bytes_stored":                   dumpStored,
		"rows":                                m1.Postgres.TotalRows,
		"contenders":                          rows,
		"corpintel_backup_seconds":            full,
		"corpintel_first_backup_seconds":      first,
		"corpintel_dump_step_seconds":         median(dumpStep),
		"corpintel_verify_step_seconds":       median(verifyStep),
		"pg_dump_gzip_seconds":                mgz,
		"pg_dump_fc_seconds":                  median(fc),
		"zstd_pipeline_seconds":               median(zs),
		"throughput_ratio_gzip":               round2(mgz / full),
		"throughput_ratio_gzip_dump_step":     round2(mgz / median(dumpStep)),
		"throughput_ratio_gzip_zstd_pipeline": round2(mgz / median(zs)),
		"throughput_ratio_fc":                 round2(median(fc) / full),
		"incremental_object_bytes_downloaded": objDownloaded,
		"incremental_object_bytes_stored":     objStored,
		"verified":                            res1.Verified && last.Verified,
		"format":                              "pg_dump -Fc -Z0 streamed, zstd (klauspost/compress, SpeedFastest) in the backup process; verification included in the backup time",
	}
	if *seedInfo != "" {
		var extra map[string]any
		if err := json.Unmarshal([]byte(*seedInfo), &extra); err == nil {
			for k, v := range extra {
				result[k] = v
			}
		}
	}
	b, _ := json.MarshalIndent(result, "", "  ")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fail(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("\nthroughput vs pg_dump | gzip: %.1fx (whole backup, verification included), %.1fx (dump step); the zstd reference pipeline: %.1fx\nwrote %s\n",
		mgz/full, mgz/median(dumpStep), mgz/median(zs), *out)
}

func uploadObjects(ctx context.Context, src *backup.MinIOSource, n, size int) error {
	c, err := minio.New(src.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(src.AccessKey, src.SecretKey, "")})
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, "documents", minio.MakeBucketOptions{}); err != nil {
		if ok, _ := c.BucketExists(ctx, "documents"); !ok {
			return err
		}
	}
	body := make([]byte, size)
	for i := 0; i < n; i++ {
		_, _ = rand.Read(body)
		if _, err := c.PutObject(ctx, "documents", fmt.Sprintf("bench/%04d.pdf", i), bytes.NewReader(body), int64(size), minio.PutObjectOptions{ContentType: "application/pdf"}); err != nil {
			return err
		}
	}
	logf("uploaded %d objects of %s", n, human(int64(size)))
	return nil
}

func sh(env []string, cmd string) string {
	c := exec.Command("bash", "-o", "pipefail", "-c", cmd)
	c.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, os.Stderr
	if err := c.Run(); err != nil {
		fail(fmt.Errorf("%s: %w", cmd, err))
	}
	return out.String()
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func ms(n int64) float64 { return float64(n) / 1000 }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func gitRev() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[backupbench %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "backupbench:", err)
	os.Exit(1)
}
