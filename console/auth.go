package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/corpintel/corpintel/internal/password"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Throttling of failed logins (password, second factor and re-authentication alike):
// per account 5 failures and per client address 20 within the window lock that key
// until the window (counted from the first failure) ends. Both are kept in the store,
// so a restart of the supervisor does not reset them.
const (
	throttleWindow = 15 * time.Minute
	accountLimit   = 5
	clientLimit    = 20
)

func accountKey(name string) string { return "user:" + strings.ToLower(strings.TrimSpace(name)) }

// clientKey is a client address as the throttle counts it: IPv6 per /64 (one
// customer's network), IPv4 per address.
func clientKey(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return "client:" + p.String()
	}
	return "client:" + a.Unmap().String()
}

// lockout says whether logins of name or from the client are locked, and the message.
func (c *Console) lockout(ctx context.Context, name string, client netip.Addr) (string, error) {
	now := c.now()
	check := func(key string, limit int, who string) (string, error) {
		f, err := c.opts.Store.LoginFailures(ctx, key)
		if err != nil {
			return "", err
		}
		until := f.FirstAt.Add(throttleWindow)
		if f.Count >= limit && now.Before(until) {
			mins := int(math.Ceil(until.Sub(now).Minutes()))
			return fmt.Sprintf("Too many failed logins %s. Try again in %d minute%s.", who, mins, plural(mins)), nil
		}
		return "", nil
	}
	if msg, err := check(clientKey(client), clientLimit, "from your address ("+client.String()+")"); msg != "" || err != nil {
		return msg, err
	}
	msg, err := check(accountKey(name), accountLimit, "for this account")
	if msg != "" {
		msg += " An admin can let you in sooner: `corpintel console reset-password " + safeName(name) + "` on the host."
	}
	return msg, err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// safeName is a name fit to appear in a message (the template escapes it anyway).
func safeName(name string) string {
	if !validUserName(name) {
		return "USER"
	}
	return name
}

// recordFailure counts a failed attempt against the account and the client.
func (c *Console) recordFailure(ctx context.Context, name string, client netip.Addr) {
	now := c.now()
	for _, key := range []string{accountKey(name), clientKey(client)} {
		if _, err := c.opts.Store.RecordLoginFailure(ctx, key, now, throttleWindow); err != nil {
			c.log.Error("console: record failed login", "err", err)
		}
	}
}

// HashParams are the console's argon2id parameters: OWASP's 7 MiB × 5 passes, which
// costs about what the API's 19 MiB × 2 does in time but a third of the memory — the
// supervisor is meant to stay small, and hashes run up to 2 per core at once.
var HashParams = password.Params{Memory: 7 * 1024, Time: 5, Threads: 1, SaltLen: 16, KeyLen: 32}

func (c *Console) hashParams() password.Params { return paramsOr(c.opts.Hash) }

func paramsOr(p *password.Params) password.Params {
	if p != nil {
		return *p
	}
	return HashParams
}

// dummyHash is verified for unknown users, so that a login costs the same whether the
// name exists or not.
var dummyHash = sync.OnceValue(func() string {
	h, err := password.HashWith([]byte("corpintel-console-dummy"), HashParams)
	if err != nil {
		panic(err)
	}
	return h
})

func (c *Console) hashPassword(pw string) (string, error) {
	return password.HashWith([]byte(pw), c.hashParams())
}

// checkPassword verifies pw against u (an unknown user costs the same time).
func checkPassword(u *User, pw string) bool {
	if len(pw) > password.MaxLen {
		return false
	}
	if u == nil {
		_, _ = password.Verify([]byte(pw), dummyHash())
		return false
	}
	ok, err := password.Verify([]byte(pw), u.PasswordHash)
	return err == nil && ok
}

// validatePassword is the policy for new passwords.
func validatePassword(pw, confirm, name string) error {
	switch n := utf8.RuneCountInString(pw); {
	case n < password.MinLen:
		return invalid("The new password must have at least %d characters (it has %d). A few unrelated words make a good one.", password.MinLen, n)
	case len(pw) > password.MaxLen:
		return invalid("The new password is longer than %d bytes.", password.MaxLen)
	case pw != confirm:
		return invalid("The two new passwords differ.")
	case strings.EqualFold(pw, name):
		return invalid("The password must not be the user name.")
	}
	return nil
}

// validUserName allows what is safe in a URL, a shell command and a log line.
func validUserName(name string) bool {
	if len(name) < 2 || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '@') {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return len(s) <= 254 && at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n<>\"'(),;:\\[]") && strings.Contains(s[at:], ".")
}

