package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Key states in auth_signing_keys.
const (
	stateActive  = "active"
	stateVerify  = "verify"
	stateRetired = "retired"
)

// keysLockID is the advisory lock that serializes key creation and rotation across replicas
// (and the one-shot `corpintel api rotate-keys`).
const keysLockID int64 = 0x636f7270_6a776b73 // "corp" "jwks"

// ErrKEK means the key-encryption key is missing or too short.
var ErrKEK = errors.New("auth: the JWT key-encryption key (secret jwt_kek) must be at least 32 bytes")

// aead derives the AES-256-GCM key from the KEK. The KEK file may hold raw bytes, hex or
// base64; HKDF makes any of them a uniform 32-byte key.
func aead(kek []byte) (cipher.AEAD, error) {
	if len(kek) < 32 {
		return nil, ErrKEK
	}
	k, err := hkdf.Key(sha256.New, kek, nil, "corpintel jwt signing key seal v1", 32)
	if err != nil {
		return nil, fmt.Errorf("auth: derive seal key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("auth: seal cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// seal encrypts a private key seed; the kid is the associated data, so a sealed key
// cannot be moved to another row.
func seal(kek []byte, kid string, seed []byte) ([]byte, error) {
	a, err := aead(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("auth: nonce: %w", err)
	}
	return a.Seal(nonce, nonce, seed, []byte(kid)), nil
}

func unseal(kek []byte, kid string, sealed []byte) (ed25519.PrivateKey, error) {
	a, err := aead(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize() {
		return nil, fmt.Errorf("auth: signing key %s: sealed value too short", kid)
	}
	seed, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: cannot decrypt (wrong jwt_kek?): %w", kid, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: signing key %s: bad seed length", kid)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func newKID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// insertKey creates a new active key (the caller has demoted any previous one).
func insertKey(ctx context.Context, tx pgx.Tx, kek []byte, now time.Time) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("auth: generate signing key: %w", err)
	}
	kid := newKID(now)
	sealed, err := seal(kek, kid, priv.Seed())
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO auth_signing_keys (kid, public_key, private_seal, state, created_at)
		VALUES ($1, $2, $3, 'active', $4)`, kid, []byte(pub), sealed, now); err != nil {
		return "", fmt.Errorf("auth: store signing key: %w", err)
	}
	return kid, nil
}

// RotateKeys adds a new active signing key, demotes the previous active key to
// verify-only (it still verifies the tokens it signed) and retires verify-only keys that
// have been demoted for longer than the longest access-token lifetime (MaxAccessTTL)
// plus leeway, when no token they signed can still be valid. Every replica is told through NOTIFY. It is what
// `corpintel api rotate-keys` and the scheduled rotation run.
func RotateKeys(ctx context.Context, pool *pgxpool.Pool, kek []byte, now time.Time) (newKID string, err error) {
	if _, err := aead(kek); err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLockID); err != nil {
			return fmt.Errorf("auth: lock signing keys: %w", err)
		}
		newKID, err = rotateTx(ctx, tx, kek, now)
		return err
	})
	return newKID, err
}

func rotateTx(ctx context.Context, tx pgx.Tx, kek []byte, now time.Time) (string, error) {
	if _, err := tx.Exec(ctx, `UPDATE auth_signing_keys SET state = 'verify', demoted_at = $1 WHERE state = 'active'`, now); err != nil {
		return "", fmt.Errorf("auth: demote active key: %w", err)
	}
	kid, err := insertKey(ctx, tx, kek, now)
	if err != nil {
		return "", err
	}
	if _, err := retireTx(ctx, tx, now); err != nil {
		return "", err
	}
	if err := notifyTx(ctx, tx, msgKeys); err != nil {
		return "", err
	}
	return kid, nil
}

// retireTx retires verify-only keys whose tokens have all expired and wipes their
// private halves.
func retireTx(ctx context.Context, tx pgx.Tx, now time.Time) (int64, error) {
	tag, err := tx.Exec(ctx, `UPDATE auth_signing_keys SET state = 'retired', retired_at = $1, private_seal = NULL
		WHERE state = 'verify' AND demoted_at < $2`, now, now.Add(-(MaxAccessTTL + Leeway)))
	if err != nil {
		return 0, fmt.Errorf("auth: retire signing keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ensureKey creates the first signing key when there is none (first start), under the
// advisory lock so that concurrent replicas create exactly one.
func ensureKey(ctx context.Context, pool *pgxpool.Pool, kek []byte, now time.Time) error {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM auth_signing_keys WHERE state = 'active'`).Scan(&n); err != nil {
		return fmt.Errorf("auth: count signing keys: %w", err)
	}
	if n > 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLockID); err != nil {
			return fmt.Errorf("auth: lock signing keys: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM auth_signing_keys WHERE state = 'active'`).Scan(&n); err != nil {
			return fmt.Errorf("auth: count signing keys: %w", err)
		}
		if n > 0 {
			return nil
		}
		if _, err := insertKey(ctx, tx, kek, now); err != nil {
			return err
		}
		return notifyTx(ctx, tx, msgKeys)
	})
}

// keyring is the set of keys one replica uses: the active signer and every non-retired
// public key.
type keyring struct {
	activeKID string
	signer    ed25519.PrivateKey
	public    map[string]ed25519.PublicKey
	order     []string // newest first, for the JWKS document
}

func loadKeyring(ctx context.Context, q querier, kek []byte) (*keyring, error) {
	rows, err := q.Query(ctx, `SELECT kid, public_key, private_seal, state FROM auth_signing_keys
		WHERE state <> 'retired' ORDER BY created_at DESC, kid`)
	if err != nil {
		return nil, fmt.Errorf("auth: load signing keys: %w", err)
	}
	defer rows.Close()
	kr := &keyring{public: map[string]ed25519.PublicKey{}}
	for rows.Next() {
		var kid, state string
		var pub, sealed []byte
		if err := rows.Scan(&kid, &pub, &sealed, &state); err != nil {
			return nil, fmt.Errorf("auth: load signing keys: %w", err)
		}
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: signing key %s: bad public key", kid)
		}
		kr.public[kid] = ed25519.PublicKey(pub)
		kr.order = append(kr.order, kid)
		if state == stateActive {
			priv, err := unseal(kek, kid, sealed)
			if err != nil {
				return nil, err
			}
			kr.activeKID, kr.signer = kid, priv
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: load signing keys: %w", err)
	}
	if kr.signer == nil {
		return nil, errors.New("auth: no active signing key (run `corpintel api rotate-keys`)")
	}
	return kr, nil
}
