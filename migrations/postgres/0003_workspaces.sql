-- Workspaces: the default organization, uploaded files, templates and their versions, provisioner
-- jobs with logs, workspaces, their builds, agents, agent logs and apps.
-- JSON values are TEXT, as on SQLite, so both backends share their queries.

CREATE TABLE organizations (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    icon         TEXT NOT NULL DEFAULT '',
    is_default   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX organizations_name_unique ON organizations (lower(name));
CREATE UNIQUE INDEX organizations_default_unique ON organizations (is_default) WHERE is_default;

CREATE TABLE files (
    id         UUID PRIMARY KEY,
    hash       TEXT NOT NULL,
    mimetype   TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX files_hash_created_by_unique ON files (hash, created_by);

CREATE TABLE provisioner_jobs (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    job_type        TEXT NOT NULL CHECK (job_type IN ('template_version_import', 'workspace_build')),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceling', 'canceled')),
    file_id         UUID NOT NULL REFERENCES files (id),
    initiator_id    UUID NOT NULL REFERENCES users (id),
    worker_id       TEXT,
    error           TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    completed_at    TIMESTAMPTZ,
    canceled_at     TIMESTAMPTZ,
    heartbeat_at    TIMESTAMPTZ
);

CREATE INDEX provisioner_jobs_pending ON provisioner_jobs (created_at) WHERE status = 'pending';
CREATE INDEX provisioner_jobs_active ON provisioner_jobs (heartbeat_at) WHERE status IN ('running', 'canceling');

CREATE TABLE provisioner_job_logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     UUID NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    source     TEXT NOT NULL,
    level      TEXT NOT NULL,
    stage      TEXT NOT NULL,
    output     TEXT NOT NULL
);

CREATE INDEX provisioner_job_logs_job ON provisioner_job_logs (job_id, id);

CREATE TABLE templates (
    id                UUID PRIMARY KEY,
    organization_id   UUID NOT NULL REFERENCES organizations (id),
    name              TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT '',
    description       TEXT NOT NULL DEFAULT '',
    icon              TEXT NOT NULL DEFAULT '',
    active_version_id UUID NOT NULL,
    created_by        UUID NOT NULL REFERENCES users (id),
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX templates_name_unique ON templates (organization_id, lower(name)) WHERE NOT deleted;

CREATE TABLE template_versions (
    id              UUID PRIMARY KEY,
    template_id     UUID REFERENCES templates (id),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    message         TEXT NOT NULL DEFAULT '',
    readme          TEXT NOT NULL DEFAULT '',
    job_id          UUID NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    file_id         UUID NOT NULL REFERENCES files (id),
    manifest        TEXT,
    created_by      UUID NOT NULL REFERENCES users (id),
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX template_versions_name_unique ON template_versions (template_id, lower(name))
    WHERE template_id IS NOT NULL;
CREATE INDEX template_versions_template ON template_versions (template_id);

CREATE TABLE workspaces (
    id              UUID PRIMARY KEY,
    owner_id        UUID NOT NULL REFERENCES users (id),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    template_id     UUID NOT NULL REFERENCES templates (id),
    name            TEXT NOT NULL,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    last_used_at    TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX workspaces_owner_name_unique ON workspaces (owner_id, lower(name)) WHERE NOT deleted;
CREATE INDEX workspaces_template ON workspaces (template_id) WHERE NOT deleted;

CREATE TABLE workspace_builds (
    id                  UUID PRIMARY KEY,
    workspace_id        UUID NOT NULL REFERENCES workspaces (id),
    build_number        BIGINT NOT NULL,
    transition          TEXT NOT NULL CHECK (transition IN ('start', 'stop', 'delete')),
    template_version_id UUID NOT NULL REFERENCES template_versions (id),
    job_id              UUID NOT NULL UNIQUE REFERENCES provisioner_jobs (id),
    initiator_id        UUID NOT NULL REFERENCES users (id),
    reason              TEXT NOT NULL DEFAULT 'initiator',
    parameters          TEXT NOT NULL DEFAULT '[]',
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- Two builds racing for the same number: the loser gets a conflict, so a workspace never has two
-- builds in flight.
CREATE UNIQUE INDEX workspace_builds_number_unique ON workspace_builds (workspace_id, build_number);

CREATE TABLE workspace_agents (
    id               UUID PRIMARY KEY,
    workspace_id     UUID NOT NULL REFERENCES workspaces (id),
    build_id         UUID NOT NULL REFERENCES workspace_builds (id),
    name             TEXT NOT NULL,
    lifecycle_state  TEXT NOT NULL,
    directory        TEXT NOT NULL DEFAULT '',
    logs_length      BIGINT NOT NULL DEFAULT 0,
    logs_overflowed  BOOLEAN NOT NULL DEFAULT FALSE,
    started_at       TIMESTAMPTZ,
    ready_at         TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX workspace_agents_build ON workspace_agents (build_id);
CREATE INDEX workspace_agents_workspace ON workspace_agents (workspace_id);

CREATE TABLE workspace_agent_logs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id   UUID NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    level      TEXT NOT NULL,
    output     TEXT NOT NULL
);

CREATE INDEX workspace_agent_logs_agent ON workspace_agent_logs (agent_id, id);

CREATE TABLE workspace_apps (
    id           UUID PRIMARY KEY,
    agent_id     UUID NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    slug         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    url          TEXT NOT NULL DEFAULT '',
    icon         TEXT NOT NULL DEFAULT '',
    position     BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX workspace_apps_slug_unique ON workspace_apps (agent_id, slug);
