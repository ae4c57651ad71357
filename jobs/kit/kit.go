// Package kit holds the pieces of the recovery kit that travels inside every backup so a
// dead machine can be rebuilt from the backup alone: age identities and encryption
// (filippo.io/age), a consistent copy of the supervisor's SQLite state store, and a tar
// of the secrets directory that is written only from regular files and read back only
// into the directory it is meant for.
//
// The operator holds the identity; the machine needs only the recipient (the public
// part) to make backups. A copy of the identity may stay on the machine so restore
// drills can decrypt (a trade-off the docs spell out): whoever can read that copy can
// read the secrets in every backup.
package kit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
)

// maxIdentityFile bounds what LoadIdentities reads.
const maxIdentityFile = 64 << 10

// GenerateIdentity creates a new X25519 identity and writes it to path (mode 0600, in the
// format of age-keygen, so the age CLI can use it too). It refuses to overwrite an
// existing file: losing the old identity makes every backup's secrets unreadable.
// It returns the recipient (public part).
func GenerateIdentity(path string, now time.Time) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("kit: generate identity: %w", err)
	}
	body := fmt.Sprintf("# created: %s\n# public key: %s\n# corpintel recovery-kit identity: keep a copy away from this machine.\n%s\n",
		now.UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("kit: create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("kit: %s already exists; refusing to replace an identity (backups made for it would become unreadable): move it away first", path)
	}
	if err != nil {
		return "", fmt.Errorf("kit: create %s: %w", path, err)
	}
	_, err = f.WriteString(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("kit: write %s: %w", path, err)
	}
	return id.Recipient().String(), nil
}

// Instructions is what the operator is shown once, when the identity is created.
func Instructions(recipient, identityPath string) string {
	return fmt.Sprintf(`A recovery-kit identity was created: %s
Its public part (the recipient every backup is encrypted to) is:
  %s
Store a copy of the identity file away from this machine (password manager, offline
media): it is the only key to the secrets inside the backups. Without it a backup can
restore data on this machine but cannot rebuild a new one.
Print the public part again with: corpintel backup kit-key
`, identityPath, recipient)
}

// LoadIdentities reads an identity file (age-keygen format; comments allowed).
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kit: open identity: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, fmt.Errorf("kit: read identity %s: %w", path, err)
	}
	if len(b) > maxIdentityFile {
		return nil, fmt.Errorf("kit: %s is larger than %d bytes: not an identity file", path, maxIdentityFile)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("kit: %s is not an age identity file: %w", path, err)
	}
	return ids, nil
}

// PublicKey returns the recipient of the identity in path: what `corpintel backup
// kit-key` prints. It never prints or returns the secret part.
func PublicKey(path string) (string, error) {
	ids, err := LoadIdentities(path)
	if err != nil {
		return "", err
	}
	var out []string
	for _, id := range ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			out = append(out, id.Recipient().String())
		case *age.HybridIdentity:
			out = append(out, id.Recipient().String())
		default:
			return "", fmt.Errorf("kit: %s holds an identity of type %T, which has no printable public part", path, id)
		}
	}
	return strings.Join(out, "\n"), nil
}

// ParseRecipient parses the recipient from the config (an "age1…" public key).
func ParseRecipient(s string) (age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(strings.TrimSpace(s)))
	if err != nil {
		return nil, fmt.Errorf("kit: recipient %q is not an age public key (age1…): %w", s, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("kit: want exactly one recipient, got %d", len(rs))
	}
	return rs[0], nil
}

// Encrypt returns a writer that encrypts to r and writes to w; Close finishes the
// stream (without it the ciphertext is truncated and refused by Decrypt).
func Encrypt(w io.Writer, r age.Recipient) (io.WriteCloser, error) {
	if r == nil {
		return nil, errors.New("kit: no recipient to encrypt to: set the kit recipient (age1…)")
	}
	wc, err := age.Encrypt(w, r)
	if err != nil {
		return nil, fmt.Errorf("kit: start encryption: %w", err)
	}
	return wc, nil
}

// Decrypt returns a reader of the plaintext of an age stream; a truncated or altered
// stream makes Read fail.
func Decrypt(r io.Reader, ids ...age.Identity) (io.Reader, error) {
	if len(ids) == 0 {
		return nil, errors.New("kit: encrypted, and no identity given: pass the recovery-kit identity file")
	}
	pr, err := age.Decrypt(r, ids...)
	if err != nil {
		return nil, fmt.Errorf("kit: decrypt: %w", err)
	}
	return pr, nil
}
