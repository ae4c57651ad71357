// Package requestid is the one rule for request correlation ids, shared by the
// supervisor's edge (which assigns or accepts one) and the API (which accepts the
// edge's): an id is 1–64 characters of A–Z, a–z, 0–9, '-', '_' and '.'. Anything else a
// client sends is replaced, so a response carries exactly one id, the same one the
// edge and the API log.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
)

// Header carries the request id in both directions.
const Header = "X-Request-ID"

// MaxLen is the longest id accepted.
const MaxLen = 64

// Valid reports whether id may be passed on as it is.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// New returns a fresh random id (24 hex characters).
func New() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// Accept returns id when it is valid, else a new one.
func Accept(id string) string {
	if Valid(id) {
		return id
	}
	return New()
}
