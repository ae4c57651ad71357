// Package web is the API's HTTP contract: how routes are declared (each with one
// permission), how requests are decoded and validated, how errors are written
// (application/problem+json, RFC 9457), and the middleware every request passes.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// ProblemContentType is the media type of every error body.
const ProblemContentType = "application/problem+json"

// FieldError names one offending field of a request and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem document. It is also an error, so handlers return it.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// NewProblem returns a problem with the standard title of status.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// Problemf is NewProblem with a formatted detail.
func Problemf(status int, format string, args ...any) *Problem {
	return NewProblem(status, fmt.Sprintf(format, args...))
}

// Validation returns a 422 problem listing the offending fields.
func Validation(fields ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, "the request has invalid fields")
	p.Errors = fields
	return p
}

// Common problems.
var (
	ErrUnauthorized = func() *Problem { return NewProblem(http.StatusUnauthorized, "missing, invalid or expired token") }
	ErrForbidden    = func() *Problem { return NewProblem(http.StatusForbidden, "your role does not allow this") }
	ErrNotFound     = func() *Problem { return NewProblem(http.StatusNotFound, "no such resource") }
)

// ErrorHandler writes every error as application/problem+json. Unexpected errors are
// logged with the request id and answered with a generic 500 that leaks nothing.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := toProblem(err)
		p.RequestID = RequestID(c)
		if p.Instance == "" {
			p.Instance = c.Request().URL.Path
		}
		if p.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", p.RequestID, "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if p.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
		}
		if p.Status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="corpintel"`)
		}
		c.Response().Header().Set(echo.HeaderContentType, ProblemContentType)
		c.Response().WriteHeader(p.Status)
		if c.Request().Method == http.MethodHead {
			return
		}
		_ = jsonEncode(c.Response(), p)
	}
}

func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		cp := *p
		return &cp
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		detail := ""
		if m, ok := he.Message.(string); ok && m != http.StatusText(he.Code) {
			detail = m
		}
		if he.Code == http.StatusRequestEntityTooLarge && detail == "" {
			detail = "the request body is larger than this endpoint accepts"
		}
		return NewProblem(he.Code, detail)
	}
	return NewProblem(http.StatusInternalServerError, "")
}
