package documents

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

func randomPDF(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "%PDF-1.7\n")
	return b
}

func decodeDoc(t *testing.T, b []byte) Document {
	t.Helper()
	var d Document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return d
}

func TestUploadDownloadDelete(t *testing.T) {
	ev := newEnv(t, 4<<20)
	data := randomPDF(1_500_000)
	sum := sha256.Sum256(data)
	name := "Bericht Q3 – Übersicht 📈.pdf"
	resp, body := ev.upload(t, ev.company, "analyst", -1,
		part{name: "title", body: strings.NewReader("  Quarterly report  ")},
		part{name: "file", filename: name, body: bytes.NewReader(data)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	d := decodeDoc(t, body)
	if d.Title != "Quarterly report" || d.Filename != name || d.ContentType != "application/pdf" || d.Size != int64(len(data)) ||
		d.SHA256 != hex.EncodeToString(sum[:]) || d.CompanyID != ev.company || d.UploadedBy != analystID || d.CreatedAt.IsZero() {
		t.Fatalf("document %+v", d)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/documents/"+d.ID {
		t.Fatalf("Location %q", loc)
	}
	if keys := ev.store.keys(t); len(keys) != 1 || keys[0] != "documents/"+ev.company+"/"+d.ID {
		t.Fatalf("objects %v", keys)
	}
	last := ev.audit.events[len(ev.audit.events)-1]
	if last.Action != "document.upload" || last.Outcome != "success" || last.Target != "document/"+d.ID || last.Detail["sha256"] != d.SHA256 {
		t.Fatalf("audit %+v", last)
	}

	// metadata and listing (a viewer may read)
	resp, body = ev.do(t, "GET", "/documents/"+d.ID, "viewer")
	if resp.StatusCode != 200 || decodeDoc(t, body) != d {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	resp, body = ev.do(t, "GET", "/companies/"+ev.company+"/documents", "viewer")
	var l List
	if resp.StatusCode != 200 || json.Unmarshal(body, &l) != nil || len(l.Items) != 1 || l.Items[0] != d {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}

	// streamed download = the uploaded bytes, with type, length, digest and a safe name
	resp, body = ev.do(t, "GET", "/documents/"+d.ID+"/content", "viewer")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}
	h := resp.Header
	if h.Get("Content-Type") != "application/pdf" || h.Get("Content-Length") != "1500000" || h.Get("ETag") != `"`+d.SHA256+`"` ||
		h.Get("Content-Disposition") != `attachment; filename="Bericht Q3 _ _bersicht _.pdf"; filename*=UTF-8''Bericht%20Q3%20%E2%80%93%20%C3%9Cbersicht%20%F0%9F%93%88.pdf` ||
		h.Get("X-Content-Type-Options") != "" && h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("download headers %v", h)
	}
	resp, _ = ev.do(t, "GET", "/documents/"+d.ID+"/content", "viewer", "If-None-Match", `"`+d.SHA256+`"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional download: %d", resp.StatusCode)
	}

	// the signed link works without our token, for the same bytes
	resp, body = ev.do(t, "GET", "/documents/"+d.ID+"/url", "viewer")
	var pu PresignedURL
	if resp.StatusCode != 200 || json.Unmarshal(body, &pu) != nil || time.Until(pu.ExpiresAt) > 5*time.Minute || time.Until(pu.ExpiresAt) < 4*time.Minute {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(pu.URL, "/api/v1/documents/"+d.ID+"/download?") {
		t.Fatalf("link %s", pu.URL)
	}
	presigned, err := http.Get(ev.srv.URL + pu.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(presigned.Body)
	presigned.Body.Close()
	if presigned.StatusCode != 200 || !bytes.Equal(got, data) || !strings.HasPrefix(presigned.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("presigned download: %d %v", presigned.StatusCode, presigned.Header)
	}

	// a viewer cannot delete; the analyst can, and nothing is left anywhere
	if resp, _ := ev.do(t, "DELETE", "/documents/"+d.ID, "viewer"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer delete: %d", resp.StatusCode)
	}
	if resp, body := ev.do(t, "DELETE", "/documents/"+d.ID, "analyst"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if keys := ev.store.keys(t); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
	if n := ev.count(t, "documents") + ev.count(t, "document_object_deletions"); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	for _, p := range []string{"/documents/" + d.ID, "/documents/" + d.ID + "/content", "/documents/" + d.ID + "/url"} {
		if resp, _ := ev.do(t, "GET", p, "viewer"); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s after delete: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := ev.do(t, "DELETE", "/documents/"+d.ID, "analyst"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second delete: %d", resp.StatusCode)
	}
}

func TestUploadRejects(t *testing.T) {
	const max = 256 << 10
	ev := newEnv(t, max)
	file := func(n int) part { return part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(n))} }
	cases := []struct {
		name    string
		company string
		token   string
		cl      int64 // -1 chunked, 0 computed by the client (we pass -1 then)
		parts   []part
		status  int
	}{
		{"one byte over the limit, chunked", "", "analyst", -1, []part{file(max + 1)}, 413},
		{"far over the limit, chunked", "", "analyst", -1, []part{file(3 * max)}, 413},
		{"missing file field", "", "analyst", -1, []part{{name: "title", body: strings.NewReader("t")}}, 422},
		{"empty file", "", "analyst", -1, []part{file(0)}, 422},
		{"unknown field", "", "analyst", -1, []part{{name: "evil", body: strings.NewReader("x")}, file(10)}, 400},
		{"unknown field after the file", "", "analyst", -1, []part{file(1000), {name: "evil", body: strings.NewReader("x")}}, 400},
		{"two files", "", "analyst", -1, []part{file(100), file(100)}, 400},
		{"title too long", "", "analyst", -1, []part{file(100), {name: "title", body: strings.NewReader(strings.Repeat("é", 301))}}, 422},
		{"title with control characters", "", "analyst", -1, []part{{name: "title", body: strings.NewReader("a\x00b")}, file(100)}, 422},
		{"ELF executable", "", "analyst", -1, []part{{name: "file", filename: "x.pdf", body: strings.NewReader("\x7fELF\x02\x01\x01rest")}}, 415},
		{"PE executable", "", "analyst", -1, []part{{name: "file", filename: "setup.exe", body: strings.NewReader("MZ\x90\x00rest")}}, 415},
		{"unknown company", "00000000-0000-4000-8000-000000000000", "analyst", -1, []part{file(10)}, 404},
		{"malformed company id", "../../etc", "analyst", -1, []part{file(10)}, 404},
		{"viewer", "", "viewer", -1, []part{file(10)}, 403},
		{"no token", "", "", -1, []part{file(10)}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			company := c.company
			if company == "" {
				company = ev.company
			}
			resp, body := ev.upload(t, company, c.token, c.cl, c.parts...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
			}
			if keys := ev.store.keys(t); len(keys) != 0 {
				t.Fatalf("objects stored: %v", keys)
			}
			if n := ev.count(t, "documents"); n != 0 {
				t.Fatalf("%d rows stored", n)
			}
		})
	}
}

func TestUploadWrongContentType(t *testing.T) {
	ev := newEnv(t, 1<<20)
	req, _ := http.NewRequest("POST", ev.url("/companies/"+ev.company+"/documents"), strings.NewReader(`{"file":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer analyst")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestUploadExactlyAtLimit(t *testing.T) {
	const max = 256 << 10
	ev := newEnv(t, max)
	data := randomPDF(max)
	resp, body := ev.upload(t, ev.company, "analyst", -1, part{name: "file", filename: "limit.pdf", body: bytes.NewReader(data)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload at the limit: %d %s", resp.StatusCode, body)
	}
	d := decodeDoc(t, body)
	if d.Size != max || d.Title != "limit.pdf" {
		t.Fatalf("document %+v", d)
	}
	_, got := ev.do(t, "GET", "/documents/"+d.ID+"/content", "viewer")
	if !bytes.Equal(got, data) {
		t.Fatal("download differs")
	}
}

func TestUploadContentLengthLies(t *testing.T) {
	ev := newEnv(t, 1<<20)
	// The body is larger than the declared length: the server reads only what was
	// declared, so the multipart body ends early and nothing is stored.
	resp, body := ev.rawUpload(t, 2000, part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(100_000))})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if keys := ev.store.keys(t); len(keys) != 0 || ev.count(t, "documents") != 0 {
		t.Fatalf("stored %v", keys)
	}
	// Declared larger than the limit: refused before a byte of the body is read.
	resp, body = ev.rawUpload(t, 10<<20, part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(10))})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("status %d %v: %s", resp.StatusCode, resp.Header, body)
	}
	// Declared small, body far beyond the limit: the server stops at the declared length.
	resp, body = ev.rawUpload(t, 1<<20, part{name: "file", filename: "a.pdf", body: bytes.NewReader(randomPDF(3 << 20))})
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if keys := ev.store.keys(t); len(keys) != 0 || ev.count(t, "documents") != 0 {
		t.Fatalf("stored %v", keys)
	}
}

