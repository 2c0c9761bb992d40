-- API sessions opened through a first-party OAuth client (`coder login --device` approves the
-- built-in Coder CLI client, whose device grant yields an API key): a third key login type,
-- `oauth2_provider_app`, Coder's name for keys minted by its OAuth2 provider. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with its indexes; no table
-- references api_keys.
CREATE TABLE api_keys_new (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hashed_secret    BLOB NOT NULL,
    login_type       TEXT NOT NULL CHECK (login_type IN ('password', 'token', 'oauth2_provider_app')),
    token_name       TEXT NOT NULL DEFAULT '',
    lifetime_seconds INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    last_used        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

INSERT INTO api_keys_new (id, user_id, hashed_secret, login_type, token_name, lifetime_seconds,
                          expires_at, last_used, created_at, updated_at)
SELECT id, user_id, hashed_secret, login_type, token_name, lifetime_seconds, expires_at,
       last_used, created_at, updated_at
FROM api_keys;

DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE UNIQUE INDEX api_keys_token_name_unique ON api_keys (user_id, token_name) WHERE token_name <> '';
CREATE INDEX api_keys_user_id ON api_keys (user_id);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);
