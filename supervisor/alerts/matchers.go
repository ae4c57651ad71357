package alerts

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	labelNameRE   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	channelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Match operators, as in Alertmanager.
const (
	MatchEqual     = "="
	MatchNotEqual  = "!="
	MatchRegexp    = "=~"
	MatchNotRegexp = "!~"
)

// Matcher tests one label: Name Op Value, with regular expressions anchored at both ends.
// A missing label matches as the empty string.
type Matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`

	re *regexp.Regexp
}

// NewMatcher builds and checks a matcher.
func NewMatcher(name, op, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	return m, m.compile()
}

func (m *Matcher) compile() error {
	if !labelNameRE.MatchString(m.Name) {
		return fmt.Errorf("%q is not a label name", m.Name)
	}
	switch m.Op {
	case MatchEqual, MatchNotEqual:
		m.re = nil
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("matcher %s: bad regular expression: %w", m.Name, err)
		}
		m.re = re
	default:
		return fmt.Errorf("matcher %s: unknown operator %q (use =, !=, =~ or !~)", m.Name, m.Op)
	}
	return nil
}

// Matches reports whether the labels satisfy the matcher.
func (m Matcher) Matches(l Labels) bool {
	v := l[m.Name]
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp, MatchNotRegexp:
		re := m.re
		if re == nil { // decoded from JSON without compile
			mm := m
			if mm.compile() != nil {
				return false
			}
			re = mm.re
		}
		return re.MatchString(v) == (m.Op == MatchRegexp)
	}
	return false
}

// String is the Alertmanager form: severity="critical".
func (m Matcher) String() string { return m.Name + m.Op + strconv.Quote(m.Value) }

// Matchers all have to match.
type Matchers []Matcher

// Matches reports whether every matcher matches.
func (ms Matchers) Matches(l Labels) bool {
	for _, m := range ms {
		if !m.Matches(l) {
			return false
		}
	}
	return true
}

func (ms Matchers) String() string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$`)

// ParseMatcher parses `name="value"`, `name=~"re"`, `name!=value` (quotes optional).
func ParseMatcher(s string) (Matcher, error) {
	sub := matcherRE.FindStringSubmatch(s)
	if sub == nil {
		return Matcher{}, fmt.Errorf("matcher %q: want name=\"value\" (operators =, !=, =~, !~)", s)
	}
	val := sub[3]
	if strings.HasPrefix(val, `"`) {
		uq, err := strconv.Unquote(val)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: bad quoted value: %w", s, err)
		}
		val = uq
	}
	return NewMatcher(sub[1], sub[2], val)
}

// ParseMatchers parses a list; all errors are reported.
func ParseMatchers(ss []string) (Matchers, error) {
	var (
		out  Matchers
		errs []error
	)
	for _, s := range ss {
		m, err := ParseMatcher(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

func mustMatchers(ss ...string) Matchers {
	ms, err := ParseMatchers(ss)
	if err != nil {
		panic(err)
	}
	return ms
}
