package blob

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestObjectsAdapter(t *testing.T) {
	b := testenv.MinIO(t)
	ctx := context.Background()
	s, err := New(ctx, b.Endpoint, b.AccessKey, b.SecretKey, b.Bucket, false)
	if err != nil {
		t.Fatal(err)
	}
	errMissing := errors.New("consumer: no such object")
	o := Objects{S: s, NotFound: errMissing}
	if err := o.PutObject(ctx, "a/x.txt", strings.NewReader("hello"), -1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	rc, err := o.GetObject(ctx, "a/x.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	var keys []string
	if err := o.ListObjects(ctx, "a/", func(k string, mod time.Time) error {
		if mod.IsZero() {
			t.Error("zero modification time")
		}
		keys = append(keys, k)
		return nil
	}); err != nil || len(keys) != 1 || keys[0] != "a/x.txt" {
		t.Fatalf("list = %v, %v", keys, err)
	}
	stop := errors.New("stop")
	if err := o.ListObjects(ctx, "a/", func(string, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}
	u, err := o.PresignGetObject(ctx, "a/x.txt", time.Minute, url.Values{"response-content-disposition": {"attachment"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("presigned GET: %d %q", resp.StatusCode, body)
	}
	if err := o.RemoveObject(ctx, "a/x.txt"); err != nil {
		t.Fatal(err)
	}
	if err := o.RemoveObject(ctx, "a/x.txt"); err != nil {
		t.Fatalf("removing a missing key: %v", err)
	}
	if _, err := o.GetObject(ctx, "a/x.txt"); !errors.Is(err, errMissing) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}
