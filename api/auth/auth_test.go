package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
	"github.com/golang-jwt/jwt/v5"
)

const (
	login   = "/api/v1/auth/login"
	refresh = "/api/v1/auth/refresh"
	logout  = "/api/v1/auth/logout"
	me      = "/api/v1/auth/me"
	jwks    = "/api/v1/auth/jwks.json"
)

func TestLoginRefreshLogout(t *testing.T) {
	s := authtest.NewServer(t)
	u := s.CreateUser(rbac.Analyst)

	tr := s.Login(u)
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 900 || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("token response %+v", tr)
	}
	r := s.Do(http.MethodGet, me, tr.AccessToken, nil)
	if r.Code != http.StatusOK || !strings.Contains(string(r.Body), u.Email) {
		t.Fatalf("me: %d %s", r.Code, r.Body)
	}
	// Token claims: header kid, EdDSA, claims set.
	parts := strings.Split(tr.AccessToken, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	_ = json.Unmarshal(hdr, &h)
	if h["alg"] != "EdDSA" || h["kid"] != s.Auth.ActiveKID() {
		t.Fatalf("header %v", h)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	for _, k := range []string{"sub", "role", "jti", "iss", "aud", "exp", "nbf", "iat", "sid"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing from %v", k, claims)
		}
	}
	if claims["sub"] != u.ID || claims["role"] != "analyst" {
		t.Errorf("claims %v", claims)
	}

	// Refresh issues a new pair; the new access token works.
	r = s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken})
	if r.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Code, r.Body)
	}
	var tr2 auth.TokenResponse
	r.JSON(t, &tr2)
	if tr2.RefreshToken == tr.RefreshToken || tr2.AccessToken == tr.AccessToken {
		t.Fatal("refresh returned the same tokens")
	}
	if r := s.Do(http.MethodGet, me, tr2.AccessToken, nil); r.Code != http.StatusOK {
		t.Fatalf("me with refreshed token: %d", r.Code)
	}
	if ev := s.Audit.Find("auth.refresh"); len(ev) != 1 || ev[0].Outcome != "success" || ev[0].ActorID != u.ID {
		t.Fatalf("refresh audit %+v", ev)
	}

	// Logout revokes the access token and its session (refresh token too).
	if r := s.Do(http.MethodPost, logout, tr2.AccessToken, nil); r.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Code, r.Body)
	}
	if r := s.Do(http.MethodGet, me, tr2.AccessToken, nil); r.Code != http.StatusUnauthorized {
		t.Fatalf("me after logout: %d", r.Code)
	}
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr2.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d", r.Code)
	}
	if ev := s.Audit.Find("auth.logout"); len(ev) != 1 || ev[0].ActorID != u.ID || ev[0].Outcome != "success" {
		t.Fatalf("logout audit %+v", ev)
	}
	ev := s.Audit.Find("auth.login")
	if len(ev) != 1 || ev[0].ActorID != u.ID || ev[0].Detail["email"] != u.Email || ev[0].Kind != "security" {
		t.Fatalf("login audit %+v", ev)
	}
	for _, e := range s.Audit.Events() {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), u.Password) || strings.Contains(string(b), tr.RefreshToken) || strings.Contains(string(b), tr.AccessToken) {
			t.Fatalf("audit event leaks a secret: %s", b)
		}
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	s := authtest.NewServer(t)
	s.Listen()
	u := s.CreateUser(rbac.Viewer)
	tr := s.Login(u)
	r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken})
	var tr2 auth.TokenResponse
	r.JSON(t, &tr2)
	if r := s.Do(http.MethodGet, me, tr2.AccessToken, nil); r.Code != http.StatusOK {
		t.Fatalf("me: %d", r.Code)
	}
	// Someone replays the first (spent) refresh token: the whole family dies.
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("reuse: %d %s", r.Code, r.Body)
	}
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr2.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("refresh of the family after reuse: %d", r.Code)
	}
	for _, tok := range []string{tr.AccessToken, tr2.AccessToken} {
		if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusUnauthorized {
			t.Fatalf("access token of a revoked family: %d", r.Code)
		}
	}
	ev := s.Audit.Find("auth.refresh_reuse")
	if len(ev) != 1 || ev[0].Kind != "security" || ev[0].ActorID != u.ID {
		t.Fatalf("reuse audit %+v", ev)
	}
	// Replaying again is still refused (and not recorded twice as a fresh revocation).
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("second reuse: %d", r.Code)
	}
	// Another session of the same user is untouched.
	tr3 := s.Login(u)
	if r := s.Do(http.MethodGet, me, tr3.AccessToken, nil); r.Code != http.StatusOK {
		t.Fatalf("other session: %d", r.Code)
	}
}

