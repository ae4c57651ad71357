package certs

import (
	"crypto/rand"
	"fmt"
	"time"
)

// ticketKeys is the session ticket key ring. crypto/tls would rotate keys itself (daily,
// valid a week), but a leaked ticket key decrypts every session it ever protected, so the
// edge rotates on its own shorter schedule, on the injected clock: the newest key
// encrypts, the last `keep` keys decrypt.
type ticketKeys struct {
	every   time.Duration
	keep    int
	keys    [][32]byte
	rotated time.Time
}

// rotateIfDue adds a new key when none exists or the newest is `every` old, and reports
// whether the ring changed.
func (t *ticketKeys) rotateIfDue(now time.Time) (bool, error) {
	if len(t.keys) > 0 && now.Sub(t.rotated) < t.every {
		return false, nil
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return false, fmt.Errorf("session ticket key: %w", err)
	}
	t.keys = append([][32]byte{k}, t.keys...)
	if len(t.keys) > t.keep {
		t.keys = t.keys[:t.keep]
	}
	t.rotated = now
	return true, nil
}

// next is when the next rotation is due.
func (t *ticketKeys) next() time.Time { return t.rotated.Add(t.every) }
