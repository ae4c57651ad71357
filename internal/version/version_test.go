package version

import (
	"strings"
	"testing"
)

func TestStringNamesVersionAndRevision(t *testing.T) {
	old, oldRev := Version, Revision
	t.Cleanup(func() { Version, Revision = old, oldRev })
	Version, Revision = "1.2.3", "abc123"
	s := String()
	if !strings.Contains(s, "1.2.3") || !strings.Contains(s, "abc123") {
		t.Fatalf("String() = %q, want version and revision", s)
	}
	Revision = ""
	if Rev() == "" {
		t.Fatal("Rev() must never be empty")
	}
}
