-- The OAuth2 authorization server: clients (apps), their secrets, authorization codes, grants
-- (token families) with rotating refresh tokens, the revocation feed, signing keys, and the audit log.

CREATE TABLE oauth2_provider_apps (
    id                            UUID PRIMARY KEY,
    name                          TEXT NOT NULL,
    icon                          TEXT NOT NULL DEFAULT '',
    redirect_uris                 TEXT NOT NULL,
    client_type                   TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    token_endpoint_auth_method    TEXT NOT NULL,
    grant_types                   TEXT NOT NULL,
    response_types                TEXT NOT NULL,
    scope                         TEXT NOT NULL DEFAULT '',
    dynamically_registered        BOOLEAN NOT NULL DEFAULT FALSE,
    client_uri                    TEXT NOT NULL DEFAULT '',
    logo_uri                      TEXT NOT NULL DEFAULT '',
    tos_uri                       TEXT NOT NULL DEFAULT '',
    policy_uri                    TEXT NOT NULL DEFAULT '',
    contacts                      TEXT NOT NULL DEFAULT '[]',
    software_id                   TEXT NOT NULL DEFAULT '',
    software_version              TEXT NOT NULL DEFAULT '',
    registration_access_token     BYTEA,
    client_id_issued_at           TIMESTAMPTZ NOT NULL,
    last_used_at                  TIMESTAMPTZ,
    created_at                    TIMESTAMPTZ NOT NULL,
    updated_at                    TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_provider_apps_abandoned ON oauth2_provider_apps (created_at)
    WHERE dynamically_registered AND last_used_at IS NULL;

CREATE TABLE oauth2_provider_app_secrets (
    id             UUID PRIMARY KEY,
    app_id         UUID NOT NULL REFERENCES oauth2_provider_apps (id) ON DELETE CASCADE,
    secret_prefix  TEXT NOT NULL UNIQUE,
    hashed_secret  BYTEA NOT NULL,
    display_secret TEXT NOT NULL,
    last_used_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_provider_app_secrets_app ON oauth2_provider_app_secrets (app_id);

CREATE TABLE oauth2_provider_app_codes (
    id                UUID PRIMARY KEY,
    secret_prefix     TEXT NOT NULL UNIQUE,
    hashed_secret     BYTEA NOT NULL,
    app_id            UUID NOT NULL REFERENCES oauth2_provider_apps (id) ON DELETE CASCADE,
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grant_id          UUID NOT NULL,
    redirect_uri      TEXT NOT NULL,
    redirect_uri_sent BOOLEAN NOT NULL,
    code_challenge    TEXT NOT NULL,
    audience          TEXT NOT NULL,
    scope             TEXT NOT NULL CHECK (scope <> ''),
    expires_at        TIMESTAMPTZ NOT NULL,
    used_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_provider_app_codes_expires ON oauth2_provider_app_codes (expires_at);

CREATE TABLE oauth2_grants (
    id            UUID PRIMARY KEY,
    app_id        UUID NOT NULL REFERENCES oauth2_provider_apps (id) ON DELETE CASCADE,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_secret_id UUID REFERENCES oauth2_provider_app_secrets (id) ON DELETE SET NULL,
    scope         TEXT NOT NULL CHECK (scope <> ''),
    audience      TEXT NOT NULL,
    last_used_at  TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_grants_user ON oauth2_grants (user_id);
CREATE INDEX oauth2_grants_app ON oauth2_grants (app_id);

CREATE TABLE oauth2_refresh_tokens (
    id            UUID PRIMARY KEY,
    grant_id      UUID NOT NULL REFERENCES oauth2_grants (id) ON DELETE CASCADE,
    secret_prefix TEXT NOT NULL UNIQUE,
    hashed_secret BYTEA NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    rotated_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_refresh_tokens_grant ON oauth2_refresh_tokens (grant_id);
CREATE INDEX oauth2_refresh_tokens_expires ON oauth2_refresh_tokens (expires_at);

-- Every revoked grant, read by each replica's token verifier (no foreign key: the feed must
-- outlive the grant rows an app deletion cascades away).
CREATE TABLE oauth2_revocations (
    grant_id   UUID PRIMARY KEY,
    revoked_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_revocations_time ON oauth2_revocations (revoked_at);

CREATE TABLE oauth2_signing_keys (
    id          TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    retired_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_logs (
    id            UUID PRIMARY KEY,
    time          TIMESTAMPTZ NOT NULL,
    user_id       UUID,
    client_id     UUID,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    ip            TEXT NOT NULL DEFAULT '',
    details       TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_logs_time ON audit_logs (time);