// GeneratePassword returns a random password of 100 bits in five groups of four
// letters and digits, easy to type from a terminal (no 0/O, 1/l).
func GeneratePassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	var b [20]byte
	_, _ = rand.Read(b[:])
	var sb strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(x)%len(alphabet)])
	}
	return sb.String()
}

// TOTP: 6 digits, 30 s, SHA-1 — what every authenticator app does.
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep checks a code against secret at now (one step of clock skew either way)
// and returns the time step it belongs to, so the caller can refuse its reuse.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
	if len(code) != 6 {
		return 0, false
	}
	for _, off := range []int64{0, -1, 1} {
		t := now.Add(time.Duration(off) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return t.Unix() / 30, true
		}
	}
	return 0, false
}

// newTOTPKey makes a TOTP seed for a user and its otpauth URL.
func (c *Console) newTOTPKey(name string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: "corpintel " + c.opts.Project, AccountName: name, Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// qrDataURL draws the otpauth URL as a PNG data: URL (the CSP allows data: images).
func qrDataURL(key *otp.Key) (template.URL, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	// #nosec G203 -- a PNG we drew ourselves, base64-encoded
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// Recovery codes: ten one-time codes of 50 bits ("abcde-fghij").
const recoveryCodes = 10

func newRecoveryCodes() (codes, hashes []string) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for range recoveryCodes {
		var b [7]byte
		_, _ = rand.Read(b[:])
		s := strings.ToLower(enc.EncodeToString(b[:]))[:10]
		code := s[:5] + "-" + s[5:]
		codes = append(codes, code)
		hashes = append(hashes, recoveryHash(code))
	}
	return codes, hashes
}

func recoveryHash(code string) string {
	norm := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
	sum := sha256.Sum256([]byte("corpintel-recovery:" + norm))
	return hex.EncodeToString(sum[:])
}

// errReauth is a failed re-authentication (the form shows it).
var errReauth = errors.New("re-authentication failed")

// reauthenticate makes sure the user typed the password (and a TOTP code, with TOTP on)
// within the last few minutes before a destructive action: it checks the form's
// "password" and "code" fields when the last time is too long ago. Failures count
// towards the login throttle.
func (c *Console) reauthenticate(ctx context.Context, r *http.Request, rq *request) error {
	now := c.now()
	if now.Sub(rq.session.ReauthAt) < reauthWindow && r.PostFormValue("password") == "" {
		return nil
	}
	if msg, err := c.lockout(ctx, rq.user.Name, rq.client); err != nil || msg != "" {
		if err != nil {
			return err
		}
		return invalid("%s", msg)
	}
	ok := checkPassword(rq.user, r.PostFormValue("password"))
	if ok && rq.user.TOTPEnabled() {
		step, good := totpStep(rq.user.TOTPSecret, r.PostFormValue("code"), now)
		ok = good
		if good {
			fresh, err := c.opts.Store.AcceptTOTPStep(ctx, rq.user.ID, step)
			if err != nil {
				return err
			}
			ok = fresh
			rq.user.TOTPLastStep = step
		}
	}
	if !ok {
		c.recordFailure(ctx, rq.user.Name, rq.client)
		c.auditAs(ctx, rq, rq.user.Name, rq.user.Role, "reauth", "failure", rq.route.Path, "")
		what := "password"
		if rq.user.TOTPEnabled() {
			what = "password or authenticator code"
		}
		return fmt.Errorf("%w: %w", errReauth, invalid("This needs your %s again, and what you typed was wrong.", what))
	}
	rq.session.ReauthAt = now
	if err := c.opts.Store.UpdateSession(ctx, *rq.session); err != nil {
		return err
	}
	return nil
}

// needsReauth reports whether the session's last password entry is too old for a
// destructive action (the confirmation page then asks for it).
func (c *Console) needsReauth(rq *request) bool {
	return rq.session == nil || c.now().Sub(rq.session.ReauthAt) >= reauthWindow
}
