package pgarchive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// sqlDumpEnd is the last comment pg_dump writes; a plain dump without it was cut short.
const sqlDumpEnd = "-- PostgreSQL database dump complete"

// copyLine matches the COPY statement pg_dump writes before each table's data.
var copyLine = regexp.MustCompile(`^COPY ([^ (]+)(?: \([^)]*\))? FROM stdin;$`)

// maxSQLLine bounds one line of a plain dump (a row of COPY text, a function body line).
const maxSQLLine = 1 << 30

// ScanSQL reads a plain SQL dump (pg_dump -Fp) and counts the rows of each COPY block.
// It fails when the dump does not end with pg_dump's completion comment or a COPY block
// is not terminated.
func ScanSQL(in io.Reader) (*Summary, error) { return ScanSQLWith(in, Options{}) }

// ScanSQLWith is ScanSQL with options.
func ScanSQLWith(in io.Reader, o Options) (*Summary, error) {
	br := bufio.NewReaderSize(in, 256<<10)
	s := &Summary{Captured: map[string][]byte{}}
	capture := map[string]bool{}
	for _, c := range o.Capture {
		capture[c] = true
	}
	limit := o.CaptureLimit
	if limit <= 0 {
		limit = 1 << 20
	}
	var (
		cur      *Table
		off      int64
		complete bool // the completion comment was seen, followed only by blank or "--" lines
		line     []byte
	)
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > maxSQLLine {
				return nil, fmt.Errorf("%w: line at byte %d longer than %d bytes", ErrFormat, off, maxSQLLine)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("pgarchive: read plain dump at byte %d: %w", off, err)
		}
		if len(line) > 0 {
			off += int64(len(line))
			text := bytes.TrimSuffix(line, []byte{'\n'})
			switch {
			case cur != nil && string(text) == `\.`:
				s.Tables = append(s.Tables, *cur)
				cur = nil
			case cur != nil:
				cur.Rows++
				cur.Bytes += int64(len(line))
				if capture[cur.Key()] && len(s.Captured[cur.Key()])+len(line) <= limit {
					s.Captured[cur.Key()] = append(s.Captured[cur.Key()], line...)
				}
			default:
				if m := copyLine.FindSubmatch(text); m != nil {
					schema, name := splitQualified(string(m[1]))
					cur = &Table{Schema: schema, Name: name}
				}
				if v, ok := bytes.CutPrefix(text, []byte("-- Dumped from database version ")); ok {
					s.ServerVersion = string(v)
				}
				if v, ok := bytes.CutPrefix(text, []byte("-- Dumped by pg_dump version ")); ok {
					s.DumpVersion = string(v)
				}
				switch t := string(bytes.TrimSpace(text)); t {
				case sqlDumpEnd:
					complete = true
				case "", "--":
				default:
					// Since 15.14 (CVE-2025-8714) a plain dump ends with \unrestrict KEY.
					complete = complete && strings.HasPrefix(t, `\unrestrict `)
				}
			}
		}
		line = line[:0]
		if err != nil { // io.EOF
			break
		}
	}
	s.Size = off
	if cur != nil {
		return nil, fmt.Errorf("%w: plain dump ends inside the data of %s", ErrFormat, cur.Key())
	}
	if !complete {
		return nil, fmt.Errorf("%w: plain dump does not end with %q: it was cut short", ErrFormat, sqlDumpEnd)
	}
	return s, nil
}

// splitQualified splits pg_dump's schema-qualified, possibly quoted, table name.
func splitQualified(q string) (schema, name string) {
	parts := []string{}
	var cur []byte
	quoted := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '"' && quoted && i+1 < len(q) && q[i+1] == '"':
			cur = append(cur, '"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, c)
		}
	}
	parts = append(parts, string(cur))
	if len(parts) == 1 {
		return "", parts[0]
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}
