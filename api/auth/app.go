package auth

import (
	"context"

	"github.com/corpintel/corpintel/api/app"
)

// New builds the Service from the API's shared dependencies: the JWT issuer, audience,
// KEK, access-token lifetime, session lifetime (RefreshTTL) and rotation period come
// from d.Config. The caller runs (*Service).Run(ctx) beside the server.
func New(ctx context.Context, d app.Deps) (*Service, error) {
	return NewService(ctx, Options{
		Pool: d.Pool, Log: d.Log, Audit: d.Audit, Now: d.Now, Registerer: d.Reg,
		Issuer: d.Config.JWTIssuer, Audience: d.Config.JWTAudience, KEK: d.Config.KEK,
		AccessTTL: d.Config.AccessTTL, SessionMaxAge: d.Config.RefreshTTL, RotateEvery: d.Config.KeyRotation,
	})
}
