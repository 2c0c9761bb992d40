-- The device authorization grant (RFC 8628): one row per device authorization request, from
-- `POST /oauth2/device` until the device code is redeemed or expires. The device code is stored
-- like the other OAuth secrets (lookup prefix, SHA-256 of the secret part); the user code is
-- short-lived and typed by a person, so it is stored normalized (upper case, no dash) and unique.
CREATE TABLE oauth2_device_codes (
    id             BLOB PRIMARY KEY NOT NULL,
    secret_prefix  TEXT NOT NULL UNIQUE,
    hashed_secret  BLOB NOT NULL,
    user_code      TEXT NOT NULL UNIQUE,
    app_id         BLOB NOT NULL REFERENCES oauth2_provider_apps (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL CHECK (scope <> ''),
    audience       TEXT NOT NULL,
    grant_id       BLOB NOT NULL,
    interval_secs  INTEGER NOT NULL,
    last_polled_at INTEGER,
    user_id        BLOB REFERENCES users (id) ON DELETE CASCADE,
    approved_at    INTEGER,
    denied_at      INTEGER,
    used_at        INTEGER,
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE INDEX oauth2_device_codes_expires ON oauth2_device_codes (expires_at);
