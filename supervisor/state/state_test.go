package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Scale(ctx, "api"); ok || err != nil {
		t.Fatalf("unset scale: %v %v", ok, err)
	}
	if err := s.SetScale(ctx, "api", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetScale(ctx, "api", 4); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkJobDone(ctx, "seed"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "absent"); ok || err != nil {
		t.Fatalf("absent key: %v %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Everything survives a reopen (a supervisor restart).
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, ok, err := s.Scale(ctx, "api"); n != 4 || !ok || err != nil {
		t.Errorf("scale = %d %v %v", n, ok, err)
	}
	if done, err := s.JobsDone(ctx); err != nil || !done["seed"] || len(done) != 1 {
		t.Errorf("jobs = %v %v", done, err)
	}
	if v, ok, err := s.Get(ctx, "k"); v != "v2" || !ok || err != nil {
		t.Errorf("get = %q %v %v", v, ok, err)
	}
	var mode string
	if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q %v", mode, err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v %v", fi.Mode(), err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, filepath.Join(file, "sub")); err == nil {
		t.Error("Open under a file succeeded")
	}
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A closed store reports errors with context.
	if _, _, err := s.Scale(ctx, "api"); err == nil {
		t.Error("Scale on closed store")
	}
	if err := s.SetScale(ctx, "api", 1); err == nil {
		t.Error("SetScale on closed store")
	}
	if _, err := s.JobsDone(ctx); err == nil {
		t.Error("JobsDone on closed store")
	}
	if err := s.MarkJobDone(ctx, "x"); err == nil {
		t.Error("MarkJobDone on closed store")
	}
	if _, _, err := s.Get(ctx, "k"); err == nil {
		t.Error("Get on closed store")
	}
	if err := s.Set(ctx, "k", "v"); err == nil {
		t.Error("Set on closed store")
	}
}
