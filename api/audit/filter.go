package audit

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/api/web"
)

// Page sizes of GET /audit.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Filter selects audit events. Zero fields do not filter.
type Filter struct {
	Actor   string   // exact actor id
	Action  string   // action prefix ("company." matches "company.create")
	Kind    web.Kind // application, access or security
	Outcome string   // success, denied or failure
	From    time.Time
	To      time.Time // exclusive
	Limit   int
	After   *Cursor // continue after this event (newest first)
}

// Cursor is the position of the last event of a page.
type Cursor struct {
	Time time.Time
	ID   int64
}

// String encodes the cursor for the next_cursor field (opaque to clients).
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%d", c.Time.UnixNano(), c.ID))
}

// ParseCursor decodes a cursor made by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 48 {
		return Cursor{}, fmt.Errorf("not a cursor this API returned")
	}
	ns, id, ok := strings.Cut(string(b), ":")
	if !ok {
		return Cursor{}, fmt.Errorf("not a cursor this API returned")
	}
	n, err1 := strconv.ParseInt(ns, 10, 64)
	i, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil || i <= 0 {
		return Cursor{}, fmt.Errorf("not a cursor this API returned")
	}
	return Cursor{Time: time.Unix(0, n).UTC(), ID: i}, nil
}

var queryParams = map[string]bool{
	"actor": true, "action": true, "kind": true, "outcome": true,
	"from": true, "to": true, "limit": true, "cursor": true,
}

// ParseFilter reads the query parameters of GET /audit. Every problem is reported as a
// field error (the handler answers 422); unknown parameters are rejected so that a typo
// does not silently return everything.
func ParseFilter(q url.Values) (Filter, []web.FieldError) {
	f := Filter{Limit: DefaultLimit}
	var errs []web.FieldError
	bad := func(field, msg string) { errs = append(errs, web.FieldError{Field: field, Message: msg}) }
	for k, v := range q {
		if !queryParams[k] {
			bad(k, "unknown query parameter")
			continue
		}
		if len(v) > 1 {
			bad(k, "give this parameter once")
		}
	}
	if v := q.Get("actor"); v != "" {
		if len(v) > 320 || !printable(v) {
			bad("actor", "must be a user id of at most 320 printable characters")
		}
		f.Actor = v
	}
	if v := q.Get("action"); v != "" {
		if !validAction(v) {
			bad("action", "must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")
		}
		f.Action = v
	}
	if v := q.Get("kind"); v != "" {
		switch web.Kind(v) {
		case web.KindApplication, web.KindAccess, web.KindSecurity:
			f.Kind = web.Kind(v)
		default:
			bad("kind", "must be application, access or security")
		}
	}
	if v := q.Get("outcome"); v != "" {
		switch v {
		case "success", "denied", "failure":
			f.Outcome = v
		default:
			bad("outcome", "must be success, denied or failure")
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(p.name, "must be an RFC 3339 time such as 2026-01-31T00:00:00Z")
				continue
			}
			*p.dst = t.UTC()
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		bad("to", "must be after from")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			bad("limit", fmt.Sprintf("must be a number from 1 to %d", MaxLimit))
		} else {
			f.Limit = n
		}
	}
	if v := q.Get("cursor"); v != "" {
		c, err := ParseCursor(v)
		if err != nil {
			bad("cursor", err.Error())
		} else {
			f.After = &c
		}
	}
	return f, errs
}

func validAction(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// where renders f as SQL conditions with positional arguments (newest first).
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.Actor != "" {
		add("actor_id = ?", f.Actor)
	}
	if f.Action != "" {
		// '~' sorts after every character validAction allows, so this is a prefix range
		// the C-collated index answers.
		add(`action COLLATE "C" >= ? AND action COLLATE "C" < ?`, f.Action, f.Action+"~")
	}
	if f.Kind != "" {
		add("kind = ?", string(f.Kind))
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.From.IsZero() {
		add("time >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("time < ?", f.To)
	}
	if f.After != nil {
		add("(time, id) < (?, ?)", f.After.Time, f.After.ID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}
