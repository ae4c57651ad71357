// Package users is the user directory of the API: admin-only CRUD (roles, deactivation,
// password resets), the caller's own profile (GET /auth/me), the first admin
// (`corpintel api create-admin`) and the GDPR hooks (Anonymize, Export). Changes that
// reduce what a user may do end their sessions through auth.RevokeUser.
package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/corpintel/corpintel/api/rbac"
	"github.com/corpintel/corpintel/api/web"
	"github.com/corpintel/corpintel/internal/password"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the package's functions (the handlers turn them into problems).
var (
	ErrNotFound   = errors.New("users: no such user")
	ErrEmailTaken = errors.New("users: a user with this email already exists")
	ErrLastAdmin  = errors.New("users: this is the last active admin")
	ErrAnonymized = errors.New("users: the user has been anonymized")
)

// User is a user as the API shows it (never with its password hash).
type User struct {
	ID           string     `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name"`
	Role         rbac.Role  `json:"role"`
	Active       bool       `json:"active"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	AnonymizedAt *time.Time `json:"anonymized_at,omitempty"`
}

// Module serves the users routes.
type Module struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

var _ web.Module = (*Module)(nil)

// NewModule returns the users module on pool.
func NewModule(pool *pgxpool.Pool, log *slog.Logger) *Module {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Module{pool: pool, log: log}
}

// Querier is what a pool and a transaction both offer.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const userCols = `id, email, name, role, active, created_at, updated_at, anonymized_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var role string
	err := row.Scan(&u.ID, &u.Email, &u.Name, &role, &u.Active, &u.CreatedAt, &u.UpdatedAt, &u.AnonymizedAt)
	u.Role = rbac.Role(role)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	if u.AnonymizedAt != nil {
		t := u.AnonymizedAt.UTC()
		u.AnonymizedAt = &t
	}
	return u, err
}

// Get returns one user.
func Get(ctx context.Context, q Querier, id string) (User, error) {
	if !web.ValidUUID(id) {
		return User{}, ErrNotFound
	}
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("users: get %s: %w", id, err)
	}
	return u, nil
}

// NewUser is what creating a user takes.
type NewUser struct {
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     rbac.Role `json:"role"`
	Password string    `json:"password"`
}

// Validate implements web.Validator.
func (n NewUser) Validate() []web.FieldError {
	var errs []web.FieldError
	if msg := checkEmail(n.Email); msg != "" {
		errs = append(errs, web.FieldError{Field: "email", Message: msg})
	}
	if msg := checkName(n.Name); msg != "" {
		errs = append(errs, web.FieldError{Field: "name", Message: msg})
	}
	if !n.Role.Valid() {
		errs = append(errs, web.FieldError{Field: "role", Message: "must be admin, analyst or viewer"})
	}
	if msg := checkPassword(n.Password); msg != "" {
		errs = append(errs, web.FieldError{Field: "password", Message: msg})
	}
	return errs
}

// Create hashes the password and inserts the user.
func Create(ctx context.Context, q Querier, n NewUser) (User, error) {
	if errs := n.Validate(); len(errs) > 0 {
		return User{}, web.Validation(errs...)
	}
	hash, err := password.Hash([]byte(n.Password))
	if err != nil {
		return User{}, err
	}
	u, err := scanUser(q.QueryRow(ctx, `INSERT INTO users (email, name, role, password_hash) VALUES ($1, $2, $3, $4)
		RETURNING `+userCols, strings.TrimSpace(n.Email), strings.TrimSpace(n.Name), string(n.Role), hash))
	if isUniqueViolation(err) {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("users: create: %w", err)
	}
	return u, nil
}

// CreateAdmin creates an admin user; `corpintel api create-admin` calls it. It fails
// with ErrEmailTaken (wrapped, naming the email) when the email is in use.
func CreateAdmin(ctx context.Context, pool *pgxpool.Pool, email, name string, pw []byte) (id string, err error) {
	if strings.TrimSpace(name) == "" {
		name = "Administrator"
	}
	u, err := Create(ctx, pool, NewUser{Email: email, Name: name, Role: rbac.Admin, Password: string(pw)})
	if errors.Is(err, ErrEmailTaken) {
		return "", fmt.Errorf("create admin %s: %w (choose another email, or reset that user's password in the API)", email, err)
	}
	var p *web.Problem
	if errors.As(err, &p) && len(p.Errors) > 0 {
		var msgs []string
		for _, f := range p.Errors {
			msgs = append(msgs, f.Field+": "+f.Message)
		}
		return "", fmt.Errorf("create admin %s: %s", email, strings.Join(msgs, "; "))
	}
	if err != nil {
		return "", fmt.Errorf("create admin %s: %w", email, err)
	}
	return u.ID, nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func checkEmail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 254 {
		return "required, at most 254 bytes"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s, "@") {
		return "must be a plain email address (name@example.com)"
	}
	return ""
}

func checkName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > 200 || !utf8.ValidString(s) {
		return "required, at most 200 characters"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

func checkPassword(s string) string {
	if utf8.RuneCountInString(s) < password.MinLen || len(s) > password.MaxLen {
		return fmt.Sprintf("must be %d to %d characters", password.MinLen, password.MaxLen)
	}
	return ""
}
