package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
)

// redisCLI runs one redis-cli command in the Redis container and returns its output.
func (r *Runner) redisCLI(ctx context.Context, args ...string) (string, error) {
	src := r.cfg.Redis
	cmd := append([]string{"redis-cli", "--no-auth-warning", "-h", src.Host, "-p", strconv.Itoa(src.Port)}, args...)
	var env []string
	if src.Password != "" {
		env = append(env, "REDISCLI_AUTH="+src.Password)
	}
	out, exit, err := r.execOutput(ctx, ExecRequest{Container: src.Container, User: src.OSUser, Env: env, Cmd: cmd}, 1<<20)
	if err != nil {
		return "", fmt.Errorf("redis-cli %s: %w", args[0], err)
	}
	text := strings.TrimSpace(string(out))
	if exit.Code != 0 {
		return "", fmt.Errorf("redis-cli %s exited with code %d: %s %s", args[0], exit.Code, text, strings.TrimSpace(exit.Stderr))
	}
	// redis-cli prints server errors on stdout with exit code 0 when not on a TTY.
	if strings.HasPrefix(text, "ERR") || strings.HasPrefix(text, "NOAUTH") || strings.HasPrefix(text, "WRONGPASS") ||
		strings.HasPrefix(text, "Could not connect") || strings.HasPrefix(text, "MISCONF") {
		return "", fmt.Errorf("redis-cli %s: %s", args[0], text)
	}
	return text, nil
}

// execOutput runs a command and returns up to max bytes of its stdout.
func (r *Runner) execOutput(ctx context.Context, req ExecRequest, max int64) ([]byte, Exit, error) {
	proc, err := r.deps.Exec.Exec(ctx, req)
	if err != nil {
		return nil, Exit{}, err
	}
	defer proc.Close()
	out, rerr := io.ReadAll(io.LimitReader(proc, max))
	if rerr == nil {
		_, rerr = io.Copy(io.Discard, proc)
	}
	exit, err := proc.Wait()
	if err != nil {
		return nil, exit, err
	}
	if rerr != nil {
		return nil, exit, rerr
	}
	return out, exit, nil
}

// infoField reads one "key:value" line of INFO output.
func infoField(info, key string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}

// redisSave makes Redis write a fresh RDB (BGSAVE) and waits until it is on disk: no
// save is running and the save counter (rdb_saves, Redis 7) — or, on older servers,
// LASTSAVE — has moved past its value from before the request.
func (r *Runner) redisSave(ctx context.Context) (lastSave int64, version string, err error) {
	info, err := r.redisCLI(ctx, "INFO", "server")
	if err != nil {
		return 0, "", fmt.Errorf("redis: %w", err)
	}
	version, _ = infoField(info, "redis_version")
	before, err := r.redisCLI(ctx, "INFO", "persistence")
	if err != nil {
		return 0, version, fmt.Errorf("redis: %w", err)
	}
	saves0, hasSaves := intField(before, "rdb_saves")
	last0, _ := intField(before, "rdb_last_save_time")
	deadline := r.now().Add(r.cfg.RedisSaveTimeout)
	for {
		_, err := r.redisCLI(ctx, "BGSAVE", "SCHEDULE")
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "already in progress") {
			return 0, version, fmt.Errorf("redis: %w", err)
		}
		// Someone else's save is running: let it finish, then take our own so the
		// snapshot is not older than this backup's start.
		if err := r.poll(ctx, deadline); err != nil {
			return 0, version, fmt.Errorf("redis: a save already in progress did not finish: %w", err)
		}
	}
	for {
		pers, err := r.redisCLI(ctx, "INFO", "persistence")
		if err != nil {
			return 0, version, fmt.Errorf("redis: %w", err)
		}
		inProgress, _ := infoField(pers, "rdb_bgsave_in_progress")
		status, _ := infoField(pers, "rdb_last_bgsave_status")
		saves, _ := intField(pers, "rdb_saves")
		last, _ := intField(pers, "rdb_last_save_time")
		moved := last > last0
		if hasSaves {
			moved = saves > saves0
		}
		if inProgress == "0" && moved {
			if status != "ok" {
				return 0, version, fmt.Errorf("redis: BGSAVE failed (rdb_last_bgsave_status:%s): see the Redis log (`corpintel logs redis`), often a full disk", status)
			}
			return last, version, nil
		}
		if err := r.poll(ctx, deadline); err != nil {
			return 0, version, fmt.Errorf("redis: waiting for BGSAVE: %w", err)
		}
	}
}

