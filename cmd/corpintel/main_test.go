package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "corpintel "},
		{[]string{"no-such-verb"}, 2, ""},
		{[]string{"version", "--bogus"}, 2, ""},
		{[]string{"version", "extra"}, 2, ""},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if got := run(context.Background(), c.args, &out, &errb); got != c.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", c.args, got, c.code, errb.String())
		}
		if !strings.Contains(out.String(), c.out) {
			t.Errorf("run(%q) stdout %q lacks %q", c.args, out.String(), c.out)
		}
	}
}
