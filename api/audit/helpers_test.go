package audit

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testDB returns a pool on a fresh database holding the audit schema (and the slice of
// the users table the GDPR source reads).
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Postgres(t).Pool(t)
	ctx := context.Background()
	files, err := filepath.Glob("../db/migrations/005*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no audit migrations found: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	return pool
}

// minioStore is the archiver's store on a real MinIO bucket.
type minioStore struct {
	c       *minio.Client
	bucket  string
	failPut error
	corrupt bool // GetObject returns other bytes than were stored
}

func testStore(t *testing.T) *minioStore {
	t.Helper()
	b := testenv.MinIO(t)
	return &minioStore{c: b.Client(t), bucket: b.Bucket}
}

func (s *minioStore) PutObject(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if s.failPut != nil {
		return s.failPut
	}
	_, err := s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: ct})
	return err
}

func (s *minioStore) GetObject(ctx context.Context, key string) (io.ReadCloser, error) {
	if s.corrupt {
		return io.NopCloser(strings.NewReader("not what was written")), nil
	}
	return s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
}

func (s *minioStore) ListObjects(ctx context.Context, prefix string, fn func(string, time.Time) error) error {
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if err := fn(o.Key, o.LastModified); err != nil {
			return err
		}
	}
	return nil
}

func (s *minioStore) keys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for o := range s.c.ListObjects(context.Background(), s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }
