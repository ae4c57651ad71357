package objstore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"
)

// Entry is one object of a backup's index: where it lived, what identified its version,
// and the blob that holds its body.
type Entry struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	Modified    time.Time         `json:"modified"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	SHA256      string            `json:"sha256"`
	Encrypted   bool              `json:"encrypted,omitempty"`
}

// Blob is the entry's body in the store.
func (e Entry) Blob() Blob { return Blob{SHA256: e.SHA256, Encrypted: e.Encrypted} }

type versionKey struct {
	bucket, key, etag string
	size              int64
	modified          int64
	encrypted         bool
}

func keyOf(e Entry) versionKey {
	return versionKey{e.Bucket, e.Key, e.ETag, e.Size, e.Modified.UnixNano(), e.Encrypted}
}

// Stats report what Copy did.
type Stats struct {
	Objects    int   // objects in the index
	Bytes      int64 // their total size
	Reused     int   // taken from the previous index without a download
	Downloaded int64 // body bytes fetched from the S3 API
	Stored     int64 // bytes newly written into the store
	NewBlobs   []Blob
}

// CopyOptions configure Copy.
type CopyOptions struct {
	Buckets   []string      // empty: every bucket the credentials can list
	Previous  []Entry       // the last backup's index, for unchanged objects
	Recipient age.Recipient // encrypt stored blobs
	Workers   int           // parallel downloads (default 4)
	Progress  func(n int64) // called with body bytes as they arrive
}

// Copy lists the objects of the buckets and makes sure the store holds each body,
// returning the new index sorted by bucket and key. An object whose version matches
// an entry of opts.Previous whose blob is still stored costs no download.
func Copy(ctx context.Context, client *minio.Client, store *Store, opts CopyOptions) ([]Entry, Stats, error) {
	var st Stats
	buckets := opts.Buckets
	if len(buckets) == 0 {
		bs, err := client.ListBuckets(ctx)
		if err != nil {
			return nil, st, fmt.Errorf("objstore: list buckets: %w", err)
		}
		for _, b := range bs {
			buckets = append(buckets, b.Name)
		}
	}
	sort.Strings(buckets)
	prev := make(map[versionKey]Entry, len(opts.Previous))
	for _, e := range opts.Previous {
		prev[keyOf(e)] = e
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 4
	}

	var (
		mu    sync.Mutex
		index []Entry
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, bucket := range buckets {
		for obj := range client.ListObjects(gctx, bucket, minio.ListObjectsOptions{Recursive: true, WithMetadata: true}) {
			if obj.Err != nil {
				_ = g.Wait()
				return nil, st, fmt.Errorf("objstore: list bucket %s: %w", bucket, obj.Err)
			}
			if strings.HasSuffix(obj.Key, "/") && obj.Size == 0 {
				continue // a "folder" marker: nothing to keep
			}
			e := Entry{
				Bucket: bucket, Key: obj.Key, Size: obj.Size, ETag: strings.Trim(obj.ETag, `"`),
				Modified: obj.LastModified.UTC(), ContentType: obj.ContentType,
				Metadata: map[string]string(obj.UserMetadataStripped), Encrypted: opts.Recipient != nil,
			}
			if len(e.Metadata) == 0 {
				e.Metadata = nil
			}
			if p, ok := prev[keyOf(e)]; ok {
				if _, stored := store.Stat(p.Blob()); stored {
					e.SHA256 = p.SHA256
					mu.Lock()
					index = append(index, e)
					st.Reused++
					mu.Unlock()
					continue
				}
			}
			g.Go(func() error {
				res, err := fetch(gctx, client, store, &e, opts)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				index = append(index, e)
				st.Downloaded += res.Size
				st.Stored += res.Stored
				if res.Stored > 0 {
					st.NewBlobs = append(st.NewBlobs, res.Blob)
				}
				return nil
			})
		}
		if err := gctx.Err(); err != nil {
			break
		}
	}
	if err := g.Wait(); err != nil {
		return nil, st, err
	}
	if err := ctx.Err(); err != nil {
		return nil, st, fmt.Errorf("objstore: copy: %w", err)
	}
	sort.Slice(index, func(i, j int) bool {
		if index[i].Bucket != index[j].Bucket {
			return index[i].Bucket < index[j].Bucket
		}
		return index[i].Key < index[j].Key
	})
	st.Objects = len(index)
	for _, e := range index {
		st.Bytes += e.Size
	}
	return index, st, nil
}

