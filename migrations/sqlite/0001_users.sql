-- Users, their API keys (browser sessions and user-created tokens) and deployment-wide settings.
-- Times are INTEGER microseconds since the Unix epoch (UTC), so comparisons are numeric.

CREATE TABLE users (
    id              BLOB PRIMARY KEY NOT NULL,
    username        TEXT NOT NULL,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    hashed_password TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL
);

CREATE UNIQUE INDEX users_username_unique ON users (lower(username)) WHERE NOT deleted;
CREATE UNIQUE INDEX users_email_unique ON users (lower(email)) WHERE NOT deleted;

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hashed_secret    BLOB NOT NULL,
    login_type       TEXT NOT NULL CHECK (login_type IN ('password', 'token')),
    token_name       TEXT NOT NULL DEFAULT '',
    lifetime_seconds INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    last_used        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE UNIQUE INDEX api_keys_token_name_unique ON api_keys (user_id, token_name) WHERE token_name <> '';
CREATE INDEX api_keys_user_id ON api_keys (user_id);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);

CREATE TABLE site_configs (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
