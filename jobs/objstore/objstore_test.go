package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"filippo.io/age"
	"github.com/corpintel/corpintel/internal/testenv"
	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), Dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestPutDeduplicatesAndVerifies(t *testing.T) {
	s, dir := openStore(t)
	body := []byte("hello documents")
	r1, err := s.Put(bytes.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Blob.SHA256 != sum(body) || r1.Size != int64(len(body)) || r1.Stored != int64(len(body)) {
		t.Fatalf("first put: %+v", r1)
	}
	r2, err := s.Put(bytes.NewReader(body), nil)
	if err != nil || r2.Stored != 0 {
		t.Fatalf("second put stored %d (%v)", r2.Stored, err)
	}
	if err := s.Verify(r1.Blob, int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(r1.Blob, 3); err == nil {
		t.Error("wrong size verified")
	}
	tmp, _ := os.ReadDir(filepath.Join(dir, tmpDir))
	if len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
	// Corrupt the stored body: Verify names it.
	if err := os.WriteFile(filepath.Join(dir, r1.Blob.Path()), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(r1.Blob, -1); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("tampered blob: %v", err)
	}
	blobs, err := s.List()
	if err != nil || len(blobs) != 1 {
		t.Errorf("List = %v, %v", blobs, err)
	}
	if err := s.Remove(r1.Blob); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(r1.Blob); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, ok := s.Stat(r1.Blob); ok {
		t.Error("removed blob still there")
	}
	if err := s.Verify(r1.Blob, -1); err == nil {
		t.Error("missing blob verified")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset")
	}
	f.n--
	return copy(p, "partial body"), nil
}

func TestPutFailureLeavesNothing(t *testing.T) {
	s, dir := openStore(t)
	if _, err := s.Put(&failingReader{n: 3}, nil); err == nil {
		t.Fatal("want error")
	}
	blobs, _ := s.List()
	tmp, _ := os.ReadDir(filepath.Join(dir, tmpDir))
	if len(blobs) != 0 || len(tmp) != 0 {
		t.Errorf("left blobs %v temp %v", blobs, tmp)
	}
	// A crash leaves temp files; CleanTemp removes them.
	if err := os.WriteFile(filepath.Join(dir, tmpDir, "put-dead"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	tmp, _ = os.ReadDir(filepath.Join(dir, tmpDir))
	if len(tmp) != 0 {
		t.Errorf("CleanTemp left %v", tmp)
	}
}

func TestEncryptedBlobs(t *testing.T) {
	s, dir := openStore(t)
	id, _ := age.GenerateX25519Identity()
	body := bytes.Repeat([]byte("confidential "), 1000)
	res, err := s.Put(bytes.NewReader(body), id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Blob.Encrypted || !strings.HasSuffix(res.Blob.Path(), ".age") || res.Blob.SHA256 != sum(body) {
		t.Fatalf("%+v", res)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, res.Blob.Path()))
	if bytes.Contains(raw, []byte("confidential")) {
		t.Fatal("stored plaintext")
	}
	if err := s.Verify(res.Blob, int64(len(body)), id); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(res.Blob, int64(len(body))); err != nil {
		t.Errorf("presence-only verify: %v", err)
	}
	if _, err := s.Open(res.Blob); err == nil {
		t.Error("opened encrypted blob without identity")
	}
	rc, err := s.Open(res.Blob, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Error("decrypted body differs")
	}
	other, _ := age.GenerateX25519Identity()
	if err := s.Verify(res.Blob, -1, other); err == nil {
		t.Error("verified with the wrong identity")
	}
}

func TestStoreRefusesSymlinksAndJunk(t *testing.T) {
	s, dir := openStore(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := Blob{SHA256: sum([]byte("outside"))}
	if err := os.MkdirAll(filepath.Join(dir, b.SHA256[:2]), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, b.Path())); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Stat(b); ok {
		t.Error("a symlink counts as a stored blob")
	}
	if _, err := s.Open(b); err == nil {
		t.Error("opened a symlinked blob")
	}
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "ab", "notahash"), []byte("x"), 0o600)
	blobs, err := s.List()
	if err != nil || len(blobs) != 0 {
		t.Errorf("List = %v, %v", blobs, err)
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.Repeat("G", 64)} {
		if _, err := s.Open(Blob{SHA256: bad}); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
		if err := s.Remove(Blob{SHA256: bad}); err == nil {
			t.Errorf("Remove(%q) accepted", bad)
		}
		if _, ok := s.Stat(Blob{SHA256: bad}); ok {
			t.Errorf("Stat(%q) ok", bad)
		}
	}
}

func put(t *testing.T, c *minio.Client, bucket, key string, body []byte) {
	t.Helper()
	_, err := c.PutObject(context.Background(), bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/pdf", UserMetadata: map[string]string{"owner": "alice"}})
	if err != nil {
		t.Fatal(err)
	}
}

// Against a real MinIO: the first copy downloads everything, the second copies 0 bytes,
// a changed object costs exactly its size, and equal bodies are stored once.
func TestCopyIsIncremental(t *testing.T) {
	m := testenv.MinIO(t)
	c := m.Client(t)
	ctx := context.Background()
	bodies := map[string][]byte{
		"docs/a.pdf": bytes.Repeat([]byte("a"), 100_000),
		"docs/b.pdf": bytes.Repeat([]byte("b"), 50_000),
		"copy-of-a":  bytes.Repeat([]byte("a"), 100_000),
		"empty":      {},
	}
	for k, b := range bodies {
		put(t, c, m.Bucket, k, b)
	}
	s, _ := openStore(t)
	var progressed atomic.Int64
	idx1, st1, err := Copy(ctx, c, s, CopyOptions{Buckets: []string{m.Bucket}, Progress: func(n int64) { progressed.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	if st1.Objects != 4 || st1.Bytes != 250_000 || st1.Downloaded != 250_000 || st1.Stored != 150_000 || st1.Reused != 0 {
		t.Errorf("first copy: %+v", st1)
	}
	if progressed.Load() != 250_000 {
		t.Errorf("progress reported %d bytes", progressed.Load())
	}
	if idx1[0].Key != "copy-of-a" || idx1[0].SHA256 != idx1[1].SHA256 || idx1[1].ContentType != "application/pdf" || idx1[1].Metadata["Owner"] != "alice" && idx1[1].Metadata["owner"] != "alice" {
		t.Errorf("index: %+v", idx1)
	}

	idx2, st2, err := Copy(ctx, c, s, CopyOptions{Buckets: []string{m.Bucket}, Previous: idx1})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Downloaded != 0 || st2.Stored != 0 || st2.Reused != 4 || st2.Objects != 4 {
		t.Errorf("unchanged copy: %+v", st2)
	}
	if len(idx2) != len(idx1) {
		t.Fatalf("index sizes %d vs %d", len(idx2), len(idx1))
	}

	put(t, c, m.Bucket, "docs/b.pdf", bytes.Repeat([]byte("B"), 60_000))
	_, st3, err := Copy(ctx, c, s, CopyOptions{Buckets: []string{m.Bucket}, Previous: idx2})
	if err != nil {
		t.Fatal(err)
	}
	if st3.Downloaded != 60_000 || st3.Stored != 60_000 || st3.Reused != 3 || len(st3.NewBlobs) != 1 {
		t.Errorf("one changed object: %+v", st3)
	}

	// A previous entry whose blob has gone is downloaded again.
	if err := s.Remove(idx2[0].Blob()); err != nil {
		t.Fatal(err)
	}
	_, st4, err := Copy(ctx, c, s, CopyOptions{Buckets: []string{m.Bucket}, Previous: idx2})
	if err != nil {
		t.Fatal(err)
	}
	if st4.Downloaded == 0 {
		t.Errorf("missing blob not fetched again: %+v", st4)
	}
}

func TestCopyAllBucketsAndErrors(t *testing.T) {
	m := testenv.MinIOServer(t)
	c := m.Client(t)
	put(t, c, m.Bucket, "x", []byte("x"))
	s, _ := openStore(t)
	idx, st, err := Copy(context.Background(), c, s, CopyOptions{})
	if err != nil || st.Objects != 1 || idx[0].Bucket != m.Bucket {
		t.Fatalf("all buckets: %+v %v", st, err)
	}
	if _, _, err := Copy(context.Background(), c, s, CopyOptions{Buckets: []string{"no-such-bucket"}}); err == nil {
		t.Error("missing bucket accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Copy(ctx, c, s, CopyOptions{Buckets: []string{m.Bucket}}); err == nil {
		t.Error("cancelled copy succeeded")
	}
	m.Stop(t)
	if _, _, err := Copy(context.Background(), c, s, CopyOptions{}); err == nil {
		t.Error("copy from a stopped server succeeded")
	}
}

func TestIndexRoundTripAndHostileLines(t *testing.T) {
	in := []Entry{{Bucket: "b", Key: "k/1", Size: 3, ETag: "e", SHA256: sum([]byte("abc"))}}
	var buf bytes.Buffer
	if err := WriteIndex(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadIndex(&buf)
	if err != nil || len(out) != 1 || out[0].Key != "k/1" {
		t.Fatalf("%v %v", out, err)
	}
	good := `{"bucket":"b","key":"k","size":1,"etag":"e","modified":"2026-01-01T00:00:00Z","sha256":"` + sum(nil) + `"}`
	bad := map[string]string{
		"not json":  "{",
		"bad hash":  strings.Replace(good, sum(nil), "../../etc", 1),
		"negative":  strings.Replace(good, `"size":1`, `"size":-1`, 1),
		"no bucket": strings.Replace(good, `"bucket":"b"`, `"bucket":""`, 1),
		"slash":     strings.Replace(good, `"bucket":"b"`, `"bucket":"../b"`, 1),
		"no key":    strings.Replace(good, `"key":"k"`, `"key":""`, 1),
		"long key":  strings.Replace(good, `"key":"k"`, `"key":"`+strings.Repeat("k", maxKeyLen+1)+`"`, 1),
		"unknown":   strings.Replace(good, `{`, `{"evil":1,`, 1),
		"duplicate": good + "\n" + good,
		"huge line": `{"key":"` + strings.Repeat("k", maxIndexLine) + `"}`,
	}
	for name, text := range bad {
		if _, err := ReadIndex(strings.NewReader(text)); !errors.Is(err, ErrBadIndex) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
