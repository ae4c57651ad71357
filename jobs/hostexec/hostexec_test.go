package hostexec

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/jobs/backup"
)

func TestExecStreamsStdoutAndReportsExit(t *testing.T) {
	e := &Exec{}
	p, err := e.Exec(context.Background(), backup.ExecRequest{Container: "c", Env: []string{"SECRET=s3cret"},
		Cmd: []string{"sh", "-c", `printf "%s" "$SECRET"; echo oops >&2; exit 3`}})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(p)
	exit, err := p.Wait()
	if err != nil || string(out) != "s3cret" || exit.Code != 3 || strings.TrimSpace(exit.Stderr) != "oops" {
		t.Errorf("out %q exit %+v err %v", out, exit, err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	if got := e.Started(); len(got) != 1 || got[0] != "sh" {
		t.Errorf("Started = %v", got)
	}
}

func TestCloseKillsARunningCommand(t *testing.T) {
	e := &Exec{}
	p, err := e.Exec(context.Background(), backup.ExecRequest{Cmd: []string{"sh", "-c", "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(p, buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the command")
	}
	exit, _ := p.Wait()
	if exit.Code != 128+9 {
		t.Errorf("exit %+v, want SIGKILL", exit)
	}
}

func TestCancelledContextKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := (&Exec{}).Exec(ctx, backup.ExecRequest{Cmd: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, _ = io.ReadAll(p)
	if exit, _ := p.Wait(); exit.Code == 0 {
		t.Errorf("cancelled command exited 0")
	}
}

func TestExecErrors(t *testing.T) {
	e := &Exec{Down: map[string]bool{"pg": true}}
	if _, err := e.Exec(context.Background(), backup.ExecRequest{Container: "pg", Cmd: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("down container: %v", err)
	}
	if _, err := e.Exec(context.Background(), backup.ExecRequest{}); err == nil {
		t.Error("empty command")
	}
	if _, err := e.Exec(context.Background(), backup.ExecRequest{Cmd: []string{"no-such-command-xyz"}}); err == nil {
		t.Error("missing command")
	}
	if _, err := e.Exec(context.Background(), backup.ExecRequest{Cmd: []string{"/nonexistent/bin"}}); err == nil {
		t.Error("missing absolute command")
	}
	if _, err := e.RunTool(context.Background(), backup.ToolRequest{Cmd: []string{"no-such-command-xyz"}}); err == nil {
		t.Error("missing tool")
	}
}

func TestRunToolMountAndStdin(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("mounted"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Exec{}
	res, err := e.RunTool(context.Background(), backup.ToolRequest{Image: "postgres", Mount: dir, Cmd: []string{"cat", backup.ToolMountPoint + "/f"}})
	if err != nil || res.Code != 0 || string(res.Stdout) != "mounted" {
		t.Errorf("mount: %+v %v", res, err)
	}
	// A tool that reads only the start of a long stdin: not an error.
	big := bytes.Repeat([]byte("x"), 8<<20)
	res, err = e.RunTool(context.Background(), backup.ToolRequest{Cmd: []string{"head", "-c", "5"}, Stdin: bytes.NewReader(big)})
	if err != nil || res.Code != 0 || string(res.Stdout) != "xxxxx" {
		t.Errorf("early exit: %+v %v", res, err)
	}
	res, err = e.RunTool(context.Background(), backup.ToolRequest{Cmd: []string{"sh", "-c", "echo bad >&2; exit 2"}})
	if err != nil || res.Code != 2 || strings.TrimSpace(res.Stderr) != "bad" {
		t.Errorf("failing tool: %+v %v", res, err)
	}
}

func TestBuffers(t *testing.T) {
	tb := &tailBuffer{max: 4}
	tb.Write([]byte("abc"))
	tb.Write([]byte("defg"))
	if tb.String() != "defg" {
		t.Errorf("tail %q", tb.String())
	}
	lb := &limitedBuffer{max: 3}
	n, _ := lb.Write([]byte("abcdef"))
	lb.Write([]byte("x"))
	if n != 6 || lb.String() != "abc" {
		t.Errorf("limited %q", lb.String())
	}
	if d := PGBinDir(); d != "" {
		if _, err := os.Stat(filepath.Join(d, "pg_dump")); err != nil {
			t.Errorf("PGBinDir %s: %v", d, err)
		}
	}
}