func intField(info, key string) (int64, bool) {
	v, ok := infoField(info, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// poll waits one poll interval, failing past the deadline.
func (r *Runner) poll(ctx context.Context, deadline time.Time) error {
	if r.now().After(deadline) {
		return fmt.Errorf("timed out after %s", r.cfg.RedisSaveTimeout)
	}
	return r.deps.Poll(ctx)
}

// rdbPath asks Redis where its RDB file is.
func (r *Runner) rdbPath(ctx context.Context) (string, error) {
	if r.cfg.Redis.RDBPath != "" {
		return r.cfg.Redis.RDBPath, nil
	}
	get := func(key string) (string, error) {
		out, err := r.redisCLI(ctx, "CONFIG", "GET", key)
		if err != nil {
			return "", fmt.Errorf("redis: %w (set the RDB path in the config if CONFIG is disabled)", err)
		}
		lines := strings.Split(out, "\n")
		if len(lines) != 2 || strings.TrimSpace(lines[0]) != key {
			return "", fmt.Errorf("redis: CONFIG GET %s answered %q", key, out)
		}
		return strings.TrimSpace(lines[1]), nil
	}
	dir, err := get("dir")
	if err != nil {
		return "", err
	}
	file, err := get("dbfilename")
	if err != nil {
		return "", err
	}
	return path.Join(dir, file), nil
}

// backupRedis takes a fresh RDB and streams it into the partial directory.
func (r *Runner) backupRedis(ctx context.Context, p *partial, prog *progress) (*RedisPart, string, error) {
	lastSave, version, err := r.redisSave(ctx)
	if err != nil {
		return nil, version, err
	}
	rdb, err := r.rdbPath(ctx)
	if err != nil {
		return nil, version, err
	}
	proc, err := r.deps.Exec.Exec(ctx, ExecRequest{Container: r.cfg.Redis.Container, User: r.cfg.Redis.OSUser, Cmd: []string{"cat", "--", rdb}})
	if err != nil {
		return nil, version, fmt.Errorf("redis: read %s: %w", rdb, err)
	}
	defer proc.Close()
	out, err := p.openStream("redis.rdb.zst", compZstd)
	if err != nil {
		return nil, version, fmt.Errorf("redis: %w", err)
	}
	check := newRDBChecker()
	var n int64
	readErr, writeErr := copyDump(proc, out, check, prog, &n)
	if readErr != nil || writeErr != nil {
		proc.Close()
	}
	exit, waitErr := proc.Wait()
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case writeErr != nil:
		err = fmt.Errorf("write the snapshot: %w", writeErr)
	case waitErr != nil:
		err = waitErr
	case exit.Code != 0:
		err = fmt.Errorf("cat %s exited with code %d: %s", rdb, exit.Code, strings.TrimSpace(exit.Stderr))
	case readErr != nil:
		err = readErr
	}
	if err == nil {
		_, err = check.finish()
	}
	if err != nil {
		out.abort()
		return nil, version, fmt.Errorf("redis: %w", err)
	}
	if err := out.commit(); err != nil {
		out.abort()
		return nil, version, fmt.Errorf("redis: %w", err)
	}
	return &RedisPart{File: out.name(), RDBBytes: n, RDBVersion: check.version, LastSave: lastSave}, version, nil
}

// Redis's CRC-64 (Jones polynomial, reflected; Go's table takes the reversed form and
// pre/post-inverts, which rdbCRC undoes).
var jonesTable = crc64.MakeTable(0x95ac9329ac4bc9b5)

func rdbCRC(crc uint64, b []byte) uint64 { return ^crc64.Update(^crc, jonesTable, b) }

// rdbChecker checks an RDB file as it streams past: the REDIS magic and version at the
// start, the EOF opcode and the CRC-64 of everything before the checksum at the end.
type rdbChecker struct {
	head    []byte
	tail    []byte // the last 9 bytes seen: EOF opcode + checksum
	crc     uint64
	n       int64
	version int
}

func newRDBChecker() *rdbChecker { return &rdbChecker{} }

func (c *rdbChecker) Write(b []byte) (int, error) {
	if len(c.head) < 9 {
		k := min(9-len(c.head), len(b))
		c.head = append(c.head, b[:k]...)
	}
	// Everything except the final 8 checksum bytes goes into the CRC: hold back the
	// last 8 bytes until more arrive.
	all := append(c.tail, b...)
	if len(all) > 9 {
		flush := all[:len(all)-9]
		c.crc = rdbCRC(c.crc, flush)
		all = all[len(all)-9:]
	}
	c.tail = append(c.tail[:0], all...)
	c.n += int64(len(b))
	return len(b), nil
}

// ErrBadRDB is wrapped by every refusal of an RDB file.
var ErrBadRDB = errors.New("not a complete Redis RDB file")

func (c *rdbChecker) finish() (int, error) {
	if len(c.head) < 9 || !bytes.HasPrefix(c.head, []byte("REDIS")) {
		return 0, fmt.Errorf("%w: no REDIS signature (%d bytes)", ErrBadRDB, c.n)
	}
	v, err := strconv.Atoi(string(c.head[5:9]))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: bad version %q", ErrBadRDB, c.head[5:9])
	}
	c.version = v
	if len(c.tail) < 9 || c.tail[0] != 0xff {
		return v, fmt.Errorf("%w: no EOF marker: the file is truncated", ErrBadRDB)
	}
	crc := rdbCRC(c.crc, c.tail[:1])
	want := binary.LittleEndian.Uint64(c.tail[1:])
	// Redis writes a zero checksum when rdbchecksum is off.
	if v >= 5 && want != 0 && want != crc {
		return v, fmt.Errorf("%w: checksum mismatch (stored %016x, computed %016x)", ErrBadRDB, want, crc)
	}
	return v, nil
}
