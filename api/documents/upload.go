package documents

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/corpintel/corpintel/api/web"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
)

// multipartSlack is what the body may hold beyond the file itself: boundaries, part
// headers and the title.
const multipartSlack = 64 << 10

// maxTitle is the longest title in characters.
const maxTitle = 300

var errTooLarge = errors.New("document exceeds the upload limit")

// smallUpload is the size up to which a document is stored with a single PUT.
const smallUpload = 4 << 20

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallUpload); return &b }}

func (m *Module) tooLarge() *web.Problem {
	return web.Problemf(http.StatusRequestEntityTooLarge, "documents may be at most %d bytes", m.max)
}

// upload handles POST /companies/{id}/documents. The body is read once, part by part:
// the file part streams through countingReader (limit + SHA-256) into the store, so
// memory stays flat whatever the size; the row is inserted after the object is complete,
// and every failure after the upload removes the object again.
func (m *Module) upload(c echo.Context) (err error) {
	ctx := c.Request().Context()
	req := c.Request()
	companyID := c.Param("id")
	if err := m.companyExists(ctx, companyID); err != nil {
		return err
	}
	if req.ContentLength > m.max+multipartSlack {
		c.Response().Header().Set("Connection", "close")
		return m.tooLarge()
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, m.max+multipartSlack)
	mt, params, perr := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if perr != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return web.NewProblem(http.StatusUnsupportedMediaType, "send the document as multipart/form-data with a file field")
	}
	mr := multipart.NewReader(req.Body, params["boundary"])

	doc := Document{ID: uuid.NewString(), CompanyID: companyID}
	key := objectKey(companyID, doc.ID)
	stored := false
	defer func() {
		if err != nil && stored {
			m.removeQuietly(key)
		}
		var p *web.Problem
		if errors.As(err, &p) && p.Status == http.StatusRequestEntityTooLarge {
			// Do not read the rest of an oversized body; end the connection instead.
			c.Response().Header().Set("Connection", "close")
		}
	}()
	var title string
	hasTitle := false
	for {
		part, perr := mr.NextPart()
		if perr == io.EOF {
			break
		}
		if perr != nil {
			return m.bodyProblem(perr)
		}
		switch part.FormName() {
		case "file":
			if stored {
				return web.NewProblem(http.StatusBadRequest, "send exactly one file per upload")
			}
			// Set before the upload starts: a failed upload may still have left parts.
			stored = true
			if err := m.storePart(ctx, key, part, &doc); err != nil {
				return err
			}
		case "title":
			if hasTitle {
				return web.NewProblem(http.StatusBadRequest, "send the title once")
			}
			b, rerr := io.ReadAll(io.LimitReader(part, 4*maxTitle+1))
			if rerr != nil {
				return m.bodyProblem(rerr)
			}
			title, hasTitle = string(b), true
		default:
			return web.Problemf(http.StatusBadRequest, "unknown form field %q (send file and optionally title)", truncate(part.FormName(), 64))
		}
	}
	if !stored {
		return web.Validation(web.FieldError{Field: "file", Message: "required: the document as a file part"})
	}
	if hasTitle {
		title = strings.TrimSpace(title)
		if !utf8.ValidString(title) || title == "" || utf8.RuneCountInString(title) > maxTitle || strings.ContainsFunc(title, isControl) {
			return web.Validation(web.FieldError{Field: "title", Message: fmt.Sprintf("must be 1-%d characters of text", maxTitle)})
		}
		doc.Title = title
	} else {
		doc.Title = doc.Filename
	}
	if p := web.PrincipalOf(c); p != nil {
		doc.UploadedBy = p.UserID
	}
	if m.beforeInsert != nil {
		if err := m.beforeInsert(); err != nil {
			return err
		}
	}
	err = m.pool.QueryRow(ctx, `INSERT INTO documents
		(id, company_id, title, filename, content_type, size_bytes, sha256, object_key, uploaded_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING created_at`,
		doc.ID, doc.CompanyID, doc.Title, doc.Filename, doc.ContentType, doc.Size, doc.SHA256, key, doc.UploadedBy,
		m.now().UTC()).Scan(&doc.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // the company was deleted meanwhile
		return web.NewProblem(http.StatusNotFound, "no such company")
	}
	if err != nil {
		return fmt.Errorf("documents: insert %s: %w", doc.ID, err)
	}
	doc.CreatedAt = doc.CreatedAt.UTC()
	web.SetAuditTarget(c, "document/"+doc.ID)
	web.SetAuditDetail(c, map[string]any{"company_id": companyID, "filename": doc.Filename,
		"size": doc.Size, "sha256": doc.SHA256, "content_type": doc.ContentType})
	c.Response().Header().Set(echo.HeaderLocation, strings.TrimSuffix(req.URL.Path, "/companies/"+companyID+"/documents")+"/documents/"+doc.ID)
	return web.JSON(c, http.StatusCreated, doc)
}

