package alerts

import "testing"

func TestMatchers(t *testing.T) {
	l := Labels{"alertname": "DiskSpaceLow", "mount": "/var/lib/docker", "severity": "warning"}
	tests := []struct {
		in    string
		match bool
	}{
		{`alertname="DiskSpaceLow"`, true},
		{`alertname=DiskSpaceLow`, true},
		{` mount =~ "/var/.*" `, true},
		{`mount=~"/var"`, false}, // anchored
		{`mount!~"/srv.*"`, true},
		{`severity!="critical"`, true},
		{`missing=""`, true},
		{`missing!=""`, false},
		{`alertname="Disk\"Quoted"`, false},
	}
	for _, tt := range tests {
		m, err := ParseMatcher(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := m.Matches(l); got != tt.match {
			t.Errorf("%s matches = %v, want %v", tt.in, got, tt.match)
		}
	}
	for _, bad := range []string{`no operator`, `1x="a"`, `a=~"("`, `a="unterminated`} {
		if _, err := ParseMatcher(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := NewMatcher("a", "<>", "b"); err == nil {
		t.Error("unknown operator accepted")
	}
	ms := mustMatchers(`alertname="DiskSpaceLow"`, `mount=~"/var.*"`)
	if !ms.Matches(l) || ms.String() != `{alertname="DiskSpaceLow",mount=~"/var.*"}` {
		t.Errorf("Matchers %s match %v", ms, ms.Matches(l))
	}
	// A regexp matcher decoded from JSON (not compiled) still works.
	raw := Matcher{Name: "mount", Op: MatchRegexp, Value: "/var.*"}
	if !raw.Matches(l) {
		t.Error("uncompiled regexp matcher does not match")
	}
	if (Matcher{Name: "mount", Op: MatchRegexp, Value: "("}).Matches(l) {
		t.Error("broken regexp matched")
	}
	defer func() {
		if recover() == nil {
			t.Error("mustMatchers did not panic")
		}
	}()
	mustMatchers("bad")
}
