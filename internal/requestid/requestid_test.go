package requestid

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-DEF_123.x":             true,
		strings.Repeat("a", 64):     true,
		strings.Repeat("a", 65):     false,
		"":                          false,
		"has space":                 false,
		"slash/es":                  false,
		"newline\n":                 false,
		"ünïcode":                   false,
		"<script>alert(1)</script>": false,
	} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v", id, !want)
		}
	}
	if id := New(); !Valid(id) || len(id) != 24 || New() == id {
		t.Errorf("New = %q", id)
	}
	if Accept("ok-1") != "ok-1" || !Valid(Accept("bad id")) || Accept("bad id") == "bad id" {
		t.Error("Accept")
	}
}
