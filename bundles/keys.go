package bundles

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultPublicKeyFile is where the installer keeps the release public key it pinned,
// so that the installed binary verifies the next bundle (upgrades) with the same key.
const DefaultPublicKeyFile = "/etc/corpintel/release.pub"

// ParsePrivateKey reads an Ed25519 private key in PKCS #8 PEM ("PRIVATE KEY", what
// `openssl genpkey -algorithm ed25519` writes).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("signing key: not a PEM \"PRIVATE KEY\" (make one with `openssl genpkey -algorithm ed25519` or `corpintel bundle keygen`)")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: a %T, not an Ed25519 key", k)
	}
	return priv, nil
}

// ParsePublicKey reads an Ed25519 public key in SPKI PEM ("PUBLIC KEY").
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("release key: not a PEM \"PUBLIC KEY\" (`openssl pkey -pubout` of the signing key)")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("release key: a %T, not an Ed25519 key", k)
	}
	return pub, nil
}

// PublicKeyPEM encodes a public key as SPKI PEM (what openssl and install.sh read).
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an Ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PrivateKeyPEM encodes a private key as PKCS #8 PEM.
func PrivateKeyPEM(priv ed25519.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(priv) // cannot fail for an Ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ReadPublicKey reads a public key file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the key
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// ReadPrivateKey reads a signing key file.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the key
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// Keygen writes a new key pair into dir: signing.key (0600; keep it off the build
// machine's repository) and signing.pub. Existing files are never overwritten.
func Keygen(dir string) (privPath, pubPath string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	privPath, pubPath = filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{privPath, PrivateKeyPEM(priv), 0o600}, {pubPath, PublicKeyPEM(pub), 0o644}} {
		f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, w.mode) // #nosec G304 -- our own output path
		if err != nil {
			return "", "", fmt.Errorf("keygen: %w", err)
		}
		_, werr := f.Write(w.data)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return "", "", fmt.Errorf("keygen: write %s: %w", w.path, err)
		}
	}
	return privPath, pubPath, nil
}
