-- Workspace agents run as their own processes and dial the server (`coder agent`).

-- Each agent's secret, hashed (SHA-256); deleted when its workspace stops or is deleted, which
-- revokes it.
CREATE TABLE workspace_agent_tokens (
    agent_id     BLOB PRIMARY KEY NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    hashed_token BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Where and since when each agent is connected, as Coder's agent rows record it.
CREATE TABLE workspace_agent_connections (
    agent_id           BLOB PRIMARY KEY NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    -- The replica holding the agent's connection; NULL while it is not connected.
    replica_id         BLOB,
    first_connected_at INTEGER NOT NULL,
    last_connected_at  INTEGER NOT NULL,
    disconnected_at    INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE INDEX workspace_agent_connections_replica ON workspace_agent_connections (replica_id);

-- Every running `coder server`, with the address other replicas relay agent requests to.
CREATE TABLE replicas (
    id            BLOB PRIMARY KEY NOT NULL,
    hostname      TEXT NOT NULL,
    relay_address TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    stopped_at    INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
