package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// Validator is implemented by request bodies that check their own fields.
type Validator interface {
	Validate() []FieldError
}

// Bind decodes the JSON request body into dst strictly: the content type must be JSON,
// unknown fields and trailing data are rejected (400), syntax errors are 400, and when
// dst implements Validator its field errors become a 422.
func Bind(c echo.Context, dst any) error {
	if err := Decode(c.Request(), dst); err != nil {
		return err
	}
	if v, ok := dst.(Validator); ok {
		if errs := v.Validate(); len(errs) > 0 {
			return Validation(errs...)
		}
	}
	return nil
}

// Decode is Bind without validation, usable outside echo (and fuzzed).
func Decode(r *http.Request, dst any) error {
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, "send the body as application/json")
		}
	}
	if r.Body == nil {
		return NewProblem(http.StatusBadRequest, "the request body is empty")
	}
	return DecodeJSON(r.Body, dst)
}

// DecodeJSON decodes exactly one JSON value from r into dst, rejecting unknown fields.
func DecodeJSON(r io.Reader, dst any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return NewProblem(http.StatusBadRequest, "the body must hold exactly one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return NewProblem(http.StatusBadRequest, "the body must hold exactly one JSON value")
	}
	return nil
}

func decodeProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return NewProblem(http.StatusBadRequest, "the request body is empty")
	case errors.As(err, &syn):
		return Problemf(http.StatusBadRequest, "malformed JSON at byte %d", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, "malformed JSON: unexpected end of body")
	case errors.As(err, &typ):
		p := NewProblem(http.StatusUnprocessableEntity, "the request has invalid fields")
		p.Errors = []FieldError{{Field: typ.Field, Message: "must be " + typ.Type.String()}}
		return p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Problemf(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return Problemf(http.StatusBadRequest, "malformed JSON: %v", err)
}

// JSON writes v with status and the JSON content type.
func JSON(c echo.Context, status int, v any) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(status)
	return jsonEncode(c.Response(), v)
}

// JSONBytes writes b, which is already JSON (e.g. a cached value), as the response,
// ending in a newline like JSON does.
func JSONBytes(c echo.Context, status int, b []byte) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(b)+1))
	c.Response().WriteHeader(status)
	if _, err := c.Response().Write(b); err != nil {
		return err
	}
	_, err := c.Response().Write(newline)
	return err
}

var newline = []byte{'\n'}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
