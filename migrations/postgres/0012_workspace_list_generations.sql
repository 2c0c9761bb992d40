-- A generation per workspace owner, bumped in the same transaction as every change to what that
-- owner's workspace list shows, so any replica can tell with one primary-key read whether a
-- list it rendered before is still current and send it again instead of recomputing it
-- (docs/benchmarks.md, issue 19). The row whose owner_id is the nil UUID counts changes to
-- templates, whose name, display name, icon and active version appear in every owner's list.
-- A missing row reads as generation 0; rows are never deleted, so a generation never repeats.
-- The upsert's row lock serializes only writes that change lists of the same owner (or
-- templates) until they commit. No created_at/updated_at: these are counters the triggers
-- keep, not records, and a trigger has no clock (times are the application's `Clock`).
CREATE TABLE workspace_list_generations (
    owner_id   UUID PRIMARY KEY,
    generation BIGINT NOT NULL
);

CREATE FUNCTION workspace_list_bump(owner UUID) RETURNS void LANGUAGE sql AS $$
    INSERT INTO workspace_list_generations (owner_id, generation) VALUES (owner, 1)
    ON CONFLICT (owner_id) DO UPDATE SET generation = workspace_list_generations.generation + 1;
$$;

-- Workspaces: a new or removed row, or a change to a column a list reads or filters on (see
-- store/workspace_list.rs: LIST_JOINS, SUMMARY_COLUMNS, STATUS_SQL). Writes that touch only
-- other columns (updated_at, last_used_at, provisioner_id) do not bump.
CREATE FUNCTION workspace_list_generation_workspaces() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM workspace_list_bump(NEW.owner_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM workspace_list_bump(OLD.owner_id);
    ELSE
        PERFORM workspace_list_bump(OLD.owner_id);
        -- A workspace moved to another owner leaves one list and joins another.
        IF NEW.owner_id IS DISTINCT FROM OLD.owner_id THEN
            PERFORM workspace_list_bump(NEW.owner_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER workspace_list_generation_insert_delete AFTER INSERT OR DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION workspace_list_generation_workspaces();

CREATE TRIGGER workspace_list_generation_update AFTER UPDATE ON workspaces
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id
        OR NEW.owner_id IS DISTINCT FROM OLD.owner_id
        OR NEW.name IS DISTINCT FROM OLD.name
        OR NEW.template_id IS DISTINCT FROM OLD.template_id
        OR NEW.deleted IS DISTINCT FROM OLD.deleted
        OR NEW.latest_job_id IS DISTINCT FROM OLD.latest_job_id
        OR NEW.latest_transition IS DISTINCT FROM OLD.latest_transition
        OR NEW.latest_template_version_id IS DISTINCT FROM OLD.latest_template_version_id
        OR NEW.latest_job_status IS DISTINCT FROM OLD.latest_job_status)
    EXECUTE FUNCTION workspace_list_generation_workspaces();

-- Users: a list shows its owner's username.
CREATE FUNCTION workspace_list_generation_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM workspace_list_bump(OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER workspace_list_generation_username AFTER UPDATE OF username ON users
    FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username)
    EXECUTE FUNCTION workspace_list_generation_users();

CREATE TRIGGER workspace_list_generation_user_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION workspace_list_generation_users();

-- Templates: every list shows its workspaces' template's id, name, display name, icon and
-- active version, so these bump the templates' row, which every list reads.
CREATE FUNCTION workspace_list_generation_templates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM workspace_list_bump('00000000-0000-0000-0000-000000000000');
    RETURN NULL;
END
$$;

CREATE TRIGGER workspace_list_generation_template_insert_delete AFTER INSERT OR DELETE ON templates
    FOR EACH ROW EXECUTE FUNCTION workspace_list_generation_templates();

CREATE TRIGGER workspace_list_generation_template_update AFTER UPDATE ON templates
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id
        OR NEW.name IS DISTINCT FROM OLD.name
        OR NEW.display_name IS DISTINCT FROM OLD.display_name
        OR NEW.icon IS DISTINCT FROM OLD.icon
        OR NEW.active_version_id IS DISTINCT FROM OLD.active_version_id)
    EXECUTE FUNCTION workspace_list_generation_templates();
