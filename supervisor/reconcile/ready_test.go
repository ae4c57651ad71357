package reconcile

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corpintel/corpintel/internal/testenv"
)

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestReadyProbeHTTP(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.Listener.Addr().String())
	p := &ReadyProbe{Kind: ProbeHTTP, Port: port, Path: "/health"}
	if err := p.Check(context.Background(), ip); err != nil {
		t.Errorf("serving: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := p.Check(context.Background(), ip); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	if err := p.Check(context.Background(), ""); err == nil {
		t.Error("a container without address passed")
	}
	if err := (&ReadyProbe{Kind: "smtp", Port: port}).Check(context.Background(), ip); err == nil {
		t.Error("an unknown probe kind passed")
	}
}

func TestReadyProbeRedis(t *testing.T) {
	r := testenv.RedisServer(t)
	ip, port := hostPort(t, r.Addr)
	p := &ReadyProbe{Kind: ProbeRedis, Port: port}
	// The server wants a password: its refusal of PING still says it serves.
	if err := p.Check(context.Background(), ip); err != nil {
		t.Errorf("serving: %v", err)
	}
	r.Stop(t)
	if err := p.Check(context.Background(), ip); err == nil {
		t.Error("a stopped Redis passed")
	}
	// Anything but PONG or NOAUTH (here: LOADING) is not ready.
	ip, port = fakeServer(t, func(c net.Conn) { _, _ = c.Write([]byte("-LOADING Redis is loading the dataset in memory\r\n")) })
	if err := (&ReadyProbe{Kind: ProbeRedis, Port: port}).Check(context.Background(), ip); err == nil || !strings.Contains(err.Error(), "LOADING") {
		t.Errorf("loading: %v", err)
	}
}

func TestReadyProbePostgres(t *testing.T) {
	pg := testenv.PostgresServer(t)
	p := &ReadyProbe{Kind: ProbePostgres, Port: pg.Port, User: pg.User, DB: pg.DB}
	if err := p.Check(context.Background(), pg.Host); err != nil {
		t.Errorf("serving: %v", err)
	}
	pg.Stop(t)
	if err := p.Check(context.Background(), pg.Host); err == nil {
		t.Error("a stopped PostgreSQL passed")
	}
	// A server still starting up refuses with 57P03; one refusing for another reason
	// (no pg_hba entry) accepts connections, as pg_isready says.
	for code, ready := range map[string]bool{"57P03": false, "28000": true} {
		ip, port := fakeServer(t, func(c net.Conn) {
			be := pgproto3.NewBackend(c, c)
			if _, err := be.ReceiveStartupMessage(); err != nil {
				return
			}
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: "refused " + code})
			_ = be.Flush()
		})
		err := (&ReadyProbe{Kind: ProbePostgres, Port: port, User: "u", DB: "d"}).Check(context.Background(), ip)
		if (err == nil) != ready {
			t.Errorf("server answering %s: err = %v, want ready = %v", code, err, ready)
		}
	}
}

// fakeServer answers every connection with serve.
func fakeServer(t *testing.T, serve func(net.Conn)) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			_ = c.Close()
		}
	}()
	return hostPort(t, ln.Addr().String())
}
