// Package pgarchive reads PostgreSQL custom-format archives (pg_dump -Fc) as a stream:
// it checks the whole structure (header, table of contents, every data block to the
// end) and counts the rows of every table, without PostgreSQL and without holding the
// archive in memory. The backup job runs it over the dump as it is written (row counts
// for the manifest) and again over the stored file (verification); the restore job uses
// [FixOffsets] so that `pg_restore -j` can seek straight to each table.
//
// Rows are counted from the COPY text of uncompressed archives (pg_dump -Z0, which the
// backup uses because it compresses with zstd itself): one row per line. Archives with
// pg_dump's own compression are checked for structure only.
//
// The reader treats its input as hostile: every length is bounded, nothing is allocated
// before the bytes it describes have arrived, and any inconsistency is an error naming
// the byte offset.
package pgarchive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Archive format facts from PostgreSQL's pg_backup_archiver.h.
const (
	magic = "PGDMP"

	formatCustom = 1

	blkData  = 1 // BLK_DATA: one table's COPY data
	blkBlobs = 3 // BLK_BLOBS: large objects

	offsetNotSet = 1 // K_OFFSET_POS_NOT_SET: written to a pipe, position unknown
	offsetSet    = 2 // K_OFFSET_POS_SET
	offsetNoData = 3 // K_OFFSET_NO_DATA
)

// Limits that keep a hostile archive from exhausting memory or time.
const (
	maxString  = 1 << 28 // one TOC string (function bodies can be large)
	maxEntries = 10_000_000
	maxDeps    = 1_000_000
	maxChunk   = 1 << 31
)

// ErrFormat is wrapped by every error about the archive's content (as opposed to I/O).
var ErrFormat = errors.New("not a valid pg_dump custom-format archive")

// Version is the archive format version (1.14 for PostgreSQL 12–15).
type Version struct{ Major, Minor, Rev int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Rev) }

func (v Version) atLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// Entry is one table-of-contents entry.
type Entry struct {
	DumpID    int
	HasData   bool // a data block follows for it (TABLE DATA, BLOBS, SEQUENCE SET has none)
	Tag       string
	Desc      string // "TABLE", "TABLE DATA", "INDEX", …
	Namespace string
	Owner     string

	offsetFieldPos int64 // where its data-offset field sits in the file
	dataState      int
}

// Table is one table's data as found in the archive.
type Table struct {
	Schema string
	Name   string
	Rows   int64 // -1 when unknown (compressed archive)
	Bytes  int64 // COPY text bytes (uncompressed archives) or stored bytes
}

// Key is "schema.name", the key the backup manifest uses for row counts.
func (t Table) Key() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Summary is what a scan found.
type Summary struct {
	Version       Version
	Compressed    bool // pg_dump compressed the data itself: rows not counted
	Database      string
	ServerVersion string
	DumpVersion   string
	Entries       []Entry
	Tables        []Table // in archive order
	Blobs         int64   // large objects
	Size          int64   // bytes of the whole archive

	// Captured holds the COPY text of the tables named in Options.Capture.
	Captured map[string][]byte

	blockPos map[int]int64 // dumpId → offset of its data block
	offSize  int
}

// Rows returns the row count per table key (only for uncompressed archives).
func (s *Summary) Rows() map[string]int64 {
	m := make(map[string]int64, len(s.Tables))
	for _, t := range s.Tables {
		if t.Rows >= 0 {
			m[t.Key()] = t.Rows
		}
	}
	return m
}

// TotalRows is the sum of all known row counts.
func (s *Summary) TotalRows() int64 {
	var n int64
	for _, t := range s.Tables {
		if t.Rows > 0 {
			n += t.Rows
		}
	}
	return n
}

// reader tracks the offset for error messages and FixOffsets.
type reader struct {
	r       *bufio.Reader
	off     int64
	intSize int
	offSize int
	buf     []byte

	capture      map[string]bool
	captureLimit int
}

