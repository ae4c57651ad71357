package backup

import (
	"context"

	"filippo.io/age"
	"fmt"
	"os"
	"path"

	"github.com/corpintel/corpintel/jobs/kit"
	"github.com/corpintel/corpintel/jobs/objstore"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const objectIndexFile = "objects.jsonl.zst"

func (c MinIOSource) client() (*minio.Client, error) {
	cl, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.Secure})
	if err != nil {
		return nil, fmt.Errorf("objects: client for %s: %w", c.Endpoint, err)
	}
	return cl, nil
}

// backupObjects copies new and changed objects into the shared store and writes this
// backup's index of every object.
func (r *Runner) backupObjects(ctx context.Context, root *os.Root, p *partial, prev []objstore.Entry, prog *progress) (*ObjectsPart, []objstore.Blob, error) {
	cl, err := r.cfg.MinIO.client()
	if err != nil {
		return nil, nil, err
	}
	store, err := objstore.Open(path.Join(r.cfg.Root, objstore.Dir))
	if err != nil {
		return nil, nil, fmt.Errorf("objects: %w", err)
	}
	defer store.Close()
	index, st, err := objstore.Copy(ctx, cl, store, objstore.CopyOptions{
		Buckets: r.cfg.MinIO.Buckets, Previous: prev, Recipient: p.rcpt, Progress: prog.add,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("objects: %w (is MinIO up? `corpintel status` shows it)", err)
	}
	out, err := p.openStream(objectIndexFile, compZstd)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: %w", err)
	}
	if err := objstore.WriteIndex(out, index); err != nil {
		out.abort()
		return nil, nil, fmt.Errorf("objects: %w", err)
	}
	if err := out.commit(); err != nil {
		return nil, nil, fmt.Errorf("objects: %w", err)
	}
	return &ObjectsPart{
		Index: out.name(), Count: st.Objects, Bytes: st.Bytes, Reused: st.Reused,
		Downloaded: st.Downloaded, Stored: st.Stored, NewBlobs: len(st.NewBlobs),
	}, st.NewBlobs, nil
}

// readObjectIndex reads the object index of a complete backup (ids decrypt it when
// the backup is encrypted).
func readObjectIndex(dir *os.Root, m *Manifest, ids []age.Identity, workers int) ([]objstore.Entry, error) {
	if m.Objects == nil {
		return nil, nil
	}
	rd, err := openReader(dir, m.Objects.Index, compZstd, ids, workers)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return objstore.ReadIndex(rd)
}

// backupKit writes the recovery kit: the config as is, a consistent copy of the state
// store, and the secrets as an age-encrypted tar.
func (r *Runner) backupKit(ctx context.Context, p *partial) (*KitPart, error) {
	k := r.cfg.Kit
	part := &KitPart{Recipient: k.Recipient}
	if k.ConfigFile != "" {
		out, err := p.openStream("kit/config.toml", compNone)
		if err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		if err := copyFileInto(out, k.ConfigFile); err != nil {
			out.abort()
			return nil, fmt.Errorf("kit: config: %w", err)
		}
		if err := out.commit(); err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		part.Config = out.name()
	}
	if k.StateDB != "" {
		tmp, err := os.MkdirTemp(r.cfg.Root, ".kit-")
		if err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		defer os.RemoveAll(tmp)
		snap := path.Join(tmp, "state.db")
		if err := kit.SnapshotSQLite(ctx, k.StateDB, snap); err != nil {
			return nil, err
		}
		out, err := p.openStream("kit/state.db.zst", compZstd)
		if err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		if err := copyFileInto(out, snap); err != nil {
			out.abort()
			return nil, fmt.Errorf("kit: state store: %w", err)
		}
		if err := out.commit(); err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		part.StateDB = out.name()
	}
	if k.SecretsDir != "" {
		rcpt, err := r.cfg.recipient()
		if err != nil {
			return nil, err
		}
		// Secrets are encrypted whether or not the rest of the backup is.
		out, err := p.openStreamTo("kit/secrets.tar", compNone, rcpt)
		if err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		n, err := kit.WriteTar(out, k.SecretsDir)
		if err != nil {
			out.abort()
			return nil, err
		}
		if err := out.commit(); err != nil {
			return nil, fmt.Errorf("kit: %w", err)
		}
		part.Secrets, part.Files = out.name(), n
	}
	return part, nil
}

func copyFileInto(w *stream, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", name)
	}
	_, err = f.WriteTo(w)
	return err
}
