// Package password hashes and verifies user passwords with argon2id — the API's users and
// the console's alike. Hashes are PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash), so
// the parameters travel with each hash and can be raised later without invalidating old
// ones.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// Default follows the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane): about
// 25 ms per hash on one core of the reference machine.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// MaxLen bounds the password length the API accepts (hashing cost is linear in it).
const MaxLen = 1024

// MinLen is the shortest password the API accepts for new or reset passwords.
const MinLen = 12

// ErrMalformed means a stored hash is not a PHC argon2id string this package accepts.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// Hashing is memory-hard; bound the concurrent hashes so a burst of logins cannot
// exhaust memory (each costs Params.Memory).
var slots = make(chan struct{}, max(2, 2*runtime.NumCPU()))

// Hash returns the PHC string of pw under Default.
func Hash(pw []byte) (string, error) { return HashWith(pw, Default) }

// HashWith returns the PHC string of pw under p.
func HashWith(pw []byte, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := derive(pw, salt, p)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func derive(pw, salt []byte, p Params) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// Verify reports whether pw matches the PHC string phc.
func Verify(pw []byte, phc string) (bool, error) {
	p, salt, want, err := parse(phc)
	if err != nil {
		return false, err
	}
	got := derive(pw, salt, p)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummy is hashed once (on first use, under Default) so that logins for unknown
// accounts cost as much as real ones.
var dummy = sync.OnceValue(func() string {
	h, err := Hash([]byte("corpintel-dummy-password-for-timing"))
	if err != nil {
		panic(err)
	}
	return h
})

// VerifyDummy spends the time of one Verify and always reports false: call it when the
// account does not exist so that response times do not reveal which emails are known.
func VerifyDummy(pw []byte) {
	_, _ = Verify(pw, DummyHash())
}

// DummyHash is the hash VerifyDummy checks against, for callers that run Verify through
// their own function (and must still spend a verification on unknown accounts).
func DummyHash() string { return dummy() }

// parse splits a PHC argon2id string, refusing parameters outside sane bounds (a stored
// hash must not be able to make one login allocate gigabytes).
func parse(phc string) (Params, []byte, []byte, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformed
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrMalformed, parts[2])
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Params{}, nil, nil, ErrMalformed
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, nil, nil, ErrMalformed
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, ErrMalformed
			}
			p.Threads = uint8(n)
		default:
			return Params{}, nil, nil, ErrMalformed
		}
	}
	if p.Memory < 8 || p.Memory > 256*1024 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters out of range", ErrMalformed)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return Params{}, nil, nil, ErrMalformed
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Params{}, nil, nil, ErrMalformed
	}
	p.SaltLen, p.KeyLen = len(salt), uint32(len(key))
	return p, salt, key, nil
}
