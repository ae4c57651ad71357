package documents

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
)

// Short-lived download links are served by the API itself, not presigned by MinIO:
// object storage sits on the stack network, where no client can reach it, and a link
// through the API keeps one entry point, streams like /content and is audited. A link
// names the document, its expiry and the user it was made for, signed with a key
// derived from the stack's key-encryption key (the same on every replica). It stops
// working when it expires, when the document is deleted, and when its user is
// deactivated, anonymised or no longer allowed to read documents.

// linkKey derives the links' HMAC key from the KEK; without one (a stand-alone test
// replica) it is random, so links work on this process only.
func linkKey(kek []byte) []byte {
	if len(kek) == 0 {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("corpintel document download links v1"))
	return m.Sum(nil)
}

func (m *Module) linkSignature(docID, userID string, exp int64) string {
	mac := hmac.New(sha256.New, m.linkKey)
	fmt.Fprintf(mac, "%s|%s|%d", docID, userID, exp)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// link answers GET /documents/{id}/url.
func (m *Module) link(c echo.Context) error {
	ctx := c.Request().Context()
	d, _, err := m.load(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	p := web.PrincipalOf(c)
	if p == nil {
		return web.ErrUnauthorized()
	}
	web.SetAuditTarget(c, "document:"+d.ID)
	expires := m.now().UTC().Add(m.urlTTL).Truncate(time.Second)
	q := url.Values{}
	q.Set("user", p.UserID)
	q.Set("expires", strconv.FormatInt(expires.Unix(), 10))
	q.Set("signature", m.linkSignature(d.ID, p.UserID, expires.Unix()))
	return web.JSON(c, http.StatusOK, PresignedURL{URL: m.linkBase + "/documents/" + d.ID + "/download?" + q.Encode(), ExpiresAt: expires})
}

// errLink is the one answer to every bad link, so a link cannot be probed.
func errLink() error {
	return web.NewProblem(http.StatusForbidden, "the download link is invalid or has expired; ask the API for a new one")
}

// download answers GET /documents/{id}/download?user=&expires=&signature=.
func (m *Module) download(c echo.Context) error {
	ctx := c.Request().Context()
	id, q := c.Param("id"), c.QueryParams()
	user, sig := q.Get("user"), q.Get("signature")
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	web.SetAuditTarget(c, "document:"+id)
	if err != nil || !web.ValidUUID(id) || !web.ValidUUID(user) || len(sig) > 64 {
		return errLink()
	}
	if !hmac.Equal([]byte(sig), []byte(m.linkSignature(id, user, exp))) {
		return errLink()
	}
	web.SetAuditActor(c, user)
	if !m.now().Before(time.Unix(exp, 0)) {
		return errLink()
	}
	if err := m.mayRead(ctx, user); err != nil {
		return err
	}
	d, key, err := m.load(ctx, id)
	if err != nil {
		return err
	}
	return m.serve(c, d, key)
}

// mayRead checks that the link's user may still read documents.
func (m *Module) mayRead(ctx context.Context, userID string) error {
	var role string
	var active bool
	err := m.pool.QueryRow(ctx, `SELECT role, active AND anonymized_at IS NULL FROM users WHERE id = $1`, userID).Scan(&role, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return errLink()
	}
	if err != nil {
		return fmt.Errorf("documents: link user: %w", err)
	}
	if !active || !rbac.Can(rbac.Role(role), rbac.DocumentsRead) {
		return errLink()
	}
	return nil
}
