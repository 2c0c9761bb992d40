-- The device authorization grant (RFC 8628): one row per device authorization request, from
-- `POST /oauth2/device` until the device code is redeemed or expires. The device code is stored
-- like the other OAuth secrets (lookup prefix, SHA-256 of the secret part); the user code is
-- short-lived and typed by a person, so it is stored normalized (upper case, no dash) and unique.
CREATE TABLE oauth2_device_codes (
    id             UUID PRIMARY KEY,
    secret_prefix  TEXT NOT NULL UNIQUE,
    hashed_secret  BYTEA NOT NULL,
    user_code      TEXT NOT NULL UNIQUE,
    app_id         UUID NOT NULL REFERENCES oauth2_provider_apps (id) ON DELETE CASCADE,
    scope          TEXT NOT NULL CHECK (scope <> ''),
    audience       TEXT NOT NULL,
    grant_id       UUID NOT NULL,
    interval_secs  BIGINT NOT NULL,
    last_polled_at TIMESTAMPTZ,
    user_id        UUID REFERENCES users (id) ON DELETE CASCADE,
    approved_at    TIMESTAMPTZ,
    denied_at      TIMESTAMPTZ,
    used_at        TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX oauth2_device_codes_expires ON oauth2_device_codes (expires_at);
