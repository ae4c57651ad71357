// Package documents stores company documents: uploads stream from the multipart body
// through a size limit and a SHA-256 hasher straight into MinIO (never whole in memory),
// the metadata row is written only once the object is complete, downloads stream back
// or go through a short-lived presigned URL, and deletes never leave an object without a
// row or a row without an object (objects of deleted rows are queued and reaped).
package documents

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/api/blob"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoObject is what a Store returns for a key that holds no object.
var ErrNoObject = errors.New("no such object")

// Store is the object storage the documents live in (MinIO through api/blob).
type Store interface {
	// PutObject stores r under key; size -1 means unknown (streamed in parts). An error
	// from reading r aborts the upload and leaves no object.
	PutObject(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// GetObject opens key for reading; ErrNoObject when it does not exist.
	GetObject(ctx context.Context, key string) (io.ReadCloser, error)
	// RemoveObject deletes key; removing a missing key is not an error.
	RemoveObject(ctx context.Context, key string) error
	// ListObjects calls fn for every object under prefix.
	ListObjects(ctx context.Context, prefix string, fn func(key string, modified time.Time) error) error
}

// Options configure the module.
type Options struct {
	Pool  *pgxpool.Pool
	Store Store
	Log   *slog.Logger
	Now   func() time.Time
	// MaxBytes is the largest accepted document (app.Config.UploadMaxBytes).
	MaxBytes int64
	// URLExpiry is the lifetime of signed download links (default 5 minutes).
	URLExpiry time.Duration
	// KEK is the stack's key-encryption key; the download links' key derives from it.
	KEK []byte
	// LinkBase is the path the API's routes are mounted under (default /api/v1).
	LinkBase string
	// OrphanGrace is how old an object without a row must be before the reaper removes
	// it (default 1 hour; uploads insert their row right after the object completes).
	OrphanGrace time.Duration
}

// Module serves the document routes.
type Module struct {
	pool     *pgxpool.Pool
	store    Store
	log      *slog.Logger
	now      func() time.Time
	max      int64
	linkKey  []byte
	linkBase string
	urlTTL,
	grace time.Duration

	// test seams: run between the row delete and its commit / after the object upload
	beforeDeleteCommit func() error
	beforeInsert       func() error
}

// DefaultMaxBytes is the upload limit when none is configured (the seed's 100 MB).
const DefaultMaxBytes int64 = 100 << 20

// New returns the documents module on the API's shared dependencies: MinIO through
// api/blob, the configured upload limit (CORPINTEL_UPLOAD_MAX_BYTES).
func New(d app.Deps) *Module {
	return NewModule(Options{Pool: d.Pool, Store: blob.Objects{S: d.Blob, NotFound: ErrNoObject}, Log: d.Log,
		Now: d.Now, MaxBytes: d.Config.UploadMaxBytes, KEK: d.Config.KEK})
}

// NewModule returns the documents module with explicit options.
func NewModule(o Options) *Module {
	m := &Module{pool: o.Pool, store: o.Store, log: o.Log, now: o.Now, max: o.MaxBytes, urlTTL: o.URLExpiry, grace: o.OrphanGrace,
		linkKey: linkKey(o.KEK), linkBase: o.LinkBase}
	if m.linkBase == "" {
		m.linkBase = "/api/v1"
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.max <= 0 {
		m.max = DefaultMaxBytes
	}
	if m.urlTTL <= 0 {
		m.urlTTL = 5 * time.Minute
	}
	if m.grace <= 0 {
		m.grace = time.Hour
	}
	return m
}

// Document is a stored document's metadata.
type Document struct {
	ID          string    `json:"id"`
	CompanyID   string    `json:"company_id"`
	Title       string    `json:"title"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	UploadedBy  string    `json:"uploaded_by"`
	CreatedAt   time.Time `json:"created_at"`
}

// List is the body of GET /companies/{id}/documents.
type List struct {
	Items      []Document `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// PresignedURL is the body of GET /documents/{id}/url.
type PresignedURL struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UploadForm documents the multipart body of the upload route for the OpenAPI document.
type UploadForm struct {
	File  string `json:"file" format:"binary"`
	Title string `json:"title,omitempty"`
}

// Routes implements web.Module.
func (m *Module) Routes() []web.Route {
	return []web.Route{
		{Method: http.MethodPost, Path: "/companies/:id/documents", Perm: rbac.DocumentsWrite, Tag: "documents",
			Audit: "document.upload", MaxBody: -1, Handler: m.upload, Request: UploadForm{}, Response: Document{},
			Summary: "Upload a document (multipart/form-data: file, optional title); streamed to object storage"},
		{Method: http.MethodGet, Path: "/companies/:id/documents", Perm: rbac.DocumentsRead, Tag: "documents",
			Handler: m.list, Response: List{}, Summary: "List a company's documents, newest first",
			Query: []web.Param{
				{Name: "limit", Type: "integer", Description: "page size, 1-200 (default 50)"},
				{Name: "cursor", Type: "string", Description: "next_cursor of the previous page"},
			}},
		{Method: http.MethodGet, Path: "/documents/:id", Perm: rbac.DocumentsRead, Tag: "documents",
			Handler: m.get, Response: Document{}, Summary: "A document's metadata"},
		{Method: http.MethodGet, Path: "/documents/:id/content", Perm: rbac.DocumentsRead, Tag: "documents",
			Audit: "document.download", Handler: m.content, Summary: "Download a document (streamed)"},
		{Method: http.MethodGet, Path: "/documents/:id/url", Perm: rbac.DocumentsRead, Tag: "documents",
			Audit: "document.link", Handler: m.link, Response: PresignedURL{},
			Summary: "A short-lived signed download link (works without the Authorization header)"},
		{Method: http.MethodGet, Path: "/documents/:id/download", Perm: rbac.Public, Tag: "documents",
			Audit: "document.download", Handler: m.download,
			Summary: "Download a document through a signed link from /documents/{id}/url",
			Query: []web.Param{
				{Name: "user", Type: "string", Description: "from the link"},
				{Name: "expires", Type: "integer", Description: "from the link"},
				{Name: "signature", Type: "string", Description: "from the link"},
			}},
		{Method: http.MethodDelete, Path: "/documents/:id", Perm: rbac.DocumentsWrite, Tag: "documents",
			Audit: "document.delete", Handler: m.delete, Summary: "Delete a document and its content"},
	}
}

func objectKey(companyID, docID string) string {
	return "documents/" + companyID + "/" + docID
}

var errNotFound = web.NewProblem(http.StatusNotFound, "no such document")
