-- Provisioner daemons as every replica sees them: one row per daemon, kept after it leaves so
-- owners see it offline. Its id is its persistent UUID in the text form that
-- workspaces.provisioner_id holds. The replica it is connected to refreshes last_seen_at with
-- its heartbeat; replica_id is NULL once it has left.
CREATE TABLE provisioner_daemons (
    id              TEXT PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    -- The key it signed in with last (no foreign key: deleting a key keeps the history).
    key_id          UUID NOT NULL,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    -- Its tags, canonical JSON (sorted keys).
    tags            TEXT NOT NULL DEFAULT '{}',
    replica_id      UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX provisioner_daemons_replica ON provisioner_daemons (replica_id);
