-- A generation per workspace owner, bumped in the same transaction as every change to what that
-- owner's workspace list shows, so a server can tell with one primary-key read whether a list
-- it rendered before is still current and send it again instead of recomputing it
-- (docs/benchmarks.md, issue 19). The row whose owner_id is the nil UUID (16 zero bytes) counts
-- changes to templates, whose name, display name, icon and active version appear in every
-- owner's list. A missing row reads as generation 0; rows are never deleted, so a generation
-- never repeats. No created_at/updated_at: these are counters the triggers keep, not records,
-- and a trigger has no clock (times are the application's `Clock`).
CREATE TABLE workspace_list_generations (
    owner_id   BLOB PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL
);

-- Workspaces: a new or removed row, or a change to a column a list reads or filters on (see
-- store/workspace_list.rs: LIST_JOINS, SUMMARY_COLUMNS, STATUS_SQL). Writes that touch only
-- other columns (updated_at, last_used_at, provisioner_id) do not bump.
CREATE TRIGGER workspace_list_generation_insert AFTER INSERT ON workspaces
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (NEW.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER workspace_list_generation_delete AFTER DELETE ON workspaces
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (OLD.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER workspace_list_generation_update AFTER UPDATE ON workspaces
WHEN NEW.id IS NOT OLD.id
  OR NEW.owner_id IS NOT OLD.owner_id
  OR NEW.name IS NOT OLD.name
  OR NEW.template_id IS NOT OLD.template_id
  OR NEW.deleted IS NOT OLD.deleted
  OR NEW.latest_job_id IS NOT OLD.latest_job_id
  OR NEW.latest_transition IS NOT OLD.latest_transition
  OR NEW.latest_template_version_id IS NOT OLD.latest_template_version_id
  OR NEW.latest_job_status IS NOT OLD.latest_job_status
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (OLD.owner_id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
    -- A workspace moved to another owner leaves one list and joins another.
    INSERT INTO workspace_list_generations (owner_id, generation)
    SELECT NEW.owner_id, 1 WHERE NEW.owner_id IS NOT OLD.owner_id
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

-- Users: a list shows its owner's username.
CREATE TRIGGER workspace_list_generation_username AFTER UPDATE OF username ON users
WHEN NEW.username IS NOT OLD.username
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (OLD.id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER workspace_list_generation_user_delete AFTER DELETE ON users
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (OLD.id, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

-- Templates: every list shows its workspaces' template's id, name, display name, icon and
-- active version, so these bump the templates' row, which every list reads.
CREATE TRIGGER workspace_list_generation_template_insert AFTER INSERT ON templates
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (zeroblob(16), 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER workspace_list_generation_template_update AFTER UPDATE ON templates
WHEN NEW.id IS NOT OLD.id
  OR NEW.name IS NOT OLD.name
  OR NEW.display_name IS NOT OLD.display_name
  OR NEW.icon IS NOT OLD.icon
  OR NEW.active_version_id IS NOT OLD.active_version_id
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (zeroblob(16), 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;

CREATE TRIGGER workspace_list_generation_template_delete AFTER DELETE ON templates
BEGIN
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (zeroblob(16), 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = generation + 1;
END;