func (r *reader) errf(format string, a ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, r.off, fmt.Sprintf(format, a...))
}

// ioErr turns an early EOF into a format error (a truncated archive) and keeps other
// I/O errors as they are.
func (r *reader) ioErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return r.errf("truncated while reading %s", what)
	}
	return fmt.Errorf("pgarchive: read %s at byte %d: %w", what, r.off, err)
}

func (r *reader) byte1(what string) (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		return 0, r.ioErr(what, err)
	}
	r.off++
	return b, nil
}

func (r *reader) full(p []byte, what string) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	if err != nil {
		return r.ioErr(what, err)
	}
	return nil
}

// int reads pg_dump's WriteInt: a sign byte, then intSize bytes, least significant first.
func (r *reader) int(what string) (int64, error) {
	sign, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	if sign > 1 {
		return 0, r.errf("bad sign byte %d in %s", sign, what)
	}
	b := r.buf[:r.intSize]
	if err := r.full(b, what); err != nil {
		return 0, err
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if v > 1<<62 {
		return 0, r.errf("%s out of range", what)
	}
	if sign == 1 {
		return -int64(v), nil
	}
	return int64(v), nil
}

// str reads WriteStr: a length (-1 for NULL) and the bytes. The buffer grows only as
// bytes arrive, so a huge declared length in a truncated file allocates nothing big.
func (r *reader) str(what string) (s string, null bool, err error) {
	n, err := r.int(what + " length")
	if err != nil {
		return "", false, err
	}
	if n < 0 {
		return "", true, nil
	}
	if n > maxString {
		return "", false, r.errf("%s of %d bytes exceeds the limit", what, n)
	}
	var b bytes.Buffer
	got, err := b.ReadFrom(io.LimitReader(r.r, n))
	r.off += got
	if err != nil {
		return "", false, r.ioErr(what, err)
	}
	if got != n {
		return "", false, r.errf("truncated while reading %s", what)
	}
	return b.String(), false, nil
}

// discard drops n bytes that are already buffered.
func (r *reader) discard(n int) {
	_, _ = r.r.Discard(n)
	r.off += int64(n)
}

func (r *reader) skip(n int64, what string) error {
	got, err := r.r.Discard(int(n))
	r.off += int64(got)
	if err != nil {
		return r.ioErr(what, err)
	}
	return nil
}

// Options tune a scan.
type Options struct {
	// Capture names tables ("schema.name") whose COPY text is kept in
	// Summary.Captured, up to CaptureLimit bytes each (default 1 MiB): small tables the
	// caller wants to read, such as schema_migrations.
	Capture      []string
	CaptureLimit int
}

// Scan reads a whole archive from r and checks its structure; see the package comment.
func Scan(in io.Reader) (*Summary, error) { return ScanWith(in, Options{}) }

// ScanWith is Scan with options.
func ScanWith(in io.Reader, o Options) (*Summary, error) {
	r := &reader{r: bufio.NewReaderSize(in, 256<<10), buf: make([]byte, 16)}
	s := &Summary{blockPos: map[int]int64{}, Captured: map[string][]byte{}}
	r.capture = map[string]bool{}
	for _, c := range o.Capture {
		r.capture[c] = true
	}
	r.captureLimit = o.CaptureLimit
	if r.captureLimit <= 0 {
		r.captureLimit = 1 << 20
	}
	if err := readHeader(r, s); err != nil {
		return nil, err
	}
	if err := readTOC(r, s); err != nil {
		return nil, err
	}
	if err := readData(r, s); err != nil {
		return nil, err
	}
	s.Size = r.off
	s.offSize = r.offSize
	return s, nil
}

func readHeader(r *reader, s *Summary) error {
	head := make([]byte, len(magic)+3)
	if err := r.full(head, "header"); err != nil {
		return err
	}
	if string(head[:len(magic)]) != magic {
		return r.errf("no PGDMP signature (a plain SQL dump, or not a dump at all)")
	}
	s.Version = Version{int(head[5]), int(head[6]), int(head[7])}
	if s.Version.Major != 1 || !s.Version.atLeast(1, 12) || s.Version.Minor > 16 {
		return r.errf("archive version %s is not supported (1.12–1.16: PostgreSQL 11–17)", s.Version)
	}
	isz, err := r.byte1("integer size")
	if err != nil {
		return err
	}
	osz, err := r.byte1("offset size")
	if err != nil {
		return err
	}
	if isz < 1 || isz > 8 || osz < 1 || osz > 8 {
		return r.errf("integer size %d / offset size %d out of range", isz, osz)
	}
	r.intSize, r.offSize = int(isz), int(osz)
	fmtByte, err := r.byte1("format")
	if err != nil {
		return err
	}
	if fmtByte != formatCustom {
		return r.errf("archive format %d is not the custom format (1)", fmtByte)
	}
	if s.Version.atLeast(1, 15) {
		alg, err := r.byte1("compression algorithm")
		if err != nil {
			return err
		}
		s.Compressed = alg != 0
	} else {
		level, err := r.int("compression level")
		if err != nil {
			return err
		}
		s.Compressed = level != 0
	}
	for i := 0; i < 7; i++ { // creation time: sec, min, hour, mday, mon, year, isdst
		if _, err := r.int("creation time"); err != nil {
			return err
		}
	}
	if s.Database, _, err = r.str("database name"); err != nil {
		return err
	}
	if s.ServerVersion, _, err = r.str("server version"); err != nil {
		return err
	}
	if s.DumpVersion, _, err = r.str("pg_dump version"); err != nil {
		return err
	}
	return nil
}

func readTOC(r *reader, s *Summary) error {
	count, err := r.int("entry count")
	if err != nil {
		return err
	}
	if count < 0 || count > maxEntries {
		return r.errf("entry count %d out of range", count)
	}
	seen := map[int]bool{}
	for i := int64(0); i < count; i++ {
		e, err := readEntry(r, s.Version)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if seen[e.DumpID] {
			return r.errf("entry id %d appears twice", e.DumpID)
		}
		seen[e.DumpID] = true
		s.Entries = append(s.Entries, e)
	}
	return nil
}

func readEntry(r *reader, v Version) (Entry, error) {
	var e Entry
	id, err := r.int("entry id")
	if err != nil {
		return e, err
	}
	if id <= 0 || id > 1<<31 {
		return e, r.errf("entry id %d out of range", id)
	}
	e.DumpID = int(id)
	had, err := r.int("data flag")
	if err != nil {
		return e, err
	}
	e.HasData = had != 0
	// tableoid, oid: decimal strings.
	for _, what := range []string{"table oid", "oid"} {
		o, _, err := r.str(what)
		if err != nil {
			return e, err
		}
		if _, err := strconv.ParseUint(o, 10, 32); err != nil {
			return e, r.errf("%s %q is not a number", what, o)
		}
	}
	if e.Tag, _, err = r.str("tag"); err != nil {
		return e, err
	}
	if e.Desc, _, err = r.str("description"); err != nil {
		return e, err
	}
	if _, err := r.int("section"); err != nil {
		return e, err
	}
	for _, what := range []string{"definition", "drop statement", "copy statement"} {
		if _, _, err := r.str(what); err != nil {
			return e, err
		}
	}
	if e.Namespace, _, err = r.str("namespace"); err != nil {
		return e, err
	}
	if _, _, err := r.str("tablespace"); err != nil {
		return e, err
	}
	if v.atLeast(1, 14) {
		if _, _, err := r.str("table access method"); err != nil {
			return e, err
		}
	}
	if v.atLeast(1, 16) {
		if _, err := r.int("relkind"); err != nil {
			return e, err
		}
	}
	if e.Owner, _, err = r.str("owner"); err != nil {
		return e, err
	}
	oids, _, err := r.str("with-oids flag")
	if err != nil {
		return e, err
	}
	if oids == "true" {
		return e, r.errf("table WITH OIDS: not restorable by PostgreSQL 12+")
	}
	for n := 0; ; n++ {
		if n > maxDeps {
			return e, r.errf("too many dependencies")
		}
		_, null, err := r.str("dependency")
		if err != nil {
			return e, err
		}
		if null {
			break
		}
	}
	// The custom format's extra TOC data: the data block's offset.
	e.offsetFieldPos = r.off
	flag, err := r.byte1("data offset flag")
	if err != nil {
		return e, err
	}
	if flag < offsetNotSet || flag > offsetNoData {
		return e, r.errf("bad data offset flag %d", flag)
	}
	e.dataState = int(flag)
	if err := r.skip(int64(r.offSize), "data offset"); err != nil {
		return e, err
	}
	return e, nil
}

func readData(r *reader, s *Summary) error {
	byID := make(map[int]*Entry, len(s.Entries))
	want := 0
	for i := range s.Entries {
		e := &s.Entries[i]
		byID[e.DumpID] = e
		if e.HasData && e.dataState != offsetNoData {
			want++
		}
	}
	done := map[int]bool{}
	chunk := make([]byte, 256<<10)
	for {
		pos := r.off
		typ, err := r.r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.ioErr("block type", err)
		}
		r.off++
		id, err := r.int("block id")
		if err != nil {
			return err
		}
		e := byID[int(id)]
		if e == nil || !e.HasData {
			return r.errf("data block for unknown entry %d", id)
		}
		if done[int(id)] {
			return r.errf("second data block for entry %d", id)
		}
		done[int(id)] = true
		s.blockPos[int(id)] = pos
		switch typ {
		case blkData:
			t := Table{Schema: e.Namespace, Name: e.Tag}
			if s.Compressed {
				t.Rows = -1
			}
			var keep *[]byte
			if r.capture[t.Key()] && !s.Compressed {
				b := []byte{}
				keep = &b
			}
			if err := readChunks(r, chunk, &t, !s.Compressed, keep); err != nil {
				return fmt.Errorf("table %s: %w", t.Key(), err)
			}
			if keep != nil {
				s.Captured[t.Key()] = *keep
			}
			if e.Desc == "TABLE DATA" {
				s.Tables = append(s.Tables, t)
			}
		case blkBlobs:
			n, err := readBlobs(r, chunk)
			if err != nil {
				return err
			}
			s.Blobs += n
		default:
			return r.errf("unknown block type %d", typ)
		}
	}
	if len(done) != want {
		return r.errf("%d of %d data blocks present: the archive is truncated", len(done), want)
	}
	return nil
}

