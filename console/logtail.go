package console

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine is how much of one log line the console keeps: a container that writes a
// 50 MB line (a dumped blob, a minified payload) must not take the page or the
// supervisor's memory with it. The rest is counted, not kept.
const maxLine = 4096

// logLine is one line as shown: valid UTF-8 without control characters (terminal
// escapes would be noise), and how many bytes were cut off its end.
type logLine struct {
	Text string `json:"t"`
	Cut  int    `json:"cut,omitempty"`
}

// lineSplitter turns a byte stream into capped lines. It keeps at most max bytes of the
// current line, whatever the size of the writes.
type lineSplitter struct {
	max  int
	buf  []byte
	cut  int
	emit func(logLine) error
}

func newLineSplitter(max int, emit func(logLine) error) *lineSplitter {
	return &lineSplitter{max: max, emit: emit}
}

func (l *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := l.max - len(l.buf); room > 0 {
			take := min(room, len(chunk))
			l.buf = append(l.buf, chunk[:take]...)
			l.cut += len(chunk) - take
		} else {
			l.cut += len(chunk)
		}
		if i < 0 {
			break
		}
		if err := l.line(); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush emits a last line without its newline.
func (l *lineSplitter) Flush() error {
	if len(l.buf) == 0 && l.cut == 0 {
		return nil
	}
	return l.line()
}

func (l *lineSplitter) line() error {
	line := logLine{Text: cleanLine(l.buf), Cut: l.cut}
	l.buf, l.cut = l.buf[:0], 0
	return l.emit(line)
}

// cleanLine makes b printable: invalid UTF-8 (also a rune cut by the cap) becomes
// U+FFFD, control characters but tab are dropped.
func cleanLine(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			sb.WriteRune(utf8.RuneError)
		case r == '\t':
			sb.WriteRune(r)
		case unicode.IsControl(r):
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// matches reports whether a line contains the filter (case-insensitive).
func matches(line, filter string) bool {
	return filter == "" || strings.Contains(strings.ToLower(line), strings.ToLower(filter))
}
