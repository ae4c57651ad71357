package reconcile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corpintel/corpintel/internal/config"
	"github.com/corpintel/corpintel/internal/stack"
)

// ReadyProbe is what the supervisor itself asks a container, over the stack network, to
// learn that it serves — the same question as the container's Docker health check.
// Docker runs its check only every Interval (the first one an Interval after start; API
// 1.41 has no start interval), and every check is an exec into the container, which
// costs a burst of CPU on a small machine. So the checks run rarely, and the health gate
// (and the proxy, for a replica the gate let through) use this probe instead of waiting
// for Docker's first check. It is not part of the container's hash.
type ReadyProbe struct {
	Kind string // ProbeHTTP, ProbeRedis or ProbePostgres
	Port int
	Path string // ProbeHTTP: the path that must answer 200
	// ProbePostgres: who to start a session as. The probe stops at the server's
	// authentication request, like pg_isready, so it needs no password and the server
	// logs nothing.
	User, DB string
}

// Probe kinds.
const (
	ProbeHTTP     = "http"
	ProbeRedis    = "redis"
	ProbePostgres = "postgres"
)

// ReadyProbes is how the supervisor asks each service's containers whether they serve.
func ReadyProbes(cfg *config.Config) map[string]*ReadyProbe {
	return map[string]*ReadyProbe{
		stack.ServicePostgres: {Kind: ProbePostgres, Port: stack.PortPostgres, User: cfg.Postgres.User, DB: cfg.Postgres.DB},
		stack.ServiceRedis:    {Kind: ProbeRedis, Port: stack.PortRedis},
		stack.ServiceMinIO:    {Kind: ProbeHTTP, Port: stack.PortMinIO, Path: "/minio/health/live"},
		stack.ServiceAPI:      {Kind: ProbeHTTP, Port: stack.PortAPI, Path: "/health"},
	}
}

// ReadySet holds the containers that are known to serve although Docker's first health
// check is still to come: they passed their health gate by ReadyProbe, or answered the
// probe the reconciler sends to replicas Docker restarted on its own. It is the one
// place that knows this; status and the edge ask it through Snapshot.
type ReadySet struct {
	mu  sync.Mutex
	ids map[string]bool
}

// Add records a container as serving.
func (s *ReadySet) Add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

// Has reports whether the container is known to serve.
func (s *ReadySet) Has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// Retain forgets every container not in present (removed ones).
func (s *ReadySet) Retain(present []ObservedContainer) {
	keep := make(map[string]bool, len(present))
	for _, c := range present {
		keep[c.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.ids {
		if !keep[id] {
			delete(s.ids, id)
		}
	}
}

// probeTimeout bounds one probe.
const probeTimeout = 2 * time.Second

// Check probes the container at ip; nil means it serves.
func (p *ReadyProbe) Check(ctx context.Context, ip string) error {
	if ip == "" {
		return errors.New("no address on the stack network")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	addr := net.JoinHostPort(ip, strconv.Itoa(p.Port))
	switch p.Kind {
	case ProbeHTTP:
		return probeHTTP(ctx, "http://"+addr+p.Path)
	case ProbeRedis:
		return probeRedis(ctx, addr)
	case ProbePostgres:
		return probePostgres(ctx, addr, p.User, p.DB)
	default:
		return fmt.Errorf("unknown probe kind %q", p.Kind)
	}
}

var probeClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func probeHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

func dialProbe(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c, nil
}

// probeRedis sends PING: PONG, or the refusal of a server that wants a password, means
// it serves; LOADING (reading its data set) and anything else mean not yet.
func probeRedis(ctx context.Context, addr string) error {
	c, err := dialProbe(ctx, addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "+PONG" || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("redis answered %q", line)
}

// probePostgres starts a session and stops at the first answer: a request to
// authenticate (or a session) means the server accepts connections; "the database
// system is starting up" (or shutting down, or in recovery) means not yet.
func probePostgres(ctx context.Context, addr, user, db string) error {
	c, err := dialProbe(ctx, addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": db, "application_name": "corpintel-probe"}})
	if err := fe.Flush(); err != nil {
		return err
	}
	msg, err := fe.Receive()
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		if e.Code == "57P03" { // cannot_connect_now
			return fmt.Errorf("postgres: %s", e.Message)
		}
		// Refused for another reason (e.g. pg_hba): it serves, like pg_isready says.
	}
	return nil
}
