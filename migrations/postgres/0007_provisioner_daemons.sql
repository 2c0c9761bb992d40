-- External provisioner daemons, and tags that route jobs to the provisioners that can run them.

-- Keys daemons sign in with; only a SHA-256 of each secret is kept.
CREATE TABLE provisioner_keys (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    hashed_secret   BYTEA NOT NULL UNIQUE,
    -- The daemon's tags, canonical JSON (sorted keys).
    tags            TEXT NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX provisioner_keys_organization_name ON provisioner_keys (organization_id, lower(name));

-- The tags a template's builds need (canonical JSON), set when the version is created.
ALTER TABLE template_versions ADD COLUMN provisioner_tags TEXT NOT NULL DEFAULT '{}';

-- A job's tags: which provisioners may take it (canonical JSON).
ALTER TABLE provisioner_jobs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';

-- The provisioner whose host holds the workspace's files ('' until its first start).
ALTER TABLE workspaces ADD COLUMN provisioner_id TEXT NOT NULL DEFAULT '';
