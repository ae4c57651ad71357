package documents

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/gdpr"
)

func (ev *env) uploadOK(t *testing.T, company string) Document {
	t.Helper()
	resp, body := ev.upload(t, company, "analyst", -1, part{name: "file", filename: "r.pdf", body: bytes.NewReader(randomPDF(10_000))})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	return decodeDoc(t, body)
}

// Failure order 1: the row delete does not commit. Nothing may change: the row and
// its object are both still there and the document still downloads.
func TestDeleteRowFailureKeepsEverything(t *testing.T) {
	ev := newEnv(t, 1<<20)
	d := ev.uploadOK(t, ev.company)
	ev.mod.beforeDeleteCommit = func() error { return errInjected }
	if resp, _ := ev.do(t, "DELETE", "/documents/"+d.ID, "analyst"); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("delete with failing commit: %d", resp.StatusCode)
	}
	if ev.count(t, "documents") != 1 || ev.count(t, "document_object_deletions") != 0 || len(ev.store.keys(t)) != 1 {
		t.Fatal("a failed delete changed something")
	}
	if resp, _ := ev.do(t, "GET", "/documents/"+d.ID+"/content", "viewer"); resp.StatusCode != 200 {
		t.Fatalf("download after failed delete: %d", resp.StatusCode)
	}
}

// Failure order 2: the row is gone but MinIO refuses the object delete. The delete
// succeeds for the client, the object stays queued, and the reaper removes it.
func TestDeleteObjectFailureIsReaped(t *testing.T) {
	ev := newEnv(t, 1<<20)
	d := ev.uploadOK(t, ev.company)
	ev.store.failRemove = errInjected
	if resp, _ := ev.do(t, "DELETE", "/documents/"+d.ID, "analyst"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if ev.count(t, "documents") != 0 || ev.count(t, "document_object_deletions") != 1 || len(ev.store.keys(t)) != 1 {
		t.Fatal("expected: row gone, object queued and still stored")
	}
	if _, err := ev.mod.Reap(context.Background()); err == nil {
		t.Fatal("reaper succeeded while the store fails")
	}
	ev.store.failRemove = nil
	ran, st, err := ev.mod.ReapLocked(context.Background())
	if err != nil || !ran || st.Queued != 1 {
		t.Fatalf("reap: %v %+v %v", ran, st, err)
	}
	if ev.count(t, "document_object_deletions") != 0 || len(ev.store.keys(t)) != 0 {
		t.Fatal("reaper left the object")
	}
}

func TestCompanyDeleteCascadesAndReaps(t *testing.T) {
	ev := newEnv(t, 1<<20)
	keep := ev.uploadOK(t, ev.company)
	doomed := ev.newCompany(t, "Doomed")
	ev.uploadOK(t, doomed)
	ev.uploadOK(t, doomed)
	if _, err := ev.pool.Exec(context.Background(), `DELETE FROM companies WHERE id = $1`, doomed); err != nil {
		t.Fatal(err)
	}
	if ev.count(t, "documents") != 1 || ev.count(t, "document_object_deletions") != 2 {
		t.Fatal("cascade did not queue the objects")
	}
	st, err := ev.mod.Reap(context.Background())
	if err != nil || st.Queued != 2 {
		t.Fatalf("reap %+v %v", st, err)
	}
	if keys := ev.store.keys(t); len(keys) != 1 || !strings.HasSuffix(keys[0], keep.ID) {
		t.Fatalf("objects %v", keys)
	}
}

func TestReaperRemovesOldOrphansOnly(t *testing.T) {
	ev := newEnv(t, 1<<20)
	d := ev.uploadOK(t, ev.company)
	ctx := context.Background()
	orphan := "documents/" + ev.company + "/00000000-0000-4000-8000-00000000dead"
	if err := ev.store.PutObject(ctx, orphan, strings.NewReader("left by a crash"), 15, "text/plain"); err != nil {
		t.Fatal(err)
	}
	if err := ev.store.PutObject(ctx, "audit/elsewhere", strings.NewReader("x"), 1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	st, err := ev.mod.Reap(ctx) // within the grace period: an upload may be about to insert
	if err != nil || st.Orphans != 0 {
		t.Fatalf("fresh orphan reaped: %+v %v", st, err)
	}
	ev.mod.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	st, err = ev.mod.Reap(ctx)
	if err != nil || st.Orphans != 1 {
		t.Fatalf("reap %+v %v", st, err)
	}
	keys := ev.store.keys(t)
	if len(keys) != 2 || keys[0] != "audit/elsewhere" || !strings.HasSuffix(keys[1], d.ID) {
		t.Fatalf("objects %v", keys)
	}
}

func TestInsertFailureRemovesObject(t *testing.T) {
	ev := newEnv(t, 1<<20)
	ev.mod.beforeInsert = func() error { return errInjected }
	resp, _ := ev.upload(t, ev.company, "analyst", -1, part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(5000))})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if keys := ev.store.keys(t); len(keys) != 0 || ev.count(t, "documents") != 0 {
		t.Fatalf("left %v", keys)
	}
	// the company disappears between the check and the insert: 404, nothing left
	doomed := ev.newCompany(t, "Doomed")
	ev.mod.beforeInsert = func() error {
		_, err := ev.pool.Exec(context.Background(), `DELETE FROM companies WHERE id = $1`, doomed)
		return err
	}
	resp, body := ev.upload(t, doomed, "analyst", -1, part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(5000))})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if keys := ev.store.keys(t); len(keys) != 0 {
		t.Fatalf("left %v", keys)
	}
}

