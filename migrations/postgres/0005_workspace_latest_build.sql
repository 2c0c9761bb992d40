-- Each workspace carries a copy of its latest build's transition, template version and job
-- status, so lists read one row per workspace instead of joining its builds and jobs
-- (docs/benchmarks.md). Triggers keep the copy: a new build replaces it, and a status change
-- of the latest build's job is copied. A build and its job are inserted in one transaction, so
-- no job status change can slip between them.
ALTER TABLE workspaces
    ADD COLUMN latest_job_id UUID,
    ADD COLUMN latest_transition TEXT,
    ADD COLUMN latest_template_version_id UUID,
    ADD COLUMN latest_job_status TEXT;

CREATE INDEX workspaces_latest_job ON workspaces (latest_job_id);

UPDATE workspaces w SET
    latest_job_id = b.job_id,
    latest_transition = b.transition,
    latest_template_version_id = b.template_version_id,
    latest_job_status = j.status
FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
WHERE b.workspace_id = w.id
  AND b.build_number = (SELECT MAX(build_number) FROM workspace_builds WHERE workspace_id = w.id);

CREATE FUNCTION workspace_builds_track_latest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces SET
        latest_job_id = NEW.job_id,
        latest_transition = NEW.transition,
        latest_template_version_id = NEW.template_version_id,
        latest_job_status = (SELECT status FROM provisioner_jobs WHERE id = NEW.job_id)
    WHERE id = NEW.workspace_id
      AND NEW.build_number = (SELECT MAX(build_number) FROM workspace_builds WHERE workspace_id = NEW.workspace_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER workspace_builds_track_latest AFTER INSERT ON workspace_builds
    FOR EACH ROW EXECUTE FUNCTION workspace_builds_track_latest();

CREATE FUNCTION provisioner_jobs_track_latest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE workspaces SET latest_job_status = NEW.status WHERE latest_job_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER provisioner_jobs_track_latest AFTER UPDATE OF status ON provisioner_jobs
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION provisioner_jobs_track_latest();
