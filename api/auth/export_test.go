package auth

import "github.com/golang-jwt/jwt/v5"

// SignWithActiveKey signs arbitrary claims with the replica's active key (for forging
// tokens in the attack suite).
func (s *Service) SignWithActiveKey(c jwt.Claims, header map[string]any) string {
	kr := s.keys.Load()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kr.activeKID
	for k, v := range header {
		t.Header[k] = v
	}
	tok, err := t.SignedString(kr.signer)
	if err != nil {
		panic(err)
	}
	return tok
}

// ActiveKID is the kid the replica signs with.
func (s *Service) ActiveKID() string { return s.keys.Load().activeKID }

// CacheLen is the number of cached verified tokens.
func (s *Service) CacheLen() int { return s.cache.len() }

// VerifySignatureForBench parses and verifies a token without the database check.
func (s *Service) VerifySignatureForBench(tok string) bool {
	_, err := s.parse(tok, s.keys.Load())
	return err == nil
}

// OnVerify makes the replica call hook before every argon2 verification a login runs
// (real and dummy), with the presented password. Call it before the replica serves.
func (s *Service) OnVerify(hook func(pw []byte)) {
	inner := s.verify
	s.verify = func(pw []byte, phc string) (bool, error) {
		hook(pw)
		return inner(pw, phc)
	}
}
