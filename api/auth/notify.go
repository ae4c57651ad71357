package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/corpintel/corpintel/internal/follow"
	"github.com/jackc/pgx/v5"
)

// Channel is the PostgreSQL NOTIFY channel on which replicas tell each other about new
// signing keys and revocations.
const Channel = "corpintel_auth"

// Messages on Channel. Revocations name what to evict from the verified-token caches.
const (
	msgKeys   = "keys"
	msgJTI    = "jti:"
	msgFamily = "family:"
	msgUser   = "user:"
)

// notifyTx queues a notification; PostgreSQL delivers it when (and only if) tx commits.
func notifyTx(ctx context.Context, q querier, msg string) error {
	if _, err := q.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, msg); err != nil {
		return fmt.Errorf("auth: notify %s: %w", msg, err)
	}
	return nil
}

// Listening reports whether this replica currently follows the notifications; only then
// does it trust its verified-token cache.
func (s *Service) Listening() bool { return s.listening.Load() }

// Listen follows Channel until ctx ends, reconnecting with backoff. While it is not
// connected the token cache is off (every token is checked against PostgreSQL), and on
// every (re)connect the cache is emptied and the keys reloaded, since notifications
// sent meanwhile were lost.
func (s *Service) Listen(ctx context.Context) {
	follow.Loop(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
		connected, err := s.listenOnce(ctx)
		s.listening.Store(false)
		s.cache.clear()
		return connected, err
	}, func(err error, retryIn time.Duration) {
		s.log.WarnContext(ctx, "auth notifications interrupted; token cache off until reconnected", "err", err, "retry_in", retryIn)
	})
}

func (s *Service) listenOnce(ctx context.Context) (connected bool, err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire: %w", err)
	}
	// The connection leaves the pool: it is in LISTEN state and must not be reused.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if err := s.reloadKeys(ctx); err != nil {
		return true, err
	}
	s.cache.clear()
	s.listening.Store(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		s.handle(ctx, n.Payload)
	}
}

func (s *Service) handle(ctx context.Context, msg string) {
	switch {
	case msg == msgKeys:
		if err := s.reloadKeys(ctx); err != nil {
			s.log.ErrorContext(ctx, "reload signing keys after notification", "err", err)
		}
	case strings.HasPrefix(msg, msgJTI):
		s.cache.evict(func(e *cacheEntry) bool { return e.p.TokenID == msg[len(msgJTI):] })
	case strings.HasPrefix(msg, msgFamily):
		s.cache.evict(func(e *cacheEntry) bool { return e.sid == msg[len(msgFamily):] })
	case strings.HasPrefix(msg, msgUser):
		s.cache.evict(func(e *cacheEntry) bool { return e.p.UserID == msg[len(msgUser):] })
	default:
		s.cache.clear()
	}
}

// The services of this process, so that a revocation made here (RevokeUser, called by
// the users package inside its transaction) evicts cached tokens at once instead of when
// the NOTIFY comes back. The NOTIFY after commit evicts again, covering a token verified
// between this eviction and the commit.
var local struct {
	mu       sync.Mutex
	services []weak.Pointer[Service]
}

func register(s *Service) {
	local.mu.Lock()
	defer local.mu.Unlock()
	live := local.services[:0]
	for _, w := range local.services {
		if w.Value() != nil {
			live = append(live, w)
		}
	}
	local.services = append(live, weak.Make(s))
}

func evictLocal(ctx context.Context, msg string) {
	local.mu.Lock()
	ws := append([]weak.Pointer[Service](nil), local.services...)
	local.mu.Unlock()
	for _, w := range ws {
		if s := w.Value(); s != nil {
			s.handle(ctx, msg)
		}
	}
}