// fetch downloads one object into the store. An object replaced since the listing is
// recorded as the version actually fetched (size, ETag and time from the response).
func fetch(ctx context.Context, client *minio.Client, store *Store, e *Entry, opts CopyOptions) (PutResult, error) {
	obj, err := client.GetObject(ctx, e.Bucket, e.Key, minio.GetObjectOptions{})
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: get %s/%s: %w", e.Bucket, e.Key, err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: get %s/%s: %w", e.Bucket, e.Key, err)
	}
	var r io.Reader = obj
	if opts.Progress != nil {
		r = progressReader{r, opts.Progress}
	}
	res, err := store.Put(r, opts.Recipient)
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: copy %s/%s: %w", e.Bucket, e.Key, err)
	}
	if res.Size != info.Size {
		return PutResult{}, fmt.Errorf("objstore: copy %s/%s: got %d bytes, the server announced %d", e.Bucket, e.Key, res.Size, info.Size)
	}
	// Keep the listing's identity (its times have millisecond precision, a GET's
	// Last-Modified only seconds) unless the object was replaced in between.
	if etag := strings.Trim(info.ETag, `"`); etag != e.ETag || info.Size != e.Size {
		e.Size, e.ETag, e.Modified = info.Size, etag, info.LastModified.UTC()
	}
	if info.ContentType != "" {
		e.ContentType = info.ContentType
	}
	e.SHA256 = res.Blob.SHA256
	return res, nil
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(int64(n))
	}
	return n, err
}

// Index limits for ReadIndex.
const (
	maxIndexLine = 1 << 20
	maxKeyLen    = 1024
)

// WriteIndex writes the entries as JSON lines.
func WriteIndex(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("objstore: write index: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("objstore: write index: %w", err)
	}
	return nil
}

// ErrBadIndex is wrapped by every refusal of ReadIndex.
var ErrBadIndex = errors.New("bad object index")

// ReadIndex reads an index written by WriteIndex, refusing entries that could not have
// come from it: bad hashes, negative sizes, empty or over-long names, duplicates.
func ReadIndex(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxIndexLine)
	var out []Entry
	seen := map[[2]string]bool{}
	for line := 1; sc.Scan(); line++ {
		var e Entry
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("objstore: %w: line %d: %v", ErrBadIndex, line, err)
		}
		switch {
		case !ValidSum(e.SHA256):
			return nil, fmt.Errorf("objstore: %w: line %d: sha256 %q", ErrBadIndex, line, e.SHA256)
		case e.Size < 0:
			return nil, fmt.Errorf("objstore: %w: line %d: size %d", ErrBadIndex, line, e.Size)
		case e.Bucket == "" || len(e.Bucket) > 63 || strings.ContainsAny(e.Bucket, "/\\\x00"):
			return nil, fmt.Errorf("objstore: %w: line %d: bucket %q", ErrBadIndex, line, e.Bucket)
		case e.Key == "" || len(e.Key) > maxKeyLen || strings.ContainsRune(e.Key, 0):
			return nil, fmt.Errorf("objstore: %w: line %d: key of %d bytes", ErrBadIndex, line, len(e.Key))
		}
		k := [2]string{e.Bucket, e.Key}
		if seen[k] {
			return nil, fmt.Errorf("objstore: %w: line %d: %s/%s appears twice", ErrBadIndex, line, e.Bucket, e.Key)
		}
		seen[k] = true
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("objstore: %w: %v", ErrBadIndex, err)
	}
	return out, nil
}
