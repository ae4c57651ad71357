package companies

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/corpintel/corpintel/api/web"
)

// Page size limits of GET /companies.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	maxQuery     = 100
	maxCursor    = 1024
)

// ListParams are the validated query parameters of GET /companies.
type ListParams struct {
	Sector  string
	Country string
	Q       string
	Limit   int
	After   *Cursor
}

// Cursor is the position after the last row of a page. It is handed to clients as an
// opaque base64url string; Filter ties it to the filters it was made with so that a
// cursor cannot be replayed against another query.
type Cursor struct {
	V      int     `json:"v"`
	Filter string  `json:"f"`
	Name   string  `json:"n"`
	ID     string  `json:"i"`
	Exact  int     `json:"k,omitempty"` // search only: 0 for an exact ticker match
	Score  float64 `json:"s,omitempty"` // search only: 1 - similarity
}

const cursorVersion = 1

// filterKey fingerprints the filters of p (not limit, not cursor).
func (p ListParams) filterKey() string {
	h := sha256.Sum256([]byte(p.Sector + "\x00" + p.Country + "\x00" + p.Q))
	return hex.EncodeToString(h[:6])
}

// cacheKey identifies the page that p asks for.
func (p ListParams) cacheKey() string {
	var b strings.Builder
	b.WriteString(p.Sector + "\x00" + p.Country + "\x00" + p.Q + "\x00" + strconv.Itoa(p.Limit))
	if p.After != nil {
		b.WriteString("\x00" + EncodeCursor(*p.After))
	}
	h := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(h[:16])
}

// EncodeCursor returns the opaque form of c.
func EncodeCursor(c Cursor) string {
	c.V = cursorVersion
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses an opaque cursor; it checks the shape only (ParseList checks that
// it belongs to the query).
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	if s == "" || len(s) > maxCursor {
		return c, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, errBadCursor
	}
	if err := web.DecodeJSON(strings.NewReader(string(b)), &c); err != nil {
		return c, errBadCursor
	}
	if c.V != cursorVersion || !web.ValidUUID(c.ID) || !utf8.ValidString(c.Name) || c.Name == "" ||
		(c.Exact != 0 && c.Exact != 1) || c.Score < 0 || c.Score > 1 {
		return Cursor{}, errBadCursor
	}
	return c, nil
}

var errBadCursor = web.Validation(web.FieldError{Field: "cursor", Message: "not a cursor from this list; start again without it"})

// ParseList validates the query parameters of GET /companies. Unknown parameters are
// rejected so that a typo ("sectr=") does not silently return everything.
func ParseList(q url.Values) (ListParams, error) {
	p := ListParams{Limit: DefaultLimit}
	var errs []web.FieldError
	add := func(field, msg string) { errs = append(errs, web.FieldError{Field: field, Message: msg}) }
	for k, v := range q {
		switch k {
		case "sector", "country", "q", "limit", "cursor":
			if len(v) > 1 {
				add(k, "give it at most once")
			}
		default:
			add(k, "unknown query parameter")
		}
	}
	if v := strings.TrimSpace(q.Get("sector")); v != "" {
		if utf8.RuneCountInString(v) > maxSector || !printable(v) {
			add("sector", "at most 100 printable characters")
		}
		p.Sector = v
	}
	if v := strings.TrimSpace(q.Get("country")); v != "" {
		v = strings.ToUpper(v)
		if !ValidCountry(v) {
			add("country", "an ISO 3166-1 alpha-2 code such as US or DE")
		}
		p.Country = v
	}
	if v := strings.TrimSpace(q.Get("q")); v != "" {
		if utf8.RuneCountInString(v) > maxQuery || !printable(v) {
			add("q", "at most 100 printable characters")
		}
		p.Q = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			add("limit", "an integer between 1 and 200")
		}
		p.Limit = n
	}
	if len(errs) > 0 {
		return ListParams{}, web.Validation(errs...)
	}
	if v := q.Get("cursor"); v != "" {
		c, err := DecodeCursor(v)
		if err != nil {
			return ListParams{}, err
		}
		if c.Filter != p.filterKey() {
			return ListParams{}, errBadCursor
		}
		p.After = &c
	}
	return p, nil
}

// likePattern returns %q% with LIKE's metacharacters escaped, so user input is matched
// literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}
