package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Error is a configuration problem: which file (or "environment"), which key, what is
// wrong. Load may return several joined with errors.Join.
type Error struct {
	File    string
	Key     string
	Problem string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s: key %q: %s", e.File, e.Key, e.Problem)
}

// IsConfigError reports whether err is (or wraps) a configuration problem; the CLI exits
// with status 2 for those.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// ByteSize is a size in bytes, written with binary units ("4GiB", "4GB", "4g" are all
// 4×1024³, as in Docker and PostgreSQL).
type ByteSize int64

// Size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// UnmarshalText parses "512MiB", "2GB", "16m", "1024".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("must be a size like 512MiB or 4GiB, got %q", s)
	}
	mult := map[string]ByteSize{"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB, "g": GiB, "gb": GiB, "gib": GiB, "t": TiB, "tb": TiB, "tib": TiB}
	m, ok := mult[unit]
	if !ok {
		return fmt.Errorf("unknown size unit %q in %q (use KiB, MiB, GiB, TiB)", s[i:], s)
	}
	*b = ByteSize(n * float64(m))
	return nil
}

// MarshalText writes the String form.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String prints the largest exact binary unit ("4GiB", "1536MiB", "100B").
func (b ByteSize) String() string {
	for _, u := range []struct {
		n    ByteSize
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d%s", b/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// PG formats the size as a PostgreSQL setting ("16MB", "1GB"; PostgreSQL's units are
// binary), rounding down to kB.
func (b ByteSize) PG() string {
	switch {
	case b >= GiB && b%GiB == 0:
		return fmt.Sprintf("%dGB", b/GiB)
	case b >= MiB && b%MiB == 0:
		return fmt.Sprintf("%dMB", b/MiB)
	default:
		return fmt.Sprintf("%dkB", b/KiB)
	}
}

// Duration is a time span written as Go writes durations ("90s", "10m", "1h30m").
type Duration time.Duration

// UnmarshalText parses "10m", "90s", "1h".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return fmt.Errorf("must be a duration like 90s, 10m or 1h, got %q", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String prints the duration as Go does ("10m0s").
func (d Duration) String() string { return time.Duration(d).String() }
