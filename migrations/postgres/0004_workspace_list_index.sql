-- A user's workspace list in list order (lower(name) byte by byte, then id) straight from an
-- index, without a sort (docs/benchmarks.md).
CREATE INDEX workspaces_owner_list ON workspaces (owner_id, (lower(name) COLLATE "C"), id) WHERE NOT deleted;
