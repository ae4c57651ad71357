// Package objstore keeps object bodies (MinIO documents) in a content-addressed store
// under the backup root, objects/<first two hex digits>/<sha256>, so every backup
// references the bodies it needs and an unchanged object is stored once however many
// backups keep it. Copy fills the store from the S3 API incrementally: an object whose
// bucket, key, size, ETag and modification time match the previous backup's index is
// not even downloaded again.
//
// Bodies are written to objects/.tmp, fsynced, and renamed into place only once their
// hash is known, so a blob under its name is always complete. With a recipient every
// blob is age-encrypted (name suffix .age) and addressed by the hash of its plaintext.
package objstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"filippo.io/age"
)

// Dir is the store's directory name under the backup root.
const Dir = "objects"

const (
	tmpDir    = ".tmp"
	encSuffix = ".age"
)

// Store is a content-addressed blob store. Its methods are safe for concurrent use.
type Store struct {
	root *os.Root
	dir  string
	mu   sync.Mutex // serialises "already stored?" with the rename that stores
}

// Open opens (creating if needed) the store in dir. Every access goes through an
// os.Root, so a symlink planted in the store cannot lead outside it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("objstore: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", dir, err)
	}
	if err := root.MkdirAll(tmpDir, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("objstore: create %s/%s: %w", dir, tmpDir, err)
	}
	return &Store{root: root, dir: dir}, nil
}

// Close releases the store's directory handle.
func (s *Store) Close() error { return s.root.Close() }

// Blob names one stored body.
type Blob struct {
	SHA256    string // of the plaintext: the address
	Encrypted bool
}

// ValidSum reports whether s is a lowercase hex SHA-256.
func ValidSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Path is the blob's path relative to the store.
func (b Blob) Path() string {
	name := b.SHA256
	if b.Encrypted {
		name += encSuffix
	}
	return path.Join(b.SHA256[:2], name)
}

// Stat returns the stored size of a blob (the ciphertext for encrypted ones); ok is
// false when it is missing. A symlink or non-regular file in its place counts as missing.
func (s *Store) Stat(b Blob) (size int64, ok bool) {
	if !ValidSum(b.SHA256) {
		return 0, false
	}
	fi, err := s.root.Lstat(b.Path())
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// PutResult says what Put did.
type PutResult struct {
	Blob   Blob
	Size   int64 // plaintext bytes read
	Stored int64 // bytes written into the store (0 when the blob was already there)
}

// Put reads r to the end into the store. With rcpt the stored body is encrypted to it.
func (s *Store) Put(r io.Reader, rcpt age.Recipient) (PutResult, error) {
	tmpName := path.Join(tmpDir, "put-"+randHex(8))
	f, err := s.root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: create temp blob: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close() // a second Close after the explicit one only returns an error
			_ = s.root.Remove(tmpName)
		}
	}()
	var (
		w   io.Writer = f
		enc io.WriteCloser
	)
	if rcpt != nil {
		enc, err = age.Encrypt(f, rcpt)
		if err != nil {
			return PutResult{}, fmt.Errorf("objstore: encrypt blob: %w", err)
		}
		w = enc
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: write blob: %w", err)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return PutResult{}, fmt.Errorf("objstore: finish encrypted blob: %w", err)
		}
	}
	b := Blob{SHA256: hex.EncodeToString(h.Sum(nil)), Encrypted: rcpt != nil}
	res := PutResult{Blob: b, Size: n}
	// Synced before taking the lock, so parallel downloads do not queue on fsync.
	if err := f.Sync(); err != nil {
		return PutResult{}, fmt.Errorf("objstore: sync blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return PutResult{}, fmt.Errorf("objstore: stat blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return PutResult{}, fmt.Errorf("objstore: close blob: %w", err)
	}
	// Two equal bodies downloaded in parallel: the second finds the first stored.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.Stat(b); ok {
		return res, nil // the deferred cleanup drops the duplicate
	}
	if err := s.root.MkdirAll(b.SHA256[:2], 0o700); err != nil {
		return PutResult{}, fmt.Errorf("objstore: create blob directory: %w", err)
	}
	if err := s.root.Rename(tmpName, b.Path()); err != nil {
		return PutResult{}, fmt.Errorf("objstore: store blob %s: %w", b.SHA256, err)
	}
	committed = true
	if err := s.syncDir(b.SHA256[:2]); err != nil {
		return PutResult{}, err
	}
	res.Stored = fi.Size()
	return res, nil
}

