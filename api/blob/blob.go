// Package blob stores the API's documents in MinIO (S3): streaming uploads with bounded
// memory, streamed downloads, presigned download links and a readiness ping.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultPartSize is the multipart part size: an upload of unknown size holds one part in
// memory at a time (and objects up to 10 000 parts, 160 GiB, fit).
const DefaultPartSize = 16 << 20

// ErrNotFound is returned (wrapped) for a missing object or bucket.
var ErrNotFound = errors.New("blob: not found")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string
	ContentType  string
	LastModified time.Time
}

// Store is one bucket on a MinIO (or any S3) server.
type Store struct {
	client   *minio.Client
	probe    *minio.Client // no retries: readiness must answer fast
	presign  *minio.Client
	bucket   string
	partSize uint64
	region   string
}

// Option configures a Store.
type Option func(*options)

type options struct {
	partSize        uint64
	region          string
	presignEndpoint string
	presignTLS      bool
	transport       http.RoundTripper
}

// WithPartSize sets the multipart part size (at least 5 MiB; default DefaultPartSize).
func WithPartSize(n uint64) Option { return func(o *options) { o.partSize = n } }

// WithPresignEndpoint signs presigned URLs for the address clients use (e.g. the public
// host behind the edge) instead of the internal endpoint: a V4 signature covers the
// host, so it cannot be rewritten afterwards.
func WithPresignEndpoint(endpoint string, useTLS bool) Option {
	return func(o *options) { o.presignEndpoint, o.presignTLS = endpoint, useTLS }
}

// WithRegion sets the region (default us-east-1, MinIO's default); a known region
// spares a bucket-location round trip and lets presigning work offline.
func WithRegion(region string) Option { return func(o *options) { o.region = region } }

// WithTransport sets the HTTP transport (e.g. for TLS with a private CA).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// New returns a store for bucket at endpoint (host:port). It does not contact the
// server: see EnsureBucket and Ping.
func New(_ context.Context, endpoint, accessKey, secretKey, bucket string, useTLS bool, opts ...Option) (*Store, error) {
	o := options{partSize: DefaultPartSize, region: "us-east-1"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.partSize < 5<<20 {
		return nil, fmt.Errorf("blob: part size %d below the S3 minimum of 5 MiB", o.partSize)
	}
	if bucket == "" {
		return nil, errors.New("blob: bucket name is empty")
	}
	newClient := func(endpoint string, secure bool, maxRetries int) (*minio.Client, error) {
		c, err := minio.New(endpoint, &minio.Options{
			Creds:      credentials.NewStaticV4(accessKey, secretKey, ""),
			Secure:     secure,
			Region:     o.region,
			Transport:  o.transport,
			MaxRetries: maxRetries,
		})
		if err != nil {
			return nil, fmt.Errorf("blob: minio client for %s: %w", endpoint, err)
		}
		return c, nil
	}
	client, err := newClient(endpoint, useTLS, 0)
	if err != nil {
		return nil, err
	}
	probe, err := newClient(endpoint, useTLS, 1)
	if err != nil {
		return nil, err
	}
	presign := client
	if o.presignEndpoint != "" {
		if presign, err = newClient(o.presignEndpoint, o.presignTLS, 0); err != nil {
			return nil, err
		}
	}
	return &Store{client: client, probe: probe, presign: presign, bucket: bucket, partSize: o.partSize, region: o.region}, nil
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Client returns the underlying minio-go client for operations this package lacks.
func (s *Store) Client() *minio.Client { return s.client }

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: check bucket %s: %w", s.bucket, err)
	}
	if exists {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region}); err != nil {
		// Another replica may have created it meanwhile.
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("blob: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Ping checks that the server answers and the bucket exists (readiness). It does not
// retry, so a down server fails at once.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.probe.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: ping %s: %w", s.client.EndpointURL().Host, err)
	}
	if !exists {
		return fmt.Errorf("blob: bucket %s: %w", s.bucket, ErrNotFound)
	}
	return nil
}

// Put streams r to key and returns the object's ETag. size may be -1 when unknown: the
// upload is then multipart with one part (the part size) buffered at a time. A failed
// upload leaves no object behind (incomplete multipart uploads are aborted).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (string, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	opts := minio.PutObjectOptions{ContentType: contentType, PartSize: s.partSize}
	if size >= 0 && uint64(size) > s.partSize*10000 {
		opts.PartSize = 0 // let minio-go choose a part size that fits 10 000 parts
	}
	info, err := s.client.PutObject(ctx, s.bucket, key, r, size, opts)
	if err != nil {
		return "", fmt.Errorf("blob: put %s/%s: %w", s.bucket, key, mapErr(err))
	}
	return info.ETag, nil
}

// Get opens key for streaming; the caller closes the reader.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("blob: get %s/%s: %w", s.bucket, key, mapErr(err))
	}
	// Stat sends the GET and reads the headers; the body streams from there.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, ObjectInfo{}, fmt.Errorf("blob: get %s/%s: %w", s.bucket, key, mapErr(err))
	}
	return obj, toInfo(st), nil
}

// Stat returns key's metadata.
func (s *Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("blob: stat %s/%s: %w", s.bucket, key, mapErr(err))
	}
	return toInfo(st), nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("blob: delete %s/%s: %w", s.bucket, key, mapErr(err))
	}
	return nil
}

// PresignGet returns a URL that downloads key for ttl (1 s … 7 days) without
// credentials. With filename set, the download is served as an attachment with that
// name. The URL is signed for the presign endpoint (see WithPresignEndpoint).
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (*url.URL, error) {
	if ttl < time.Second || ttl > 7*24*time.Hour {
		return nil, fmt.Errorf("blob: presign %s: ttl %s outside 1s…7d", key, ttl)
	}
	params := url.Values{}
	if filename != "" {
		params.Set("response-content-disposition", contentDisposition(filename))
	}
	u, err := s.presign.PresignedGetObject(ctx, s.bucket, key, ttl, params)
	if err != nil {
		return nil, fmt.Errorf("blob: presign %s/%s: %w", s.bucket, key, err)
	}
	return u, nil
}

// contentDisposition renders an attachment header for filename; non-ASCII names are
// encoded (RFC 2231/6266) and path separators dropped.
func contentDisposition(filename string) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, filename)
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}

// List yields the objects whose keys start with prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // stops minio-go's listing goroutine when the caller breaks early
		for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				yield(ObjectInfo{}, fmt.Errorf("blob: list %s/%s: %w", s.bucket, prefix, mapErr(obj.Err)))
				return
			}
			if !yield(toInfo(obj), nil) {
				return
			}
		}
	}
}

func toInfo(o minio.ObjectInfo) ObjectInfo {
	return ObjectInfo{Key: o.Key, Size: o.Size, ETag: o.ETag, ContentType: o.ContentType, LastModified: o.LastModified}
}

// mapErr wraps S3 "no such key/bucket" errors so errors.Is(err, ErrNotFound) holds.
func mapErr(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchBucket", "NotFound":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
