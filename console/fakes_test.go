package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// memStore is an in-memory Store for the handler tests (the SQLite one, with the same
// semantics, is tested in supervisor/state and end to end through cmd/corpintel).
type memStore struct {
	mu        sync.Mutex
	users     map[int64]User
	nextUser  int64
	codes     map[int64]map[string]bool // user → hash → used
	sessions  map[string]Session
	invites   map[int64]Invite
	nextInv   int64
	failures  map[string]LoginFailures
	audit     []AuditEntry
	failAudit error
}

func newMemStore() *memStore {
	return &memStore{users: map[int64]User{}, codes: map[int64]map[string]bool{}, sessions: map[string]Session{},
		invites: map[int64]Invite{}, failures: map[string]LoginFailures{}}
}

func (m *memStore) UserCount(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.users), nil
}

func (m *memStore) createLocked(u User) (User, error) {
	for _, o := range m.users {
		if strings.EqualFold(o.Name, u.Name) {
			return User{}, fmt.Errorf("user %s: %w", u.Name, ErrExists)
		}
	}
	m.nextUser++
	u.ID = m.nextUser
	m.users[u.ID] = u
	return u, nil
}

func (m *memStore) CreateUser(_ context.Context, u User) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.createLocked(u)
}

func (m *memStore) UserByName(_ context.Context, name string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if strings.EqualFold(u.Name, name) {
			return u, nil
		}
	}
	return User{}, ErrNotFound
}

func (m *memStore) UserByID(_ context.Context, id int64) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (m *memStore) Users(context.Context) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []User
	for _, u := range m.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memStore) UpdateUser(_ context.Context, u User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.users[u.ID]
	if !ok {
		return ErrNotFound
	}
	u.Name, u.CreatedAt = old.Name, old.CreatedAt
	m.users[u.ID] = u
	return nil
}

func (m *memStore) AcceptTOTPStep(_ context.Context, id, step int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[id]
	if u.TOTPLastStep >= step {
		return false, nil
	}
	u.TOTPLastStep = step
	m.users[id] = u
	return true, nil
}

func (m *memStore) SetRecoveryCodes(_ context.Context, id int64, hashes []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[id] = map[string]bool{}
	for _, h := range hashes {
		m.codes[id][h] = false
	}
	return nil
}

func (m *memStore) UseRecoveryCode(_ context.Context, id int64, hash string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	used, ok := m.codes[id][hash]
	if !ok || used {
		return false, nil
	}
	m.codes[id][hash] = true
	return true, nil
}

func (m *memStore) RecoveryCodesLeft(_ context.Context, id int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, used := range m.codes[id] {
		if !used {
			n++
		}
	}
	return n, nil
}

func (m *memStore) RotateSession(_ context.Context, old string, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, old)
	if _, ok := m.sessions[s.IDHash]; ok {
		return ErrExists
	}
	m.sessions[s.IDHash] = s
	return nil
}

func (m *memStore) Session(_ context.Context, h string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[h]
	if !ok {
		return Session{}, ErrNotFound
	}
	return s, nil
}

func (m *memStore) UpdateSession(_ context.Context, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.sessions[s.IDHash]
	if !ok {
		return ErrNotFound
	}
	old.LastSeenAt, old.ReauthAt, old.TOTPPending = s.LastSeenAt, s.ReauthAt, s.TOTPPending
	m.sessions[s.IDHash] = old
	return nil
}

func (m *memStore) DeleteSession(_ context.Context, h string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, h)
	return nil
}

func (m *memStore) DeleteUserSessions(_ context.Context, id int64, except string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for h, s := range m.sessions {
		if s.UserID == id && h != except {
			delete(m.sessions, h)
			n++
		}
	}
	return n, nil
}

func (m *memStore) UserSessions(_ context.Context, id int64) ([]Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Session
	for _, s := range m.sessions {
		if s.UserID == id {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (m *memStore) DeleteExpiredSessions(_ context.Context, now, idleBefore time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for h, s := range m.sessions {
		if !s.ExpiresAt.After(now) || !s.LastSeenAt.After(idleBefore) {
			delete(m.sessions, h)
			n++
		}
	}
	return n, nil
}

func (m *memStore) CreateInvite(_ context.Context, i Invite) (Invite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextInv++
	i.ID = m.nextInv
	m.invites[i.ID] = i
	return i, nil
}

func (m *memStore) InviteByToken(_ context.Context, h string) (Invite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range m.invites {
		if i.TokenHash == h {
			return i, nil
		}
	}
	return Invite{}, ErrNotFound
}

func (m *memStore) Invites(context.Context) ([]Invite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Invite
	for _, i := range m.invites {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Invite) int { return int(b.ID - a.ID) })
	return out, nil
}

func (m *memStore) RevokeInvite(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.invites[id]
	if !ok || !i.UsedAt.IsZero() || !i.RevokedAt.IsZero() {
		return ErrNotFound
	}
	i.RevokedAt = time.Now()
	m.invites[id] = i
	return nil
}

func (m *memStore) AcceptInvite(_ context.Context, h string, now time.Time, u User) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, i := range m.invites {
		if i.TokenHash != h {
			continue
		}
		if i.State(now) != "open" {
			return User{}, ErrNotFound
		}
		out, err := m.createLocked(u)
		if err != nil {
			return User{}, err
		}
		i.UsedAt, i.UsedBy = now, u.Name
		m.invites[id] = i
		return out, nil
	}
	return User{}, ErrNotFound
}

func (m *memStore) RecordLoginFailure(_ context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failures[key]
	if !ok || !f.FirstAt.After(now.Add(-window)) {
		f = LoginFailures{FirstAt: now}
	}
	f.Count++
	f.LastAt = now
	m.failures[key] = f
	return f, nil
}

func (m *memStore) LoginFailures(_ context.Context, key string) (LoginFailures, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures[key], nil
}

func (m *memStore) ClearLoginFailures(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failures, key)
	return nil
}

