package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T, m *testenv.MinIOBucket, bucket string, opts ...Option) *Store {
	t.Helper()
	s, err := New(context.Background(), m.Endpoint, m.AccessKey, m.SecretKey, bucket, m.UseTLS, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// onlyReader hides io.ReaderAt and io.Seeker so minio-go must stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutGetStatDelete(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket, WithPartSize(5<<20))
	tests := []struct {
		name        string
		key         string
		size        int   // bytes to upload
		declared    int64 // size passed to Put (-1: unknown)
		contentType string
		wantParts   string // ETag suffix of a multipart upload
		wantType    string
	}{
		{name: "small known size", key: "docs/a.txt", size: 11, declared: 11, contentType: "text/plain", wantType: "text/plain"},
		{name: "empty", key: "docs/empty", size: 0, declared: 0, wantType: "application/octet-stream"},
		{name: "unknown size, one part", key: "docs/b.bin", size: 1 << 20, declared: -1, contentType: "application/pdf", wantParts: "-1", wantType: "application/pdf"},
		{name: "unknown size, multipart", key: "docs/c.bin", size: 12 << 20, declared: -1, wantParts: "-3", wantType: "application/octet-stream"},
		{name: "known size, multipart", key: "docs/d.bin", size: 11 << 20, declared: 11 << 20, wantParts: "-3", wantType: "application/octet-stream"},
		{name: "unicode key", key: "docs/Ünïcödé 報告.txt", size: 5, declared: 5, wantType: "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := randomBytes(t, tt.size)
			etag, err := s.Put(ctx, tt.key, onlyReader{bytes.NewReader(data)}, tt.declared, tt.contentType)
			if err != nil {
				t.Fatal(err)
			}
			if etag == "" || (tt.wantParts != "" && !strings.HasSuffix(etag, tt.wantParts)) {
				t.Errorf("etag = %q, want suffix %q", etag, tt.wantParts)
			}
			rc, info, err := s.Get(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(data))
			}
			if info.Key != tt.key || info.Size != int64(tt.size) || info.ContentType != tt.wantType || info.ETag != etag {
				t.Errorf("info = %+v", info)
			}
			st, err := s.Stat(ctx, tt.key)
			if err != nil || st.Size != int64(tt.size) || st.ETag != etag {
				t.Errorf("stat = %+v, %v", st, err)
			}
			if err := s.Delete(ctx, tt.key); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Stat(ctx, tt.key); !errors.Is(err, ErrNotFound) {
				t.Errorf("stat after delete: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket)
	if _, _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
}

// failingReader fails after n bytes, like a client that disconnects mid-upload or an
// upload over the size limit.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func TestFailedPutStoresNothing(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket, WithPartSize(5<<20))
	tooBig := errors.New("upload exceeds the limit")
	tests := []struct {
		name string
		n    int
		size int64
	}{
		{"unknown size, fails in the second part", 7 << 20, -1},
		{"unknown size, fails in the first part", 1 << 20, -1},
		{"known size, fails early", 1 << 20, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(ctx, "partial", &failingReader{n: tt.n, err: tooBig}, tt.size, "")
			if err == nil {
				t.Fatal("Put succeeded")
			}
			if _, err := s.Stat(ctx, "partial"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after a failed Put: %v, want ErrNotFound", err)
			}
			for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "partial", true) {
				t.Errorf("incomplete upload left behind: %+v", u)
			}
		})
	}
}

func TestEnsureBucketAndPing(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket+"-new")
	if err := s.Ping(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ping before EnsureBucket: %v, want ErrNotFound", err)
	}
	for i := range 2 {
		if err := s.EnsureBucket(ctx); err != nil {
			t.Fatalf("EnsureBucket #%d: %v", i+1, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	bad := *m
	bad.SecretKey = "wrong-secret-key"
	if err := newStore(t, &bad, m.Bucket).Ping(ctx); err == nil {
		t.Error("Ping with a wrong secret key succeeded")
	}
}

func TestPingServerDown(t *testing.T) {
	m := testenv.MinIOServer(t)
	s := newStore(t, m, m.Bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	m.Stop(t)
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with the server down succeeded")
	}
}

func TestPresignGet(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket)
	data := []byte("%PDF-1.7 report")
	if _, err := s.Put(ctx, "docs/1", bytes.NewReader(data), int64(len(data)), "application/pdf"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, filename, wantName string
	}{
		{"no filename", "", ""},
		{"ascii", "annual report.pdf", "annual report.pdf"},
		{"unicode", "Jahresbericht 2025 – Ü.pdf", "Jahresbericht 2025 – Ü.pdf"},
		{"path separators dropped", "../../etc/passwd", ".._.._etc_passwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := s.PresignGet(ctx, "docs/1", time.Minute, tt.filename)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
				t.Fatalf("GET presigned: %s %q", resp.Status, body)
			}
			cd := resp.Header.Get("Content-Disposition")
			if tt.wantName == "" {
				if cd != "" {
					t.Errorf("Content-Disposition = %q, want none", cd)
				}
				return
			}
			_, params, err := mime.ParseMediaType(cd)
			if err != nil || params["filename"] != tt.wantName {
				t.Errorf("Content-Disposition = %q (%v), want filename %q", cd, err, tt.wantName)
			}
		})
	}
	for _, ttl := range []time.Duration{0, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(ctx, "docs/1", ttl, ""); err == nil {
			t.Errorf("PresignGet with ttl %s succeeded", ttl)
		}
	}
	// A URL signed for another endpoint names that host.
	pub := newStore(t, m, m.Bucket, WithPresignEndpoint("files.example.test", true))
	u, err := pub.PresignGet(ctx, "docs/1", time.Minute, "")
	if err != nil || u.Scheme != "https" || u.Host != "files.example.test" {
		t.Errorf("presign for a public endpoint: %v, %v", u, err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	s := newStore(t, m, m.Bucket)
	for _, k := range []string{"companies/1/b", "companies/1/a", "companies/2/a", "other"} {
		if _, err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"companies/1/", []string{"companies/1/a", "companies/1/b"}},
		{"companies/", []string{"companies/1/a", "companies/1/b", "companies/2/a"}},
		{"nothing/", nil},
	}
	for _, tt := range tests {
		var got []string
		for info, err := range s.List(ctx, tt.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, info.Key)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("List(%q) = %v, want %v", tt.prefix, got, tt.want)
		}
	}
	// Breaking early is fine.
	for range s.List(ctx, "") {
		break
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		bucket string
		opts   []Option
	}{
		{"empty bucket", "", nil},
		{"part size too small", "b", []Option{WithPartSize(1 << 20)}},
	}
	for _, tt := range tests {
		if _, err := New(context.Background(), "127.0.0.1:9000", "k", "s", tt.bucket, false, tt.opts...); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
}

// patternReader yields n bytes without holding them.
type patternReader struct{ n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n)
	for i := range b[:k] {
		b[i] = byte(i)
	}
	p.n -= k
	return int(k), nil
}

func TestPutUnknownSizeBoundedMemory(t *testing.T) {
	ctx := context.Background()
	m := testenv.MinIO(t)
	const part = 5 << 20
	const size = 64 << 20
	s := newStore(t, m, m.Bucket, WithPartSize(part))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := s.Put(ctx, "big", &patternReader{n: size}, -1, ""); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Allocations over the whole upload, not just the peak: a buffered upload would
	// allocate at least the object's size.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 5*part {
		t.Errorf("uploading %d MiB allocated %d MiB, want at most %d MiB", size>>20, alloc>>20, 5*part>>20)
	}
	t.Logf("allocated %d MiB", (after.TotalAlloc-before.TotalAlloc)>>20)
	st, err := s.Stat(ctx, "big")
	if err != nil || st.Size != size {
		t.Errorf("stat = %+v, %v", st, err)
	}
}
