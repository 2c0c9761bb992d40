-- Each workspace carries a copy of its latest build's transition, template version and job
-- status, so lists read one row per workspace instead of joining its builds and jobs
-- (docs/benchmarks.md). Triggers keep the copy: a new build replaces it, and a status change
-- of the latest build's job is copied. Every write goes through these statements, so the copy
-- cannot drift.
ALTER TABLE workspaces ADD COLUMN latest_job_id BLOB;
ALTER TABLE workspaces ADD COLUMN latest_transition TEXT;
ALTER TABLE workspaces ADD COLUMN latest_template_version_id BLOB;
ALTER TABLE workspaces ADD COLUMN latest_job_status TEXT;

CREATE INDEX workspaces_latest_job ON workspaces (latest_job_id);

UPDATE workspaces SET
    latest_job_id = b.job_id,
    latest_transition = b.transition,
    latest_template_version_id = b.template_version_id,
    latest_job_status = j.status
FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
WHERE b.workspace_id = workspaces.id
  AND b.build_number = (SELECT MAX(build_number) FROM workspace_builds WHERE workspace_id = workspaces.id);

CREATE TRIGGER workspace_builds_track_latest AFTER INSERT ON workspace_builds
WHEN NEW.build_number = (SELECT MAX(build_number) FROM workspace_builds WHERE workspace_id = NEW.workspace_id)
BEGIN
    UPDATE workspaces SET
        latest_job_id = NEW.job_id,
        latest_transition = NEW.transition,
        latest_template_version_id = NEW.template_version_id,
        latest_job_status = (SELECT status FROM provisioner_jobs WHERE id = NEW.job_id)
    WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER provisioner_jobs_track_latest AFTER UPDATE OF status ON provisioner_jobs
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE workspaces SET latest_job_status = NEW.status WHERE latest_job_id = NEW.id;
END;
