package companies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/corpintel/corpintel/api/db"
	"github.com/corpintel/corpintel/api/web"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const columns = `id, name, ticker, sector, industry, country, website, description, employees, founded_year, created_at, updated_at`

// store is the SQL of the companies table.
type store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu        sync.Mutex
	trgm      bool // pg_trgm installed: search ranks by similarity
	trgmKnown bool
}

// hasTrigram reports (once, then remembered) whether pg_trgm is installed.
func (s *store) hasTrigram(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.trgmKnown {
		ok, err := db.HasExtension(ctx, s.pool, "pg_trgm")
		if err != nil {
			return false, err
		}
		if !ok {
			s.log.WarnContext(ctx, "pg_trgm is not installed; company search falls back to ILIKE scans")
		}
		s.trgm, s.trgmKnown = ok, true
	}
	return s.trgm, nil
}

func scanCompany(row pgx.Row, extra ...any) (Company, error) {
	var c Company
	dst := append([]any{&c.ID, &c.Name, &c.Ticker, &c.Sector, &c.Industry, &c.Country, &c.Website,
		&c.Description, &c.Employees, &c.FoundedYear, &c.CreatedAt, &c.UpdatedAt}, extra...)
	err := row.Scan(dst...)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, err
}

func (s *store) get(ctx context.Context, id string) (Company, error) {
	c, err := scanCompany(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM companies WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, web.ErrNotFound()
	}
	if err != nil {
		return c, fmt.Errorf("get company %s: %w", id, err)
	}
	return c, nil
}

// settable lists the columns an Input can set, in order.
func (in *Input) assignments() (cols []string, args []any) {
	str := func(col string, f Field[string]) {
		if f.Set {
			cols = append(cols, col)
			if f.Null {
				args = append(args, nil)
			} else {
				args = append(args, f.V)
			}
		}
	}
	str("name", in.Name)
	str("ticker", in.Ticker)
	str("sector", in.Sector)
	str("industry", in.Industry)
	str("country", in.Country)
	str("website", in.Website)
	str("description", in.Description)
	if in.Employees.Set {
		cols = append(cols, "employees")
		if in.Employees.Null {
			args = append(args, nil)
		} else {
			args = append(args, in.Employees.V)
		}
	}
	if in.FoundedYear.Set {
		cols = append(cols, "founded_year")
		if in.FoundedYear.Null {
			args = append(args, nil)
		} else {
			args = append(args, in.FoundedYear.V)
		}
	}
	return cols, args
}

func (s *store) create(ctx context.Context, in *Input) (Company, error) {
	cols, args := in.assignments()
	ph := make([]string, len(cols))
	for i := range cols {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	sql := `INSERT INTO companies (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(ph, ", ") + `) RETURNING ` + columns
	c, err := scanCompany(s.pool.QueryRow(ctx, sql, args...))
	if err != nil {
		return c, writeError("create company", err)
	}
	return c, nil
}

func (s *store) update(ctx context.Context, id string, in *Input) (Company, error) {
	cols, args := in.assignments()
	if len(cols) == 0 {
		return s.get(ctx, id)
	}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = $" + strconv.Itoa(i+2)
	}
	sql := `UPDATE companies SET ` + strings.Join(set, ", ") + ` WHERE id = $1 RETURNING ` + columns
	c, err := scanCompany(s.pool.QueryRow(ctx, sql, append([]any{id}, args...)...))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, web.ErrNotFound()
	}
	if err != nil {
		return c, writeError("update company "+id, err)
	}
	return c, nil
}

func (s *store) delete(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM companies WHERE id = $1`, id)
	if err != nil {
		return writeError("delete company "+id, err)
	}
	if tag.RowsAffected() == 0 {
		return web.ErrNotFound()
	}
	return nil
}