// readChunks reads length-prefixed chunks up to the zero length that ends a block,
// counting lines when count is set. pg_dump writes every COPY row as a chunk of its own,
// so the common case — whole chunks inside bufio's window — is parsed in place.
func readChunks(r *reader, buf []byte, t *Table, count bool, keep *[]byte) error {
	c := chunkCounter{t: t, count: count, keep: keep, limit: r.captureLimit}
	for {
		done, err := c.fast(r)
		if err != nil || done {
			return err
		}
		if done, err = c.slow(r, buf); err != nil || done {
			return err
		}
	}
}

// chunkCounter accumulates one block's rows, bytes, tail and captured text.
type chunkCounter struct {
	t     *Table
	count bool
	keep  *[]byte
	limit int
	tail  []byte // the last bytes of the block, for the end-of-data marker
}

const tailLen = len(copyEnd) + 1

func (c *chunkCounter) data(p []byte) {
	c.t.Bytes += int64(len(p))
	if !c.count {
		return
	}
	c.t.Rows += int64(bytes.Count(p, []byte{'\n'}))
	if len(p) >= tailLen {
		c.tail = append(c.tail[:0], p[len(p)-tailLen:]...)
	} else {
		c.tail = append(c.tail, p...)
		if len(c.tail) > tailLen {
			c.tail = c.tail[len(c.tail)-tailLen:]
		}
	}
	if c.keep != nil && len(*c.keep)+len(p) <= c.limit {
		*c.keep = append(*c.keep, p...)
	}
}

