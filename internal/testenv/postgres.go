package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PG is one test's database on a PostgreSQL server. The database is owned by User, a
// login role without superuser rights (like the production `intel_user`); Admin* is the
// server's superuser for tests that need it.
type PG struct {
	Host     string // always 127.0.0.1: clients use TCP with SCRAM password auth
	Port     int
	DB       string
	User     string
	Password string
	DSN      string // postgres://User:Password@Host:Port/DB?sslmode=disable

	AdminUser     string
	AdminPassword string
	AdminDSN      string // superuser, database DB

	SocketDir string // the server's unix socket directory

	srv *pgServer
}

// Pool opens a pgx pool on the test's database as User; it is closed when the test ends.
func (p *PG) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), p.DSN)
	if err != nil {
		t.Fatalf("testenv: open pool on %s: %v", p.DB, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Stop shuts the PostgreSQL server down (fast shutdown), e.g. to test readiness checks
// or reconnects. Only private servers (PostgresServer) can be stopped.
func (p *PG) Stop(t testing.TB) {
	t.Helper()
	if p.srv.shared {
		t.Fatal("testenv: ", errShared)
	}
	p.srv.close()
}

// Postgres returns a fresh database on the PostgreSQL server shared by this test binary.
// The database is dropped when the test ends.
func Postgres(t testing.TB) *PG {
	t.Helper()
	srv, err := sharedPG.get(func() (*pgServer, error) { return startPostgres(true) })
	Require(t, "postgres", err)
	return srv.newDatabase(t)
}

// PostgresServer starts a private PostgreSQL server for this test (stopped when the test
// ends) and returns a fresh database on it. Use it when the test stops the server.
func PostgresServer(t testing.TB) *PG {
	t.Helper()
	srv, err := startPostgres(false)
	Require(t, "postgres", err)
	t.Cleanup(srv.close)
	return srv.newDatabase(t)
}

var sharedPG lazy[pgServer]

const (
	pgAdminUser = "postgres"
	pgAppUser   = "corpintel"
)

type pgServer struct {
	proc          *server
	port          int
	socketDir     string
	adminPassword string
	appPassword   string
	admin         *pgxpool.Pool
	shared        bool
}

func (s *pgServer) close() {
	s.admin.Close()
	s.proc.stop()
}

func (s *pgServer) dsn(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password,
		net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), db)
}

func (s *pgServer) newDatabase(t testing.TB) *PG {
	t.Helper()
	name := resourceName("t", nextSeq(), t.Name(), "_", 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident+" OWNER "+pgAppUser); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if s.proc.exited() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	return &PG{
		Host: "127.0.0.1", Port: s.port, DB: name,
		User: pgAppUser, Password: s.appPassword, DSN: s.dsn(pgAppUser, s.appPassword, name),
		AdminUser: pgAdminUser, AdminPassword: s.adminPassword, AdminDSN: s.dsn(pgAdminUser, s.adminPassword, name),
		SocketDir: s.socketDir,
		srv:       s,
	}
}

// pgBinDir finds the directory holding initdb and postgres.
func pgBinDir() (string, error) {
	var candidates []string
	if d := os.Getenv("CORPINTEL_PG_BINDIR"); d != "" {
		candidates = append(candidates, d)
	} else {
		versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		// Prefer 15 (production's version), then the newest other one.
		sort.Slice(versions, func(i, j int) bool {
			vi, vj := strings.Contains(versions[i], "/15/"), strings.Contains(versions[j], "/15/")
			if vi != vj {
				return vi
			}
			return versions[i] > versions[j]
		})
		candidates = append(candidates, versions...)
		if p, err := exec.LookPath("initdb"); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres not found")
}

// pgTestUser is the unprivileged account PostgreSQL runs as when the tests run as root
// (postgres refuses to run as root).
const pgTestUser = "corpintel-test"

// pgCredential returns the credential to run PostgreSQL with: nil when not root, else
// corpintel-test (created when missing), else nobody.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(pgTestUser)
	if err != nil {
		// Several test binaries may race here; a lost race is fine, the lookup decides.
		out, addErr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", pgTestUser).CombinedOutput()
		u, err = user.Lookup(pgTestUser)
		if err != nil {
			u, err = user.Lookup("nobody")
			if err != nil {
				return nil, fmt.Errorf("no unprivileged user to run postgres as: useradd %s: %v %s", pgTestUser, addErr, out)
			}
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// cleanEnv is the environment without PG* variables, which would steer initdb/postgres.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

func startPostgres(shared bool) (*pgServer, error) {
	bindir, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	dir, err := serverDir("postgres")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown postgres dir: %w", err)
		}
	}
	adminPassword := randomHex(16)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(adminPassword+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write postgres password file: %w", err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown postgres password file: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bindir, "initdb"), "-D", data, "-U", pgAdminUser, "--pwfile", pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = cleanEnv()
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := runPostgres(bindir, dir, data, cred, adminPassword)
		if err == nil {
			s.shared = shared
			return s, nil
		}
		lastErr = err
		// A port taken between freePort and bind is worth another try; anything else is not.
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func runPostgres(bindir, dir, data string, cred *syscall.Credential, adminPassword string) (*pgServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bindir, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_permissions=0777",
		// Durability is worthless for throw-away test data; speed is not.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	// SIGINT is PostgreSQL's fast shutdown: disconnect clients, stop.
	proc, err := startServer("postgres", dir, cmd, syscall.SIGINT, cred)
	if err != nil {
		return nil, err
	}
	s := &pgServer{proc: proc, port: port, socketDir: dir, adminPassword: adminPassword, appPassword: randomHex(16)}
	err = waitReady(proc, 60*time.Second, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, s.dsn(pgAdminUser, adminPassword, "postgres"))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		proc.stopKeepDir()
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(s.dsn(pgAdminUser, adminPassword, "postgres"))
	if err != nil {
		proc.stopKeepDir()
		return nil, fmt.Errorf("postgres admin dsn: %w", err)
	}
	cfg.MaxConns = 4
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.admin, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		proc.stopKeepDir()
		return nil, fmt.Errorf("postgres admin pool: %w", err)
	}
	if _, err := s.admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER PASSWORD '%s'", pgAppUser, s.appPassword)); err != nil {
		s.admin.Close()
		proc.stopKeepDir()
		return nil, fmt.Errorf("create role %s: %w", pgAppUser, err)
	}
	return s, nil
}