func TestRefreshRejects(t *testing.T) {
	s := authtest.NewServer(t, func(o *auth.Options) { o.SessionMaxAge = 2 * time.Hour })
	u := s.CreateUser(rbac.Viewer)
	tr := s.Login(u)
	var unknown [32]byte
	for name, body := range map[string]string{
		"unknown":   `{"refresh_token":"` + base64.RawURLEncoding.EncodeToString(unknown[:]) + `"}`,
		"malformed": `{"refresh_token":"not-a-token"}`,
		"empty":     `{"refresh_token":""}`,
	} {
		if r := s.Do(http.MethodPost, refresh, "", body); r.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
	for name, body := range map[string]string{"unknown field": `{"refresh_token":"x","y":1}`, "syntax": `{`} {
		if r := s.Do(http.MethodPost, refresh, "", body); r.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
	// The session ends at SessionMaxAge even if refreshed all along.
	s.Clock.Advance(2*time.Hour + time.Second)
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("refresh after session end: %d", r.Code)
	}
	// A deactivated user's refresh token dies with their sessions.
	s.Clock.Set(time.Now())
	tr = s.Login(u)
	if _, err := s.Pool.Exec(context.Background(), `UPDATE users SET active = false WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if r := s.Do(http.MethodPost, refresh, "", map[string]string{"refresh_token": tr.RefreshToken}); r.Code != http.StatusUnauthorized {
		t.Fatalf("refresh of deactivated user: %d", r.Code)
	}
}

func TestLoginFailuresAndThrottle(t *testing.T) {
	s := authtest.NewServer(t)
	u := s.CreateUser(rbac.Viewer)
	ip := []string{"X-Real-IP", "198.51.100.7"}
	loginAs := func(email, pw string, hdr ...string) *authtest.Resp {
		return s.Do(http.MethodPost, login, "", map[string]string{"email": email, "password": pw}, hdr...)
	}
	// Wrong password, unknown email, SQL injection as email, different case: all just data.
	for _, email := range []string{u.Email, "nobody@example.com", "' OR '1'='1' --", "x@example.com'; DROP TABLE users; --"} {
		if r := loginAs(email, "wrong password!", "X-Real-IP", "203.0.113.9"); r.Code != http.StatusUnauthorized {
			t.Fatalf("login %q: %d %s", email, r.Code, r.Body)
		}
	}
	if r := loginAs(strings.ToUpper(u.Email), u.Password, ip...); r.Code != http.StatusOK {
		t.Fatalf("login with upper-case email: %d %s", r.Code, r.Body)
	}
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("users table after injection attempts: %d %v", n, err)
	}

	// Five failures lock the account for the window, even with the right password.
	for i := range 5 {
		if r := loginAs(u.Email, "wrong password!", ip...); r.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.Code)
		}
	}
	r := loginAs(u.Email, u.Password, ip...)
	if r.Code != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled login: %d %v %s", r.Code, r.Header, r.Body)
	}
	if ev := s.Audit.Find("auth.login"); ev[len(ev)-1].Outcome != "failure" || ev[len(ev)-1].Detail["throttled"] != true {
		t.Fatalf("throttle audit %+v", ev[len(ev)-1])
	}
	// After the window it works again, and success clears the account's count.
	s.Clock.Advance(15*time.Minute + time.Second)
	if r := loginAs(u.Email, u.Password, ip...); r.Code != http.StatusOK {
		t.Fatalf("login after window: %d %s", r.Code, r.Body)
	}

	// Twenty failures from one IP throttle that IP for every account.
	ip2 := []string{"X-Real-IP", "198.51.100.8"}
	for i := range 20 {
		if r := loginAs("spray"+string(rune('a'+i))+"@example.com", "wrong password!", ip2...); r.Code != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d", i, r.Code)
		}
	}
	if r := loginAs(u.Email, u.Password, ip2...); r.Code != http.StatusTooManyRequests {
		t.Fatalf("login from throttled IP: %d", r.Code)
	}
	if r := loginAs(u.Email, u.Password, ip...); r.Code != http.StatusOK {
		t.Fatalf("login from another IP: %d", r.Code)
	}
}

func TestLoginValidation(t *testing.T) {
	s := authtest.NewServer(t)
	for name, c := range map[string]struct {
		body string
		code int
	}{
		"empty body":    {``, 400},
		"not json":      {`email=a`, 400},
		"unknown field": {`{"email":"a@b.c","password":"x","admin":true}`, 400},
		"missing":       {`{}`, 422},
		"long password": {`{"email":"a@b.c","password":"` + strings.Repeat("x", 1025) + `"}`, 422},
		"wrong types":   {`{"email":1,"password":"x"}`, 422},
		"huge body":     {`{"email":"` + strings.Repeat("a", 9000) + `","password":"x"}`, 413},
	} {
		if r := s.Do(http.MethodPost, login, "", c.body); r.Code != c.code {
			t.Errorf("%s: %d, want %d (%s)", name, r.Code, c.code, r.Body)
		}
	}
	// A deactivated user cannot log in, with the same answer as a wrong password.
	u := s.CreateUser(rbac.Viewer)
	if _, err := s.Pool.Exec(context.Background(), `UPDATE users SET active = false WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	r := s.Do(http.MethodPost, login, "", map[string]string{"email": u.Email, "password": u.Password})
	if r.Code != http.StatusUnauthorized || !strings.Contains(string(r.Body), "invalid email or password") {
		t.Fatalf("deactivated login: %d %s", r.Code, r.Body)
	}
}

// forge builds tokens for the attack suite.
func TestAttackSuite(t *testing.T) {
	s := authtest.NewServer(t)
	tok, u := s.Token(rbac.Admin)
	if r := s.Do(http.MethodGet, me, tok, nil); r.Code != http.StatusOK {
		t.Fatalf("baseline: %d", r.Code)
	}
	// Take sid and jti from a genuine token so forged tokens differ only in the attack.
	var genuine auth.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &genuine); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mod func(*auth.Claims)) *auth.Claims {
		c := genuine
		c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(now), jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(10*time.Minute))
		if mod != nil {
			mod(&c)
		}
		return &c
	}
	if r := s.Do(http.MethodGet, me, s.Auth.SignWithActiveKey(claims(nil), nil), nil); r.Code != http.StatusOK {
		t.Fatalf("forging helper does not make valid tokens: %d %s", r.Code, r.Body)
	}

	var ks auth.JWKS
	s.Do(http.MethodGet, jwks, "", nil).JSON(t, &ks)
	pub, _ := base64.RawURLEncoding.DecodeString(ks.Keys[0].X)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	sign := func(m jwt.SigningMethod, key any, c jwt.Claims, kid string) string {
		tk := jwt.NewWithClaims(m, c)
		if kid != "" {
			tk.Header["kid"] = kid
		}
		out, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	parts := strings.Split(tok, ".")
	tamperedClaims := claims(func(c *auth.Claims) { c.Role = "admin"; c.Subject = u.ID })
	tj, _ := json.Marshal(tamperedClaims)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + s.Auth.ActiveKID() + `"}`))

	attacks := map[string]string{
		"alg none":           noneHeader + "." + base64.RawURLEncoding.EncodeToString(tj) + ".",
		"alg none (unsafe)":  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), s.Auth.ActiveKID()),
		"HS256 with pub key": sign(jwt.SigningMethodHS256, pub, claims(nil), s.Auth.ActiveKID()),
		"expired": s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
			c.IssuedAt = jwt.NewNumericDate(now.Add(-10 * time.Minute))
			c.NotBefore = c.IssuedAt
		}), nil),
		"no exp":            s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.ExpiresAt = nil }), nil),
		"not yet valid":     s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) }), nil),
		"issued in future":  s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute)) }), nil),
		"lifetime too long": s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(24 * time.Hour)) }), nil),
		"wrong aud":         s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} }), nil),
		"wrong iss":         s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Issuer = "evil" }), nil),
		"unknown kid":       s.Auth.SignWithActiveKey(claims(nil), map[string]any{"kid": "no-such-key"}),
		"no kid":            s.Auth.SignWithActiveKey(claims(nil), map[string]any{"kid": nil}),
		"other key":         sign(jwt.SigningMethodEdDSA, otherKey, claims(nil), s.Auth.ActiveKID()),
		"tampered payload":  parts[0] + "." + base64.RawURLEncoding.EncodeToString(tj) + "." + parts[2],
		"role escalation":   s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Role = "viewer" }), nil), // role differs from the user's
		"invalid role":      s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Role = "root" }), nil),
		"unknown user":      s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Subject = "00000000-0000-4000-8000-000000000000" }), nil),
		"non-uuid sub":      s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.Subject = "' OR 1=1 --" }), nil),
		"foreign session":   s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.SID = "00000000-0000-4000-8000-000000000000" }), nil),
		"no sid":            s.Auth.SignWithActiveKey(claims(func(c *auth.Claims) { c.SID = "" }), nil),
		"garbage":           "garbage",
		"three dots":        "a.b.c",
		"empty":             "",
		"spaces":            "   ",
	}
	for name, bad := range attacks {
		t.Run(name, func(t *testing.T) {
			r := s.Do(http.MethodGet, me, bad, nil)
			if r.Code != http.StatusUnauthorized {
				t.Fatalf("%d %s", r.Code, r.Body)
			}
			if r.Header.Get("WWW-Authenticate") == "" || !strings.Contains(r.Header.Get("Content-Type"), "problem+json") {
				t.Fatalf("headers %v", r.Header)
			}
		})
	}
	// Other schemes than Bearer.
	for _, h := range []string{"Basic dXNlcjpwYXNz", "bearer " + tok, "Token " + tok} {
		if r := s.Do(http.MethodGet, me, "", nil, "Authorization", h); r.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d", h[:8], r.Code)
		}
	}
}