func (c *chunkCounter) end() {
	if c.count {
		c.t.Rows -= terminatorLines(c.tail, c.t.Bytes)
	}
}

// fast consumes the complete chunks already buffered (4-byte integers only); anything
// unusual is left to slow, which reports it.
func (c *chunkCounter) fast(r *reader) (done bool, err error) {
	if r.intSize != 4 {
		return false, nil
	}
	for {
		win, _ := r.r.Peek(r.r.Buffered())
		i := 0
		for len(win)-i >= 5 && win[i] == 0 {
			n := int(binary.LittleEndian.Uint32(win[i+1 : i+5]))
			if n == 0 {
				r.discard(i + 5)
				c.end()
				return true, nil
			}
			if n > maxChunk || len(win)-i-5 < n {
				break
			}
			c.data(win[i+5 : i+5+n])
			i += 5 + n
		}
		if i == 0 {
			return false, nil
		}
		r.discard(i)
	}
}

// slow reads one chunk through the checked readers.
func (c *chunkCounter) slow(r *reader, buf []byte) (done bool, err error) {
	n, err := r.int("chunk length")
	if err != nil {
		return false, err
	}
	if n == 0 {
		c.end()
		return true, nil
	}
	if n < 0 || n > maxChunk {
		return false, r.errf("chunk length %d out of range", n)
	}
	for n > 0 {
		k := min(n, int64(len(buf)))
		if err := r.full(buf[:k], "chunk"); err != nil {
			return false, err
		}
		c.data(buf[:k])
		n -= k
	}
	return false, nil
}

