package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Objects adapts a Store to the small object-store interfaces the modules declare on
// their side (audit's archive, documents): S3-style method names, and a missing key
// reported as NotFound (the consumer's sentinel) wrapped around the store's error.
type Objects struct {
	S        *Store
	NotFound error
}

func (o Objects) notFound(err error) error {
	if o.NotFound != nil && errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", o.NotFound, err)
	}
	return err
}

// PutObject stores r under key (size -1: unknown, streamed in bounded parts).
func (o Objects) PutObject(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	_, err := o.S.Put(ctx, key, r, size, contentType)
	return err
}

// GetObject opens key for reading.
func (o Objects) GetObject(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := o.S.Get(ctx, key)
	return rc, o.notFound(err)
}

// RemoveObject deletes key; a missing key is not an error.
func (o Objects) RemoveObject(ctx context.Context, key string) error {
	if err := o.S.Delete(ctx, key); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// PresignGetObject returns a download URL valid until expiry; params are response
// overrides such as response-content-disposition.
func (o Objects) PresignGetObject(ctx context.Context, key string, expiry time.Duration, params url.Values) (*url.URL, error) {
	u, err := o.S.presign.PresignedGetObject(ctx, o.S.bucket, key, expiry, params)
	if err != nil {
		return nil, fmt.Errorf("blob: presign %s/%s: %w", o.S.bucket, key, err)
	}
	return u, nil
}

// ListObjects calls fn for every object under prefix.
func (o Objects) ListObjects(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error {
	for info, err := range o.S.List(ctx, prefix) {
		if err != nil {
			return err
		}
		if err := fn(info.Key, info.LastModified); err != nil {
			return err
		}
	}
	return nil
}
