package documents

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// Page sizes of the document listing.
const (
	defaultPage = 50
	maxPage     = 200
)

const documentColumns = `id, company_id, title, filename, content_type, size_bytes, sha256, uploaded_by, created_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanDocument(r rowScanner, d *Document) error {
	var id, company string
	if err := r.Scan(&id, &company, &d.Title, &d.Filename, &d.ContentType, &d.Size, &d.SHA256, &d.UploadedBy, &d.CreatedAt); err != nil {
		return err
	}
	d.ID, d.CompanyID, d.CreatedAt = id, company, d.CreatedAt.UTC()
	return nil
}

// load reads one document's metadata and its object key.
func (m *Module) load(ctx context.Context, id string) (Document, string, error) {
	var d Document
	if !web.ValidUUID(id) {
		return d, "", errNotFound
	}
	row := m.pool.QueryRow(ctx, `SELECT `+documentColumns+`, object_key FROM documents WHERE id = $1`, id)
	var key string
	err := row.Scan(&d.ID, &d.CompanyID, &d.Title, &d.Filename, &d.ContentType, &d.Size, &d.SHA256, &d.UploadedBy, &d.CreatedAt, &key)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, "", errNotFound
	}
	if err != nil {
		return d, "", fmt.Errorf("documents: load %s: %w", id, err)
	}
	d.CreatedAt = d.CreatedAt.UTC()
	return d, key, nil
}

func (m *Module) get(c echo.Context) error {
	d, _, err := m.load(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return web.JSON(c, http.StatusOK, d)
}

// ListQuery is the parsed query of the document listing.
type ListQuery struct {
	Limit int
	After *ListCursor
}

// ListCursor is the position after the last document of a page (newest first).
type ListCursor struct {
	CreatedAt time.Time
	ID        string
}

func (c ListCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixNano(), 10) + "/" + c.ID))
}

// ParseListQuery reads limit and cursor; every problem is a field error (422).
func ParseListQuery(q url.Values) (ListQuery, []web.FieldError) {
	lq := ListQuery{Limit: defaultPage}
	var errs []web.FieldError
	for k := range q {
		if k != "limit" && k != "cursor" {
			errs = append(errs, web.FieldError{Field: k, Message: "unknown query parameter"})
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			errs = append(errs, web.FieldError{Field: "limit", Message: fmt.Sprintf("must be a number from 1 to %d", maxPage)})
		} else {
			lq.Limit = n
		}
	}
	if v := q.Get("cursor"); v != "" {
		c, ok := parseListCursor(v)
		if !ok {
			errs = append(errs, web.FieldError{Field: "cursor", Message: "not a cursor this API returned"})
		} else {
			lq.After = &c
		}
	}
	return lq, errs
}

func parseListCursor(s string) (ListCursor, bool) {
	if len(s) > 128 {
		return ListCursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ListCursor{}, false
	}
	ns, id, ok := strings.Cut(string(b), "/")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !web.ValidUUID(id) {
		return ListCursor{}, false
	}
	return ListCursor{CreatedAt: time.Unix(0, n).UTC(), ID: strings.ToLower(id)}, true
}

func (m *Module) list(c echo.Context) error {
	ctx := c.Request().Context()
	companyID := c.Param("id")
	q, errs := ParseListQuery(c.QueryParams())
	if len(errs) > 0 {
		return web.Validation(errs...)
	}
	if err := m.companyExists(ctx, companyID); err != nil {
		return err
	}
	args := []any{companyID, q.Limit + 1}
	cond := ""
	if q.After != nil {
		cond = ` AND (created_at, id) < ($3, $4)`
		args = append(args, q.After.CreatedAt, q.After.ID)
	}
	rows, err := m.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE company_id = $1`+cond+
		` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
	if err != nil {
		return fmt.Errorf("documents: list: %w", err)
	}
	defer rows.Close()
	out := List{Items: []Document{}}
	for rows.Next() {
		var d Document
		if err := scanDocument(rows, &d); err != nil {
			return fmt.Errorf("documents: list: %w", err)
		}
		out.Items = append(out.Items, d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("documents: list: %w", err)
	}
	if len(out.Items) > q.Limit {
		out.Items = out.Items[:q.Limit]
		last := out.Items[q.Limit-1]
		out.NextCursor = ListCursor{CreatedAt: last.CreatedAt, ID: last.ID}.String()
	}
	return web.JSON(c, http.StatusOK, out)
}

// content streams a document's bytes with its stored type, length and digest.
func (m *Module) content(c echo.Context) error {
	ctx := c.Request().Context()
	d, key, err := m.load(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return m.serve(c, d, key)
}

// serve streams document d (stored under key), answering If-None-Match with 304.
func (m *Module) serve(c echo.Context, d Document, key string) error {
	ctx := c.Request().Context()
	web.SetAuditTarget(c, "document:"+d.ID)
	etag := `"` + d.SHA256 + `"`
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, ContentDisposition(d.Filename))
	h.Set("ETag", etag)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		return c.NoContent(http.StatusNotModified)
	}
	obj, err := m.store.GetObject(ctx, key)
	if errors.Is(err, ErrNoObject) {
		m.log.ErrorContext(ctx, "documents: row without object", "id", d.ID, "key", key)
		return web.NewProblem(http.StatusNotFound, "the document's content is missing")
	}
	if err != nil {
		return fmt.Errorf("documents: open %s: %w", key, err)
	}
	defer obj.Close()
	h.Set(echo.HeaderContentType, d.ContentType)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(d.Size, 10))
	c.Response().WriteHeader(http.StatusOK)
	if _, err := io.Copy(c.Response(), obj); err != nil {
		// Headers are out; all that is left is to cut the connection short.
		m.log.WarnContext(ctx, "documents: download interrupted", "id", d.ID, "err", err)
	}
	return nil
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
