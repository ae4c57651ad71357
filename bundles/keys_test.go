package bundles

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Require(t, "openssl", errors.New("openssl is not on PATH (apt-get install openssl)"))
	}
	return path
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput() // #nosec G204 -- test helper
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The release tooling may be openssl or corpintel: both read each other's keys and
// signatures, and install.sh verifies with openssl.
func TestKeysAndSignaturesInteroperateWithOpenSSL(t *testing.T) {
	ossl := requireOpenSSL(t)
	dir := t.TempDir()
	// A key made by openssl signs in Go; openssl verifies the Go signature.
	osslKey := filepath.Join(dir, "openssl.key")
	run(t, ossl, "genpkey", "-algorithm", "ed25519", "-out", osslKey)
	priv, err := ReadPrivateKey(osslKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "openssl.pub")
	run(t, ossl, "pkey", "-in", osslKey, "-pubout", "-out", pubFile)
	pub, err := ReadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("openssl's public key is not the Go key's")
	}
	if b, _ := os.ReadFile(pubFile); !bytes.Equal(b, PublicKeyPEM(pub)) {
		t.Errorf("PublicKeyPEM differs from openssl's:\n%s\n%s", b, PublicKeyPEM(pub))
	}
	msg := filepath.Join(dir, "SHA256SUMS")
	if err := os.WriteFile(msg, []byte(strings.Repeat("0", 64)+"  corpintel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(msg)
	sig := filepath.Join(dir, "SHA256SUMS.sig")
	if err := os.WriteFile(sig, ed25519.Sign(priv, data), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(t, ossl, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin", "-in", msg, "-sigfile", sig); !strings.Contains(out, "Signature Verified Successfully") {
		t.Errorf("openssl verify: %s", out)
	}
	// A signature by openssl verifies in Go.
	osslSig := filepath.Join(dir, "openssl.sig")
	run(t, ossl, "pkeyutl", "-sign", "-inkey", osslKey, "-rawin", "-in", msg, "-out", osslSig)
	s, _ := os.ReadFile(osslSig)
	if !ed25519.Verify(pub, data, s) {
		t.Error("Go does not verify openssl's signature")
	}
	// Keygen writes keys openssl reads; it never overwrites.
	kp, pp, err := Keygen(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, ossl, "pkey", "-in", kp, "-noout")
	run(t, ossl, "pkey", "-pubin", "-in", pp, "-noout")
	if st, _ := os.Stat(kp); st.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v", st.Mode().Perm())
	}
	if _, _, err := Keygen(filepath.Join(dir, "keys")); err == nil {
		t.Error("Keygen overwrote a key")
	}
}

func TestKeyParsingRefusesOtherKeys(t *testing.T) {
	ossl := requireOpenSSL(t)
	dir := t.TempDir()
	ec := filepath.Join(dir, "ec.key")
	run(t, ossl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec)
	ecPub := filepath.Join(dir, "ec.pub")
	run(t, ossl, "pkey", "-in", ec, "-pubout", "-out", ecPub)
	for _, tt := range []struct {
		name string
		err  func() error
		want string
	}{
		{"ec private", func() error { _, err := ReadPrivateKey(ec); return err }, "not an Ed25519 key"},
		{"ec public", func() error { _, err := ReadPublicKey(ecPub); return err }, "not an Ed25519 key"},
		{"public as private", func() error { _, err := ReadPrivateKey(ecPub); return err }, "PRIVATE KEY"},
		{"private as public", func() error { _, err := ReadPublicKey(ec); return err }, "PUBLIC KEY"},
		{"missing", func() error { _, err := ReadPublicKey(filepath.Join(dir, "nope")); return err }, "no such file"},
		{"missing private", func() error { _, err := ReadPrivateKey(filepath.Join(dir, "nope")); return err }, "no such file"},
		{"garbage private", func() error {
			_, err := ParsePrivateKey([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
			return err
		}, "signing key"},
		{"garbage public", func() error {
			_, err := ParsePublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
			return err
		}, "release key"},
	} {
		if err := tt.err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	if Fingerprint(make(ed25519.PublicKey, 32)) == "" || len(Fingerprint(make(ed25519.PublicKey, 32))) != 16 {
		t.Error("fingerprint")
	}
	if b := PrivateKeyPEM(testKey(t)); !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Error("PrivateKeyPEM")
	}
}