func TestFilenames(t *testing.T) {
	ev := newEnv(t, 1<<20)
	cases := map[string]string{
		"../../etc/passwd":             "passwd",
		`..\..\Windows\System32\x.txt`: "x.txt",
		"..":                           "document",
		".bashrc":                      "bashrc",
		"报告 2026.txt":                  "报告 2026.txt",
		"a\u202eexe.txt":               "a_exe.txt",
		"con.txt":                      "_con.txt",
	}
	for in, want := range cases {
		resp, body := ev.upload(t, ev.company, "analyst", -1, part{name: "file", filename: in, body: strings.NewReader("hello, world\n")})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%q: %d %s", in, resp.StatusCode, body)
		}
		d := decodeDoc(t, body)
		if d.Filename != want || d.ContentType != "text/plain; charset=utf-8" {
			t.Errorf("%q stored as %q (%s), want %q", in, d.Filename, d.ContentType, want)
		}
		var key string
		if err := ev.pool.QueryRow(context.Background(), `SELECT object_key FROM documents WHERE id = $1`, d.ID).Scan(&key); err != nil || key != "documents/"+ev.company+"/"+d.ID {
			t.Errorf("object key %q", key)
		}
	}
}

func TestListPaginationAndQuery(t *testing.T) {
	ev := newEnv(t, 1<<20)
	other := ev.newCompany(t, "Other")
	for i := range 5 {
		if resp, body := ev.upload(t, ev.company, "analyst", -1, part{name: "file", filename: "f.txt", body: strings.NewReader(strings.Repeat("x", i+1))}); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		_, body := ev.do(t, "GET", "/companies/"+ev.company+"/documents?limit=2&cursor="+cursor, "viewer")
		var l List
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, d := range l.Items {
			if seen[d.ID] {
				t.Fatal("listed twice")
			}
			seen[d.ID] = true
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Fatalf("listed %d of 5", len(seen))
	}
	_, body := ev.do(t, "GET", "/companies/"+other+"/documents", "viewer")
	if !strings.Contains(string(body), `"items":[]`) {
		t.Fatalf("other company lists %s", body)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?cursor=zzz", "?sort=name"} {
		if resp, _ := ev.do(t, "GET", "/companies/"+ev.company+"/documents"+q, "viewer"); resp.StatusCode != 422 {
			t.Fatalf("%s: %d", q, resp.StatusCode)
		}
	}
	if resp, _ := ev.do(t, "GET", "/companies/00000000-0000-4000-8000-000000000000/documents", "viewer"); resp.StatusCode != 404 {
		t.Fatalf("unknown company: %d", resp.StatusCode)
	}
}
