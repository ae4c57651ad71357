package console

import (
	"net/http"
	"strconv"
	"strings"
)

type auditData struct {
	Query   string
	Before  int64
	Older   int64
	Entries []AuditEntry
	Check   *AuditCheck
}

const auditPage = 50

// serveAudit shows the audit log, newest first: searchable, paged by entry number, and
// its chain verified on request.
func serveAudit(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := auditData{Query: truncate(strings.TrimSpace(q.Get("q")), 200)}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "before must be an entry number.")
		}
		d.Before = n
	}
	entries, more, err := c.opts.Store.AuditEntries(ctx, AuditQuery{Text: d.Query, Before: d.Before, Limit: auditPage})
	if err != nil {
		return err
	}
	d.Entries = entries
	if more && len(entries) > 0 {
		d.Older = entries[len(entries)-1].Seq
	}
	if q.Get("verify") == "1" {
		check, err := c.opts.Store.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		d.Check = &check
	}
	return c.render(w, r, rq, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", Data: d})
}
