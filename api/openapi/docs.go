package openapi

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed docs.html
var docsPage []byte

//go:embed docs.js
var docsScript []byte

// DocsHandler serves the self-contained documentation page (no CDN: the page loads
// /openapi.json and renders it with a small embedded script).
func DocsHandler(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	return c.Blob(http.StatusOK, "text/html; charset=utf-8", docsPage)
}

// DocsScriptHandler serves the page's script.
func DocsScriptHandler(c echo.Context) error {
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'")
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", docsScript)
}
