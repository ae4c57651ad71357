package kit

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits of ExtractTar: a secrets directory is a few small files.
const (
	MaxTarFiles    = 10_000
	MaxTarFileSize = 16 << 20
	MaxTarTotal    = 256 << 20
)

// WriteTar writes the regular files and directories under dir to w as a tar stream with
// paths relative to dir. A symlink, device or other special file is an error: a secrets
// directory holds nothing else, and following a link could pull in files from elsewhere.
func WriteTar(w io.Writer, dir string) (files int, err error) {
	tw := tar.NewWriter(w)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("kit: secrets directory: %w", err)
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode().IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
		case info.Mode().IsRegular():
			f, err := root.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			// Size from the open file: a file replaced between the walk and the open
			// must not produce a header that lies about its length.
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(st.Mode().Perm()), Size: st.Size(), ModTime: st.ModTime()}); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, f, st.Size()); err != nil {
				return err
			}
			files++
			return nil
		default:
			return fmt.Errorf("%s is a %s, not a regular file: the secrets directory may hold only files and directories", p, info.Mode().Type())
		}
	})
	if err != nil {
		return files, fmt.Errorf("kit: tar %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return files, fmt.Errorf("kit: tar %s: %w", dir, err)
	}
	return files, nil
}

// ErrUnsafeArchive is wrapped by every refusal of ExtractTar.
var ErrUnsafeArchive = errors.New("unsafe archive")

// ExtractTar writes the files of a tar stream into dir (which must exist and should be
// empty). It refuses, before writing the offending entry, absolute paths, paths with
// "..", links of any kind, devices, duplicates and sizes past the limits; writes go
// through an os.Root, so nothing can land outside dir even through a symlink that is
// already there.
func ExtractTar(r io.Reader, dir string) (files int, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("kit: open %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("kit: read tar: %w", err)
		}
		name, err := safeName(h.Name)
		if err != nil {
			return files, err
		}
		if seen[name] {
			return files, fmt.Errorf("kit: %w: %q appears twice", ErrUnsafeArchive, h.Name)
		}
		seen[name] = true
		if len(seen) > MaxTarFiles {
			return files, fmt.Errorf("kit: %w: more than %d entries", ErrUnsafeArchive, MaxTarFiles)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return files, fmt.Errorf("kit: create %s: %w", name, err)
			}
		case tar.TypeReg:
			if h.Size < 0 || h.Size > MaxTarFileSize {
				return files, fmt.Errorf("kit: %w: %q declares %d bytes (limit %d)", ErrUnsafeArchive, h.Name, h.Size, MaxTarFileSize)
			}
			total += h.Size
			if total > MaxTarTotal {
				return files, fmt.Errorf("kit: %w: more than %d bytes in all", ErrUnsafeArchive, MaxTarTotal)
			}
			if d := path.Dir(name); d != "." {
				if err := root.MkdirAll(d, 0o700); err != nil {
					return files, fmt.Errorf("kit: create %s: %w", d, err)
				}
			}
			if err := writeEntry(root, name, h, tr); err != nil {
				return files, err
			}
			files++
		default:
			return files, fmt.Errorf("kit: %w: %q is of tar type %q (only files and directories are accepted)", ErrUnsafeArchive, h.Name, h.Typeflag)
		}
	}
}

func writeEntry(root *os.Root, name string, h *tar.Header, r io.Reader) error {
	perm := fs.FileMode(h.Mode).Perm() & 0o700 // secrets: never group/world readable
	if perm == 0 {
		perm = 0o600
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("kit: create %s: %w", name, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, h.Size))
	if err == nil && n != h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kit: write %s: %w", name, err)
	}
	return nil
}

// safeName cleans a tar entry name and refuses anything that could leave the target.
func safeName(n string) (string, error) {
	if n == "" || strings.ContainsRune(n, 0) || strings.Contains(n, `\`) {
		return "", fmt.Errorf("kit: %w: bad entry name %q", ErrUnsafeArchive, n)
	}
	if path.IsAbs(n) || filepath.IsAbs(n) {
		return "", fmt.Errorf("kit: %w: absolute path %q", ErrUnsafeArchive, n)
	}
	for _, part := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("kit: %w: path %q leaves the directory", ErrUnsafeArchive, n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", fmt.Errorf("kit: %w: bad entry name %q", ErrUnsafeArchive, n)
	}
	return c, nil
}
