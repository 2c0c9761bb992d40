-- Workspace agents run as their own processes and dial the server (`coder agent`).

-- Each agent's secret, hashed (SHA-256); deleted when its workspace stops or is deleted, which
-- revokes it.
CREATE TABLE workspace_agent_tokens (
    agent_id     UUID PRIMARY KEY REFERENCES workspace_agents (id) ON DELETE CASCADE,
    hashed_token BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Where and since when each agent is connected, as Coder's agent rows record it.
CREATE TABLE workspace_agent_connections (
    agent_id           UUID PRIMARY KEY REFERENCES workspace_agents (id) ON DELETE CASCADE,
    -- The replica holding the agent's connection; NULL while it is not connected.
    replica_id         UUID,
    first_connected_at TIMESTAMPTZ NOT NULL,
    last_connected_at  TIMESTAMPTZ NOT NULL,
    disconnected_at    TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE INDEX workspace_agent_connections_replica ON workspace_agent_connections (replica_id);

-- Every running `coder server`, with the address other replicas relay agent requests to.
CREATE TABLE replicas (
    id            UUID PRIMARY KEY,
    hostname      TEXT NOT NULL,
    relay_address TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    stopped_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
