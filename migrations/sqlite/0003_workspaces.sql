-- Workspaces: the default organization, uploaded files, templates and their versions, provisioner
-- jobs with logs, workspaces, their builds, agents, agent logs and apps.
-- Times are INTEGER microseconds since the Unix epoch (UTC); JSON values are TEXT.

CREATE TABLE organizations (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    icon         TEXT NOT NULL DEFAULT '',
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE UNIQUE INDEX organizations_name_unique ON organizations (lower(name));
CREATE UNIQUE INDEX organizations_default_unique ON organizations (is_default) WHERE is_default;

CREATE TABLE files (
    id         BLOB PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL,
    mimetype   TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE UNIQUE INDEX files_hash_created_by_unique ON files (hash, created_by);

CREATE TABLE provisioner_jobs (
    id              BLOB PRIMARY KEY NOT NULL,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    job_type        TEXT NOT NULL CHECK (job_type IN ('template_version_import', 'workspace_build')),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceling', 'canceled')),
    file_id         BLOB NOT NULL REFERENCES files (id),
    initiator_id    BLOB NOT NULL REFERENCES users (id),
    worker_id       TEXT,
    error           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    completed_at    INTEGER,
    canceled_at     INTEGER,
    heartbeat_at    INTEGER
);

CREATE INDEX provisioner_jobs_pending ON provisioner_jobs (created_at) WHERE status = 'pending';
CREATE INDEX provisioner_jobs_active ON provisioner_jobs (heartbeat_at) WHERE status IN ('running', 'canceling');

CREATE TABLE provisioner_job_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     BLOB NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL,
    stage      TEXT NOT NULL,
    output     TEXT NOT NULL
);

CREATE INDEX provisioner_job_logs_job ON provisioner_job_logs (job_id, id);

CREATE TABLE templates (
    id                BLOB PRIMARY KEY NOT NULL,
    organization_id   BLOB NOT NULL REFERENCES organizations (id),
    name              TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    icon              TEXT NOT NULL DEFAULT '',
    active_version_id BLOB NOT NULL,
    created_by        BLOB NOT NULL REFERENCES users (id),
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE UNIQUE INDEX templates_name_unique ON templates (organization_id, lower(name)) WHERE NOT deleted;

CREATE TABLE template_versions (
    id              BLOB PRIMARY KEY NOT NULL,
    template_id     BLOB REFERENCES templates (id),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    message         TEXT NOT NULL DEFAULT '',
    readme          TEXT NOT NULL DEFAULT '',
    job_id          BLOB NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    file_id         BLOB NOT NULL REFERENCES files (id),
    manifest        TEXT,
    created_by      BLOB NOT NULL REFERENCES users (id),
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX template_versions_name_unique ON template_versions (template_id, lower(name))
    WHERE template_id IS NOT NULL;
CREATE INDEX template_versions_template ON template_versions (template_id);

CREATE TABLE workspaces (
    id              BLOB PRIMARY KEY NOT NULL,
    owner_id        BLOB NOT NULL REFERENCES users (id),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    template_id     BLOB NOT NULL REFERENCES templates (id),
    name            TEXT NOT NULL,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_at    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX workspaces_owner_name_unique ON workspaces (owner_id, lower(name)) WHERE NOT deleted;
CREATE INDEX workspaces_template ON workspaces (template_id) WHERE NOT deleted;

CREATE TABLE workspace_builds (
    id                  BLOB PRIMARY KEY NOT NULL,
    workspace_id        BLOB NOT NULL REFERENCES workspaces (id),
    build_number        INTEGER NOT NULL,
    transition          TEXT NOT NULL CHECK (transition IN ('start', 'stop', 'delete')),
    template_version_id BLOB NOT NULL REFERENCES template_versions (id),
    job_id              BLOB NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    initiator_id        BLOB NOT NULL REFERENCES users (id),
    reason              TEXT NOT NULL DEFAULT 'initiator',
    parameters          TEXT NOT NULL DEFAULT '[]',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Two builds racing for the same number: the loser gets a conflict, so a workspace never has two
-- builds in flight.
CREATE UNIQUE INDEX workspace_builds_number_unique ON workspace_builds (workspace_id, build_number);

CREATE TABLE workspace_agents (
    id               BLOB PRIMARY KEY NOT NULL,
    workspace_id     BLOB NOT NULL REFERENCES workspaces (id),
    build_id         BLOB NOT NULL REFERENCES workspace_builds (id),
    name             TEXT NOT NULL,
    lifecycle_state  TEXT NOT NULL,
    directory        TEXT NOT NULL DEFAULT '',
    logs_length      INTEGER NOT NULL DEFAULT 0,
    logs_overflowed  BOOLEAN NOT NULL DEFAULT FALSE,
    started_at       INTEGER,
    ready_at         INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX workspace_agents_build ON workspace_agents (build_id);
CREATE INDEX workspace_agents_workspace ON workspace_agents (workspace_id);

CREATE TABLE workspace_agent_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   BLOB NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    level      TEXT NOT NULL,
    output     TEXT NOT NULL
);

CREATE INDEX workspace_agent_logs_agent ON workspace_agent_logs (agent_id, id);

CREATE TABLE workspace_apps (
    id           BLOB PRIMARY KEY NOT NULL,
    agent_id     BLOB NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    slug         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    url          TEXT NOT NULL DEFAULT '',
    icon         TEXT NOT NULL DEFAULT '',
    position     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE UNIQUE INDEX workspace_apps_slug_unique ON workspace_apps (agent_id, slug);
