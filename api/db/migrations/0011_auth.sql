-- Authentication state. All of it is authoritative here (never only in Redis, which may
-- evict): signing keys, refresh-token families, revoked access tokens, login failures.

-- JWT signing keys (Ed25519). The private key is sealed with AES-256-GCM under the KEK
-- (secret file jwt_kek), with the kid as associated data. One key is active (signs);
-- verify-only keys still verify tokens they signed until those expired; retired keys
-- verify nothing and their private half is wiped.
CREATE TABLE auth_signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL DEFAULT 'EdDSA' CHECK (alg = 'EdDSA'),
    public_key   bytea NOT NULL CHECK (length(public_key) = 32),
    private_seal bytea,
    state        text NOT NULL CHECK (state IN ('active', 'verify', 'retired')),
    created_at   timestamptz NOT NULL,
    demoted_at   timestamptz,
    retired_at   timestamptz
);
CREATE UNIQUE INDEX auth_signing_keys_one_active ON auth_signing_keys ((true)) WHERE state = 'active';

-- A refresh-token family is one login session: every refresh spends the current token and
-- adds the next to the same family; presenting a spent token revokes the whole family.
-- Access tokens carry the family id (sid), so revoking a family also ends its access tokens.
CREATE TABLE auth_refresh_families (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX auth_refresh_families_user_idx ON auth_refresh_families (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE auth_refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id  uuid NOT NULL REFERENCES auth_refresh_families (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX auth_refresh_tokens_family_idx ON auth_refresh_tokens (family_id);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE auth_revoked_tokens (
    jti        uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_revoked_tokens_expires_idx ON auth_revoked_tokens (expires_at);

-- Failed logins, per account (lower(email), known or not) and per client IP.
CREATE TABLE auth_login_failures (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope text NOT NULL CHECK (scope IN ('account', 'ip')),
    key   text NOT NULL,
    at    timestamptz NOT NULL
);
CREATE INDEX auth_login_failures_key_idx ON auth_login_failures (scope, key, at);
