-- Clients identified by a Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document):
-- each gets an app row keyed by its document URL (its client_id on the wire), so grants, codes
-- and the audit log refer to it as to any other client.

ALTER TABLE oauth2_provider_apps ADD COLUMN metadata_document_url TEXT;

CREATE UNIQUE INDEX oauth2_provider_apps_metadata_document_url
    ON oauth2_provider_apps (metadata_document_url) WHERE metadata_document_url IS NOT NULL;

-- The `jti` of every private_key_jwt client assertion (RFC 7523 §3, item 7) until it expires,
-- so an assertion is accepted once on every replica.
CREATE TABLE oauth2_client_assertion_jtis (
    jti_hash   TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX oauth2_client_assertion_jtis_expires ON oauth2_client_assertion_jtis (expires_at);