func (s *Store) syncDir(name string) error {
	d, err := s.root.Open(name)
	if err != nil {
		return fmt.Errorf("objstore: open %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("objstore: sync %s: %w", name, err)
	}
	return nil
}

// Open returns the plaintext of a blob; encrypted blobs need the identities.
func (s *Store) Open(b Blob, ids ...age.Identity) (io.ReadCloser, error) {
	if !ValidSum(b.SHA256) {
		return nil, fmt.Errorf("objstore: %q is not a SHA-256", b.SHA256)
	}
	if fi, err := s.root.Lstat(b.Path()); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("objstore: blob %s is missing or not a regular file", b.SHA256)
	}
	f, err := s.root.Open(b.Path())
	if err != nil {
		return nil, fmt.Errorf("objstore: open blob %s: %w", b.SHA256, err)
	}
	if !b.Encrypted {
		return f, nil
	}
	if len(ids) == 0 {
		f.Close()
		return nil, fmt.Errorf("objstore: blob %s is encrypted: pass the recovery-kit identity", b.SHA256)
	}
	pr, err := age.Decrypt(f, ids...)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("objstore: decrypt blob %s: %w", b.SHA256, err)
	}
	return readCloser{pr, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Verify re-reads a blob and checks that its plaintext hashes to its name and has size
// bytes (size < 0: any). Encrypted blobs without identities are checked for presence only.
func (s *Store) Verify(b Blob, size int64, ids ...age.Identity) error {
	if _, ok := s.Stat(b); !ok {
		return fmt.Errorf("objstore: blob %s is missing", b.SHA256)
	}
	if b.Encrypted && len(ids) == 0 {
		return nil
	}
	rc, err := s.Open(b, ids...)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return fmt.Errorf("objstore: read blob %s: %w", b.SHA256, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != b.SHA256 {
		return fmt.Errorf("objstore: blob %s is corrupt: its content hashes to %s", b.SHA256, got)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("objstore: blob %s has %d bytes, want %d", b.SHA256, n, size)
	}
	return nil
}

// List returns every blob in the store (retention's view); names that are not blobs
// (and symlinks) are ignored.
func (s *Store) List() ([]Blob, error) {
	var out []Blob
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		dir, name := path.Split(p)
		enc := strings.HasSuffix(name, encSuffix)
		sum := strings.TrimSuffix(name, encSuffix)
		if ValidSum(sum) && dir == sum[:2]+"/" {
			out = append(out, Blob{SHA256: sum, Encrypted: enc})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %s: %w", s.dir, err)
	}
	return out, nil
}

// Remove deletes a blob; a missing one is not an error.
func (s *Store) Remove(b Blob) error {
	if !ValidSum(b.SHA256) {
		return fmt.Errorf("objstore: %q is not a SHA-256", b.SHA256)
	}
	if err := s.root.Remove(b.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstore: remove blob %s: %w", b.SHA256, err)
	}
	return nil
}

// CleanTemp removes bodies left in objects/.tmp by an interrupted backup.
func (s *Store) CleanTemp() error {
	if err := s.root.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("objstore: clean %s/%s: %w", s.dir, tmpDir, err)
	}
	if err := s.root.MkdirAll(tmpDir, 0o700); err != nil {
		return fmt.Errorf("objstore: create %s/%s: %w", s.dir, tmpDir, err)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