func TestGDPRSource(t *testing.T) {
	ev := newEnv(t, 1<<20)
	d := ev.uploadOK(t, ev.company)
	ctx := context.Background()
	src := GDPRSource()
	tx, err := ev.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	got, err := src.Export(ctx, tx, analystID)
	if err != nil {
		t.Fatal(err)
	}
	if docs := got.([]Document); len(docs) != 1 || docs[0].ID != d.ID {
		t.Fatalf("export %+v", got)
	}
	if err := src.Anonymize(ctx, tx, analystID, "anon-x"); err != nil {
		t.Fatal(err)
	}
	got, _ = src.Export(ctx, tx, "anon-x")
	if docs := got.([]Document); len(docs) != 1 {
		t.Fatal("uploader not rewritten")
	}
	got, _ = src.Export(ctx, tx, analystID)
	b, _ := json.Marshal(got)
	if string(b) != "[]" {
		t.Fatalf("still exported for the user: %s", b)
	}
	var _ gdpr.Source = src
}

// zeroReader yields n bytes starting with a PDF header, without holding them.
type zeroReader struct{ n, off int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.off >= z.n {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n-z.off {
		p = p[:z.n-z.off]
	}
	for i := range p {
		p[i] = byte(z.off + int64(i))
	}
	if z.off == 0 && len(p) >= 5 {
		copy(p, "%PDF-")
	}
	z.off += int64(len(p))
	return len(p), nil
}

// TestUploadMemoryIsFlat uploads 100 MB and samples the heap throughout: the body
// streams through, so the heap must not grow by anything near the document's size.
func TestUploadMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB upload")
	}
	const size = 100 << 20
	ev := newEnv(t, size)
	// Collect early, so that the sampled heap is close to what is live rather than
	// garbage waiting for the next cycle (signing every chunk allocates a little).
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := base.HeapAlloc
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}()
	resp, body := ev.upload(t, ev.company, "analyst", -1, part{name: "file", filename: "big.pdf", body: &zeroReader{n: size}})
	close(done)
	<-sampled
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapAlloc)
	growth := int64(peak) - int64(base.HeapAlloc)
	t.Logf("100 MB upload: heap %d MB before, peak %d MB (growth %.1f MB), allocated %.1f MB in total",
		base.HeapAlloc>>20, peak>>20, float64(growth)/(1<<20), float64(after.TotalAlloc-base.TotalAlloc)/(1<<20))
	if growth > 32<<20 {
		t.Fatalf("heap grew by %d MB during a 100 MB upload", growth>>20)
	}
	if d := decodeDoc(t, body); d.Size != size {
		t.Fatalf("size %d", d.Size)
	}
}

func BenchmarkUpload1MB(b *testing.B) {
	ev := newEnv(b, 100<<20)
	data := randomPDF(1 << 20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		resp, body := ev.upload(b, ev.company, "analyst", -1, part{name: "file", filename: "b.pdf", body: bytes.NewReader(data)})
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "uploads/s")
}

// BenchmarkUpload1MBParallel uploads from 8 concurrent clients.
func BenchmarkUpload1MBParallel(b *testing.B) {
	ev := newEnv(b, 100<<20)
	data := randomPDF(1 << 20)
	b.SetBytes(int64(len(data)))
	b.SetParallelism(4) // × GOMAXPROCS (2) = 8 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, body := ev.upload(b, ev.company, "analyst", -1, part{name: "file", filename: "b.pdf", body: bytes.NewReader(data)})
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("upload: %d %s", resp.StatusCode, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "uploads/s")
}
