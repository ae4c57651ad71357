package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"

	"filippo.io/age"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compressions of stored files.
const (
	compZstd = "zstd"
	compGzip = "gzip"
	compNone = ""
)

// partial is a backup being written: a hidden directory inside the backup root whose
// files are recorded (size and SHA-256 of the stored bytes) as they are committed.
type partial struct {
	root    *os.Root
	dir     string // relative to root
	rcpt    age.Recipient
	workers int
	files   []File
}

// outFile is one file being written in the partial directory.
type outFile struct {
	p    *partial
	name string // relative to the backup directory
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

func (p *partial) create(name string) (*outFile, error) {
	if err := checkRelPath(name); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if d := path.Dir(name); d != "." {
		if err := p.root.MkdirAll(path.Join(p.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("backup: create %s: %w", d, err)
		}
	}
	f, err := p.root.OpenFile(path.Join(p.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: create %s: %w", name, err)
	}
	return &outFile{p: p, name: name, f: f, h: sha256.New()}, nil
}

func (o *outFile) Write(b []byte) (int, error) {
	n, err := o.f.Write(b)
	o.h.Write(b[:n])
	o.n += int64(n)
	return n, err
}

// commit fsyncs and closes the file and records it.
func (o *outFile) commit() error {
	if o.done {
		return errors.New("backup: file committed twice")
	}
	o.done = true
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", o.name, err)
	}
	o.p.files = append(o.p.files, File{Path: o.name, Size: o.n, SHA256: hex.EncodeToString(o.h.Sum(nil))})
	return nil
}

// abort closes the file without recording it (the partial directory is removed later).
func (o *outFile) abort() {
	if !o.done {
		o.done = true
		o.f.Close()
	}
}

// stream is a plaintext writer whose bytes are compressed, encrypted when the backup is,
// and stored in one file.
type stream struct {
	out    *outFile
	layers []io.WriteCloser // innermost first: closed in order
	w      io.Writer
}

// openStream creates base (+".age" when encrypting) compressed with comp.
func (p *partial) openStream(base, comp string) (*stream, error) {
	return p.openStreamTo(base, comp, p.rcpt)
}

// openStreamTo is openStream encrypting to rcpt (nil: not encrypted).
func (p *partial) openStreamTo(base, comp string, rcpt age.Recipient) (*stream, error) {
	name := base
	if rcpt != nil {
		name += ".age"
	}
	out, err := p.create(name)
	if err != nil {
		return nil, err
	}
	s := &stream{out: out}
	var w io.Writer = out
	if rcpt != nil {
		enc, err := age.Encrypt(w, rcpt)
		if err != nil {
			out.abort()
			return nil, fmt.Errorf("backup: encrypt %s: %w", name, err)
		}
		s.layers = append([]io.WriteCloser{enc}, s.layers...)
		w = enc
	}
	switch comp {
	case compZstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(p.workers))
		if err != nil {
			out.abort()
			return nil, fmt.Errorf("backup: compress %s: %w", name, err)
		}
		s.layers = append([]io.WriteCloser{zw}, s.layers...)
		w = zw
	case compGzip:
		gw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			out.abort()
			return nil, fmt.Errorf("backup: compress %s: %w", name, err)
		}
		s.layers = append([]io.WriteCloser{gw}, s.layers...)
		w = gw
	}
	s.w = w
	return s, nil
}

func (s *stream) Write(b []byte) (int, error) { return s.w.Write(b) }

// commit flushes every layer and commits the file.
func (s *stream) commit() error {
	for _, l := range s.layers {
		if err := l.Close(); err != nil {
			s.out.abort()
			return fmt.Errorf("backup: finish %s: %w", s.out.name, err)
		}
	}
	return s.out.commit()
}

func (s *stream) abort() {
	for _, l := range s.layers {
		if zw, ok := l.(*zstd.Encoder); ok {
			zw.Reset(io.Discard) // stops its goroutines
		}
	}
	s.out.abort()
}

func (s *stream) name() string { return s.out.name }

// reader is a stored file read back: the stored bytes are hashed as they are read, then
// decrypted and decompressed.
type reader struct {
	f     *os.File
	h     hash.Hash
	tee   io.Reader
	plain io.Reader
	zr    *zstd.Decoder
	n     int64
}

// openReader opens a stored file inside root. ids decrypt .age files; without them an
// encrypted file's plaintext is unavailable (errNoIdentity).
func openReader(root *os.Root, name, comp string, ids []age.Identity, workers int) (*reader, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, fmt.Errorf("backup: %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("backup: %s is not a regular file", name)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("backup: open %s: %w", name, err)
	}
	r := &reader{f: f, h: sha256.New()}
	r.tee = io.TeeReader(f, countWriter{r.h, &r.n})
	src := r.tee
	if path.Ext(name) == ".age" {
		if len(ids) == 0 {
			f.Close()
			return nil, errNoIdentity
		}
		dr, err := age.Decrypt(src, ids...)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("backup: decrypt %s: %w", name, err)
		}
		src = dr
	}
	switch comp {
	case compZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(workers), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("backup: decompress %s: %w", name, err)
		}
		r.zr = zr
		src = zr
	case compGzip:
		gr, err := gzip.NewReader(src)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("backup: decompress %s: %w", name, err)
		}
		src = gr
	}
	r.plain = src
	return r, nil
}

var errNoIdentity = errors.New("encrypted, and no identity on this machine")

func (r *reader) Read(b []byte) (int, error) { return r.plain.Read(b) }

// finish reads what is left of the stored file and returns the SHA-256 and size of all
// its bytes.
func (r *reader) finish() (string, int64, error) {
	if _, err := io.Copy(io.Discard, r.tee); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(r.h.Sum(nil)), r.n, nil
}

func (r *reader) Close() error {
	if r.zr != nil {
		r.zr.Close()
	}
	return r.f.Close()
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	*c.n += int64(n)
	return n, err
}
