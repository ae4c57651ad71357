package auth_test

import (
	"context"
	"testing"

	"github.com/corpintel/corpintel/api/auth"
	"github.com/corpintel/corpintel/api/internal/authtest"
	"github.com/corpintel/corpintel/api/rbac"
)

// BenchmarkAuthenticate compares a repeated token (answered from the in-process cache)
// with a token verified from scratch each time (Ed25519 signature + one PostgreSQL query).
func BenchmarkAuthenticate(b *testing.B) {
	s := authtest.NewServer(b)
	s.Listen()
	tok, _ := s.Token(rbac.Viewer)
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		if _, err := s.Auth.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Auth.Authenticate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Auth.Authenticate(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// A replica that does not listen never caches: every call verifies and asks PostgreSQL.
	cold := authtest.NewReplica(b, s.Pool, func(o *auth.Options) {})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cold.Auth.Authenticate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signature-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !cold.Auth.VerifySignatureForBench(tok) {
				b.Fatal("verify failed")
			}
		}
	})
}