// storePart streams one file part into the store under key and fills in the document's
// file name, sniffed content type, size and digest.
func (m *Module) storePart(ctx context.Context, key string, part *multipart.Part, doc *Document) error {
	doc.Filename = SanitizeFilename(part.FileName())
	head := make([]byte, 512)
	n, err := io.ReadFull(part, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return m.bodyProblem(err)
	}
	head = head[:n]
	if n == 0 {
		return web.Validation(web.FieldError{Field: "file", Message: "the file is empty"})
	}
	if kind := executableKind(head); kind != "" {
		return web.Problemf(http.StatusUnsupportedMediaType, "executables are not accepted (%s)", kind)
	}
	doc.ContentType = http.DetectContentType(head)
	src := &countingReader{r: io.MultiReader(bytes.NewReader(head), part), max: m.max, h: sha256.New()}
	// Small documents (the common case) are read into a pooled buffer and stored with one
	// PUT of known size; larger ones stream as a multipart upload of unknown size, whose
	// parts the store buffers one at a time. Memory per upload is bounded either way.
	bufp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bufp)
	n, err = io.ReadFull(src, *bufp)
	var body io.Reader
	size := int64(-1)
	switch {
	case src.tooLarge:
		return m.tooLarge()
	case src.readErr != nil:
		return m.bodyProblem(src.readErr)
	case err == nil: // the buffer is full: more may follow
		body = io.MultiReader(bytes.NewReader((*bufp)[:n]), src)
	default: // io.ErrUnexpectedEOF: the whole file is in the buffer
		body, size = bytes.NewReader((*bufp)[:n]), int64(n)
	}
	if err := m.store.PutObject(ctx, key, body, size, doc.ContentType); err != nil {
		switch {
		case src.tooLarge:
			return m.tooLarge()
		case src.readErr != nil:
			return m.bodyProblem(src.readErr)
		}
		return fmt.Errorf("documents: store %s: %w", key, err)
	}
	if src.tooLarge { // a store that stopped reading early would hide it; never accept it
		return m.tooLarge()
	}
	if src.readErr != nil {
		return m.bodyProblem(src.readErr)
	}
	doc.Size = src.n
	doc.SHA256 = hex.EncodeToString(src.h.Sum(nil))
	return nil
}

// countingReader passes through at most max bytes, hashing and counting them; one more
// byte fails the read with errTooLarge (so the store aborts the upload). Errors of the
// underlying reader are kept to tell a client's broken body from a store failure.
type countingReader struct {
	r        io.Reader
	max, n   int64
	h        hash.Hash
	tooLarge bool
	readErr  error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.tooLarge {
		return 0, errTooLarge
	}
	if rest := c.max - c.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	if c.n+int64(n) > c.max {
		c.tooLarge = true
		n = int(c.max - c.n)
		c.h.Write(p[:n])
		c.n += int64(n)
		return n, errTooLarge
	}
	c.h.Write(p[:n])
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.readErr = err
	}
	return n, err
}

// bodyProblem maps an error reading the request body to a client problem.
func (m *Module) bodyProblem(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, errTooLarge):
		return m.tooLarge()
	case errors.Is(err, context.Canceled):
		return err
	}
	return web.Problemf(http.StatusBadRequest, "malformed multipart body: %v", err)
}

// executableKind names native executable formats by their magic numbers ("" when the
// content is none of them): the platform stores documents, not programs.
func executableKind(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "ELF"
	case bytes.HasPrefix(b, []byte("MZ")):
		return "Windows PE"
	case bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xcf}),
		bytes.HasPrefix(b, []byte{0xce, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}):
		return "Mach-O"
	}
	return ""
}

func (m *Module) removeQuietly(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30e9)
	defer cancel()
	if err := m.store.RemoveObject(ctx, key); err != nil {
		// The orphan sweep of the reaper removes it later.
		m.log.Warn("documents: remove object of a failed upload", "key", key, "err", err)
	}
}

func (m *Module) companyExists(ctx context.Context, id string) error {
	noCompany := web.NewProblem(http.StatusNotFound, "no such company")
	if !web.ValidUUID(id) {
		return noCompany
	}
	var one int
	err := m.pool.QueryRow(ctx, `SELECT 1 FROM companies WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return noCompany
	}
	if err != nil {
		return fmt.Errorf("documents: look up company: %w", err)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