// copyEnd is what pg_dump appends to every table's COPY data ("\." and two blank
// lines); its lines are not rows.
const copyEnd = "\\.\n\n\n"

// terminatorLines is the number of counted lines that belong to the end-of-data marker
// rather than to rows. The marker only counts at the start of a line: an escaped
// backslash in the data (COPY text `\\.`) never matches.
func terminatorLines(tail []byte, total int64) int64 {
	for _, end := range []string{copyEnd, "\\.\n"} {
		if total == int64(len(end)) && string(tail) == end {
			return int64(bytes.Count([]byte(end), []byte{'\n'}))
		}
		if len(tail) > len(end) && bytes.HasSuffix(tail, []byte("\n"+end)) {
			return int64(bytes.Count([]byte(end), []byte{'\n'}))
		}
	}
	return 0
}

func readBlobs(r *reader, buf []byte) (int64, error) {
	var n int64
	for {
		oid, err := r.int("large object oid")
		if err != nil {
			return n, err
		}
		if oid == 0 {
			return n, nil
		}
		var t Table
		if err := readChunks(r, buf, &t, false, nil); err != nil {
			return n, err
		}
		n++
	}
}

// FixOffsets writes the data-block positions found by Scan into the table of contents
// of the archive file f, as pg_dump does when it writes to a seekable file. A dump
// streamed from a pipe lacks them; with them `pg_restore -j` seeks straight to each
// table instead of scanning the file. f must hold exactly the bytes Scan read.
func FixOffsets(f io.WriterAt, s *Summary) error {
	field := make([]byte, 1+s.offSize)
	for _, e := range s.Entries {
		pos, ok := s.blockPos[e.DumpID]
		if !ok || e.dataState != offsetNotSet {
			continue
		}
		field[0] = offsetSet
		for i := 0; i < s.offSize; i++ {
			field[1+i] = byte(uint64(pos) >> (8 * i))
		}
		if _, err := f.WriteAt(field, e.offsetFieldPos); err != nil {
			return fmt.Errorf("pgarchive: write offset of entry %d: %w", e.DumpID, err)
		}
	}
	return nil
}