// writeError turns constraint violations into the problems a client can act on.
func writeError(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation: the only unique column besides id is ticker
			p := web.NewProblem(http.StatusConflict, "another company already has this ticker")
			p.Errors = []web.FieldError{{Field: "ticker", Message: "already taken"}}
			return p
		case "23503": // foreign_key_violation: rows of another resource still point here
			return web.NewProblem(http.StatusConflict, "the company still has dependent records (documents); delete them first")
		case "23514", "22001": // check_violation, string_data_right_truncation
			return web.Validation(web.FieldError{Field: pe.ColumnName, Message: "rejected by the database: " + pe.ConstraintName})
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Page is one page of GET /companies.
type Page struct {
	Items      []Company `json:"items"`
	NextCursor *string   `json:"next_cursor"`
}

// list runs the keyset query for p: plain lists sort by (name, id); searches by (exact
// ticker match first, then similarity, then name, id). It reads one row more than the
// page to know whether another page follows.
func (s *store) list(ctx context.Context, p ListParams) (Page, error) {
	trgm := false
	if p.Q != "" {
		var err error
		if trgm, err = s.hasTrigram(ctx); err != nil {
			return Page{}, fmt.Errorf("list companies: %w", err)
		}
	}
	sql, args := listSQL(p, trgm)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list companies: %w", err)
	}
	defer rows.Close()
	page := Page{Items: make([]Company, 0, p.Limit+1)}
	var ranks []Cursor
	for rows.Next() {
		var c Company
		var r Cursor
		var err error
		if p.Q != "" {
			c, err = scanCompany(rows, &r.Exact, &r.Score)
		} else {
			c, err = scanCompany(rows)
		}
		if err != nil {
			return Page{}, fmt.Errorf("list companies: scan: %w", err)
		}
		page.Items = append(page.Items, c)
		ranks = append(ranks, r)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list companies: %w", err)
	}
	if len(page.Items) > p.Limit {
		last := page.Items[p.Limit-1]
		cur := ranks[p.Limit-1]
		cur.Filter, cur.Name, cur.ID = p.filterKey(), last.Name, last.ID
		enc := EncodeCursor(cur)
		page.NextCursor = &enc
		page.Items = page.Items[:p.Limit]
	}
	return page, nil
}

// listSQL builds the query for p. Only the filters in use appear in the SQL, so every
// shape gets a plan that uses its index; every value is a bind parameter.
func listSQL(p ListParams, trgm bool) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if p.Sector != "" {
		where = append(where, "sector = "+arg(p.Sector))
	}
	if p.Country != "" {
		where = append(where, "country = "+arg(p.Country))
	}
	if p.Q == "" {
		if p.After != nil {
			where = append(where, "(name, id) > ("+arg(p.After.Name)+", "+arg(p.After.ID)+"::uuid)")
		}
		sql := `SELECT ` + columns + ` FROM companies`
		if len(where) > 0 {
			sql += ` WHERE ` + strings.Join(where, " AND ")
		}
		return sql + ` ORDER BY name, id LIMIT ` + arg(p.Limit+1), args
	}
	q, upper, pat := arg(p.Q), arg(strings.ToUpper(p.Q)), arg(likePattern(p.Q))
	match := "(ticker = " + upper + " OR name ILIKE " + pat + " OR ticker ILIKE " + pat
	score := "0::float8"
	if trgm {
		match += " OR " + q + " <% name"
		score = "(1 - greatest(word_similarity(" + q + ", name), similarity(" + q + ", coalesce(ticker, ''))))::float8"
	} else {
		match += " OR " + q + " = ''" // keeps $1 used so both variants bind the same arguments
	}
	match += ")"
	where = append(where, match)
	sql := `SELECT ` + columns + `, k, s FROM (SELECT ` + columns + `,
		CASE WHEN ticker = ` + upper + ` THEN 0 ELSE 1 END AS k, ` + score + ` AS s
		FROM companies WHERE ` + strings.Join(where, " AND ") + `) ranked`
	if p.After != nil {
		sql += ` WHERE (k, s, name, id) > (` + arg(p.After.Exact) + `::int, ` + arg(p.After.Score) + `::float8, ` +
			arg(p.After.Name) + `, ` + arg(p.After.ID) + `::uuid)`
	}
	return sql + ` ORDER BY k, s, name, id LIMIT ` + arg(p.Limit+1), args
}