func TestRBACOnUserRoutes(t *testing.T) {
	s := authtest.NewServer(t)
	viewer, _ := s.Token(rbac.Viewer)
	analyst, _ := s.Token(rbac.Analyst)
	admin, _ := s.Token(rbac.Admin)
	newUser := map[string]string{"email": "new@example.com", "name": "New", "role": "viewer", "password": "a long password!"}
	for name, c := range map[string]struct {
		tok, method, path string
		body              any
		want              int
	}{
		"viewer creates user":   {viewer, http.MethodPost, "/api/v1/users", newUser, 403},
		"analyst creates user":  {analyst, http.MethodPost, "/api/v1/users", newUser, 403},
		"analyst lists users":   {analyst, http.MethodGet, "/api/v1/users", nil, 403},
		"viewer deletes user":   {viewer, http.MethodDelete, "/api/v1/users/00000000-0000-4000-8000-000000000000", nil, 403},
		"anonymous lists users": {"", http.MethodGet, "/api/v1/users", nil, 401},
		"viewer reads me":       {viewer, http.MethodGet, me, nil, 200},
		"admin lists users":     {admin, http.MethodGet, "/api/v1/users", nil, 200},
	} {
		if r := s.Do(c.method, c.path, c.tok, c.body); r.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", name, r.Code, c.want, r.Body)
		}
	}
	if ev := s.Audit.Find("user.create"); len(ev) != 2 || ev[0].Outcome != "denied" {
		t.Fatalf("denied writes must be audited: %+v", ev)
	}
}

func TestJWKS(t *testing.T) {
	s := authtest.NewServer(t)
	r := s.Do(http.MethodGet, jwks, "", nil)
	var ks auth.JWKS
	r.JSON(t, &ks)
	if r.Code != 200 || len(ks.Keys) != 1 || ks.Keys[0].Kid != s.Auth.ActiveKID() || ks.Keys[0].Kty != "OKP" || ks.Keys[0].Crv != "Ed25519" {
		t.Fatalf("jwks %d %+v", r.Code, ks)
	}
	if !strings.Contains(r.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("jwks cache header %q", r.Header.Get("Cache-Control"))
	}
	// The published key verifies our tokens (what an external verifier does).
	tok, _ := s.Token(rbac.Viewer)
	pub, _ := base64.RawURLEncoding.DecodeString(ks.Keys[0].X)
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return ed25519.PublicKey(pub), nil }, jwt.WithValidMethods([]string{"EdDSA"})); err != nil {
		t.Fatalf("JWKS key does not verify a token: %v", err)
	}
}