func (m *memStore) AppendAudit(_ context.Context, e AuditEntry) (AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAudit != nil {
		return AuditEntry{}, m.failAudit
	}
	e.Seq = int64(len(m.audit)) + 1
	if len(m.audit) > 0 {
		e.PrevHash = m.audit[len(m.audit)-1].Hash
	}
	sum := sha256.Sum256([]byte(fmt.Sprint(e.Seq, e.Actor, e.Action, e.Target, e.Outcome, e.Detail, e.PrevHash)))
	e.Hash = hex.EncodeToString(sum[:])
	m.audit = append(m.audit, e)
	return e, nil
}

func (m *memStore) AuditEntries(_ context.Context, q AuditQuery) ([]AuditEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AuditEntry
	for i := len(m.audit) - 1; i >= 0; i-- {
		e := m.audit[i]
		if q.Before > 0 && e.Seq >= q.Before {
			continue
		}
		if t := strings.ToLower(q.Text); t != "" && !strings.Contains(strings.ToLower(e.Actor+" "+e.Action+" "+e.Target+" "+e.Client+" "+e.Detail+" "+e.Outcome), t) {
			continue
		}
		out = append(out, e)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

func (m *memStore) VerifyAudit(context.Context) (AuditCheck, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := AuditCheck{Entries: int64(len(m.audit))}
	if len(m.audit) > 0 {
		last := m.audit[len(m.audit)-1]
		c.HeadSeq, c.HeadHash = last.Seq, last.Hash
	}
	return c, nil
}

// entries returns the audit rows with an action (tests).
func (m *memStore) entries(action string) []AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AuditEntry
	for _, e := range m.audit {
		if action == "" || e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// fakeOps is the supervisor for the handler tests: a status the test sets, scale and
// restart that change it, and logs the test writes.
type fakeOps struct {
	mu        sync.Mutex
	status    Status
	statusErr error
	calls     []string
	logs      string
	follow    chan string // lines a follow stream writes, until closed
	opErr     error
	// unhealthyAfterOp leaves a scaled service unhealthy (the progress waits).
	unhealthyAfterOp bool
	watchers         map[chan struct{}]bool
}

func newFakeOps() *fakeOps {
	started := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	svc := func(name string, n int) Service {
		s := Service{Name: name, Desired: n, Running: n, Healthy: n, State: "running", Health: "healthy", StartedAt: started,
			Image: "corpintel/" + name, CPUPercent: 1.5, MemoryBytes: 64 << 20}
		for i := range n {
			s.Containers = append(s.Containers, Container{Name: fmt.Sprintf("p-%s-%d", name, i+1), ID: strings.Repeat(fmt.Sprint(i+1), 64),
				State: "running", Health: "healthy", StartedAt: started})
		}
		return s
	}
	return &fakeOps{status: Status{Project: "test", Profile: "dev", Supervisor: true, LastReconcile: started,
		Services: []Service{svc("postgres", 1), svc("redis", 1), svc("minio", 1), svc("api", 1)}}, watchers: map[chan struct{}]bool{}}
}

func (f *fakeOps) Status(context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Services = slices.Clone(st.Services)
	return st, f.statusErr
}

func (f *fakeOps) setService(name string, fn func(*Service)) {
	f.mu.Lock()
	for i := range f.status.Services {
		if f.status.Services[i].Name == name {
			fn(&f.status.Services[i])
		}
	}
	chans := make([]chan struct{}, 0, len(f.watchers))
	for ch := range f.watchers {
		chans = append(chans, ch)
	}
	f.mu.Unlock()
	for _, ch := range chans {
		poke(ch)
	}
}

func (f *fakeOps) Scale(_ context.Context, service string, n int) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("scale %s=%d", service, n))
	err := f.opErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.setService(service, func(s *Service) {
		s.Desired, s.Running, s.Healthy = n, n, n
		if f.unhealthyAfterOp {
			s.Healthy = 0
		}
	})
	return nil
}

func (f *fakeOps) Restart(_ context.Context, service string) error {
	f.mu.Lock()
	f.calls = append(f.calls, "restart "+service)
	err := f.opErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.setService(service, func(s *Service) { s.Restarts++ })
	return nil
}

func (f *fakeOps) Logs(ctx context.Context, service string, tail int, follow bool, w io.Writer) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("logs %s tail=%d follow=%t", service, tail, follow))
	logs, lines := f.logs, f.follow
	f.mu.Unlock()
	if !follow {
		_, err := io.WriteString(w, logs)
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if _, err := io.WriteString(w, l); err != nil {
				return err
			}
		}
	}
}

func (f *fakeOps) WatchStatus() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.watchers[ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.watchers, ch)
		f.mu.Unlock()
	}
}

func (f *fakeOps) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
