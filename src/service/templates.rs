//! Templates: the default organization, uploaded files, template versions (imported by a job)
//! and templates. Everyone signed in may read them; only owners manage them.

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::require_owner;
use super::views::{
    OrganizationView, ProvisionerJobLogView, TemplateVersionParameterView, TemplateVersionView,
    TemplateView,
};
use super::{Services, validate};
use crate::audit::AuditEvent;
use crate::domain::manifest::Manifest;
use crate::domain::provisioner::ProvisionerTags;
use crate::domain::text::{is_lookup_key, limits};
use crate::domain::{
    DEFAULT_ORGANIZATION_NAME, DomainError, FieldError, FileId, JobStatus, JobType, Organization,
    OrganizationId, Principal, ProvisionerJob, Scope, StoredFile, Template, TemplateId,
    TemplateVersion, TemplateVersionId,
};
use crate::provisioner::validate_archive;
use crate::store::{Constraint, DeleteTemplateOutcome, StoreError};

/// The largest template archive accepted.
pub const MAX_FILE_SIZE: usize = 10 * 1024 * 1024;
/// The content type template archives are uploaded with.
pub const TAR_MIMETYPE: &str = "application/x-tar";
/// Lines returned by one log request.
pub(super) const LOG_PAGE: i64 = 1000;

#[derive(Debug, Clone, Default)]
pub struct CreateTemplateVersionRequest {
    pub file_id: Option<FileId>,
    pub name: Option<String>,
    pub message: String,
    pub template_id: Option<TemplateId>,
    /// Coder's `tags`: which provisioners build its workspaces (none: the built-in one).
    pub provisioner_tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateTemplateRequest {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub template_version_id: Option<TemplateVersionId>,
}

/// Refuses callers whose token lacks `scope` (session and API tokens hold every scope).
pub(super) fn require_scope(actor: &Principal, scope: Scope) -> Result<(), DomainError> {
    if actor.has_scope(scope) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "This token does not grant the {} scope; authorize the client again with it.",
            scope.name()
        )))
    }
}

fn template_not_found() -> DomainError {
    DomainError::NotFound("Template not found.".into())
}

fn version_not_found() -> DomainError {
    DomainError::NotFound("Template version not found.".into())
}

/// Coder's template version name rule, with a random default.
fn version_name(requested: Option<&str>) -> Result<String, FieldError> {
    let Some(name) = requested.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(random_version_name());
    };
    let valid = name.len() <= 64
        && name
            .split(['_', '.', '-'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(FieldError::new(
            "name",
            "Must be 1-64 letters or digits, joined by single '-', '_' or '.' (e.g. \"v1.2\").",
        ))
    }
}

fn random_version_name() -> String {
    use rand::seq::SliceRandom;
    const ADJECTIVES: [&str; 12] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "quiet",
    ];
    const NOUNS: [&str; 12] = [
        "turing", "hopper", "lovelace", "knuth", "ritchie", "thompson", "liskov", "dijkstra",
        "hamilton", "torvalds", "wirth", "backus",
    ];
    let mut rng = rand::thread_rng();
    let suffix: u16 = rand::Rng::gen_range(&mut rng, 0..10000);
    format!(
        "{}_{}{suffix}",
        ADJECTIVES.choose(&mut rng).copied().unwrap_or("brave"),
        NOUNS.choose(&mut rng).copied().unwrap_or("turing"),
    )
}

impl Services {
    /// The deployment's organization, created on first start.
    pub async fn ensure_default_organization(&self) -> Result<Organization, DomainError> {
        let now = self.clock.now();
        Ok(self
            .store
            .ensure_default_organization(Organization {
                id: OrganizationId::new(),
                name: DEFAULT_ORGANIZATION_NAME.to_owned(),
                display_name: "Coder".to_owned(),
                description: "The default organization.".to_owned(),
                icon: String::new(),
                is_default: true,
                created_at: now,
                updated_at: now,
            })
            .await?)
    }

    /// An organization by id or name.
    pub async fn get_organization(
        &self,
        _actor: &Principal,
        org: &str,
    ) -> Result<Organization, DomainError> {
        let found = match Uuid::parse_str(org) {
            Ok(id) => self.store.get_organization(OrganizationId(id)).await?,
            Err(_) if is_lookup_key(org) => self.store.get_organization_by_name(org).await?,
            Err(_) => None,
        };
        found.ok_or_else(|| {
            DomainError::NotFound(format!(
                "Organization {org:?} not found; this deployment has one, named {DEFAULT_ORGANIZATION_NAME:?}."
            ))
        })
    }

    pub async fn organization_view(
        &self,
        actor: &Principal,
        org: &str,
    ) -> Result<OrganizationView, DomainError> {
        Ok(OrganizationView::from(
            &self.get_organization(actor, org).await?,
        ))
    }

    /// Stores an uploaded template archive; uploading the same bytes again returns the same file.
    pub async fn upload_file(
        &self,
        actor: &Principal,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<(StoredFile, bool), DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if !mime.eq_ignore_ascii_case(TAR_MIMETYPE) {
            return Err(DomainError::invalid(format!(
                "Unsupported Content-Type {mime:?}: upload a tar archive as {TAR_MIMETYPE}."
            )));
        }
        if data.len() > MAX_FILE_SIZE {
            return Err(DomainError::invalid(format!(
                "The file is larger than {} MiB.",
                MAX_FILE_SIZE / 1024 / 1024
            )));
        }
        let data = tokio::task::spawn_blocking(move || validate_archive(&data).map(|_| data))
            .await
            .map_err(DomainError::internal)?
            .map_err(|e| DomainError::invalid(e.0))?;
        let hash = hex(&Sha256::digest(&data));
        let file = StoredFile {
            id: FileId::new(),
            hash,
            mimetype: TAR_MIMETYPE.to_owned(),
            data,
            created_by: actor.user.id,
            created_at: self.clock.now(),
        };
        Ok(self.store.insert_file(file).await?)
    }

    /// A file its uploader (or an owner) may download.
    pub async fn get_file(&self, actor: &Principal, id: FileId) -> Result<StoredFile, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        match self.store.get_file(id).await? {
            Some(f) if actor.is_owner() || f.created_by == actor.user.id => Ok(f),
            _ => Err(DomainError::NotFound("File not found.".into())),
        }
    }

    /// Queues the import of an uploaded archive as a new template version.
    pub async fn create_template_version(
        &self,
        actor: &Principal,
        org: &str,
        req: CreateTemplateVersionRequest,
    ) -> Result<TemplateVersionView, DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let org = self.get_organization(actor, org).await?;
        let (file, template, name) = self.check_version_request(&org, &req).await?;
        if let Some(t) = &template
            && self
                .store
                .get_template_version_by_name(t.id, &name)
                .await?
                .is_some()
        {
            return Err(DomainError::conflict(
                format!("Template {} already has a version named {name:?}.", t.name),
                Some("name"),
            ));
        }
        let provisioner_tags = ProvisionerTags::from_user(req.provisioner_tags, "tags")?;
        let now = self.clock.now();
        // The import only reads the manifest, on any server; the tags route the builds.
        let job = ProvisionerJob::pending(
            org.id,
            JobType::TemplateVersionImport,
            file.id,
            actor.user.id,
            now,
        );
        let version = TemplateVersion {
            id: TemplateVersionId::new(),
            template_id: template.as_ref().map(|t| t.id),
            organization_id: org.id,
            name,
            message: req.message,
            readme: String::new(),
            job_id: job.id,
            file_id: file.id,
            manifest: None,
            created_by: actor.user.id,
            archived: false,
            created_at: now,
            updated_at: now,
            provisioner_tags,
        };
        self.store
            .insert_template_version(version.clone(), job.clone())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Constraint::TemplateVersionName) => DomainError::conflict(
                    "The template already has a version with this name.",
                    Some("name"),
                ),
                other => other.into(),
            })?;
        self.provisioning()?.signals.job_queued();
        self.audit(
            actor,
            AuditEvent::new("template.version.create", "template_version", version.id.0).details(
                json!({
                    "name": version.name,
                    "template_id": version.template_id.map(|t| t.0),
                    "template": template.as_ref().map(|t| t.name.clone()),
                    "file_id": file.id.0,
                }),
            ),
        )
        .await;
        Ok(TemplateVersionView::new(
            &version,
            &job,
            template.as_ref(),
            Some(&actor.user),
        ))
    }

    /// The archive, template and name a new version request names, each problem named by its
    /// field.
    async fn check_version_request(
        &self,
        org: &Organization,
        req: &CreateTemplateVersionRequest,
    ) -> Result<(StoredFile, Option<Template>, String), DomainError> {
        let mut problems = Vec::new();
        let file = match req.file_id {
            None => {
                problems.push(FieldError::new(
                    "file_id",
                    "Required: upload a tar archive to POST /api/v2/files first.",
                ));
                None
            }
            Some(id) => match self.store.get_file(id).await? {
                Some(f) => Some(f),
                None => {
                    problems.push(FieldError::new("file_id", "No uploaded file has this id."));
                    None
                }
            },
        };
        let template = match req.template_id {
            None => None,
            Some(id) => match self.store.get_template(id).await? {
                Some(t) if t.organization_id == org.id => Some(t),
                _ => {
                    problems.push(FieldError::new("template_id", "No template has this id."));
                    None
                }
            },
        };
        let name = match version_name(req.name.as_deref()) {
            Ok(n) => n,
            Err(problem) => {
                problems.push(problem);
                String::new()
            }
        };
        if let Err(problem) = validate::display_name("message", &req.message) {
            problems.push(problem);
        }
        let (Some(file), true) = (file, problems.is_empty()) else {
            return Err(DomainError::invalid_fields(
                "Invalid template version.",
                problems,
            ));
        };
        Ok((file, template, name))
    }

    pub(super) async fn load_version(
        &self,
        id: TemplateVersionId,
    ) -> Result<TemplateVersion, DomainError> {
        self.store
            .get_template_version(id)
            .await?
            .ok_or_else(version_not_found)
    }

    pub(super) async fn version_view(
        &self,
        version: &TemplateVersion,
    ) -> Result<TemplateVersionView, DomainError> {
        let job = self
            .store
            .get_job(version.job_id)
            .await?
            .ok_or_else(|| DomainError::internal("template version without its job"))?;
        // The import stores the manifest and README before it marks its job succeeded, but
        // `version` was read before the job: read between the two, it would show a finished
        // import without its results. Read it again; the job never changes after that.
        let reread;
        let version = if job.status == JobStatus::Succeeded && version.manifest.is_none() {
            reread = self.load_version(version.id).await?;
            &reread
        } else {
            version
        };
        let template = match version.template_id {
            Some(id) => self.store.get_template(id).await?,
            None => None,
        };
        let creator = self.store.get_user_by_id(version.created_by).await?;
        Ok(TemplateVersionView::new(
            version,
            &job,
            template.as_ref(),
            creator.as_ref(),
        ))
    }

    pub async fn get_template_version(
        &self,
        actor: &Principal,
        id: TemplateVersionId,
    ) -> Result<TemplateVersionView, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let version = self.load_version(id).await?;
        self.version_view(&version).await
    }

    pub async fn list_template_versions(
        &self,
        actor: &Principal,
        template: TemplateId,
    ) -> Result<Vec<TemplateVersionView>, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        self.store
            .get_template(template)
            .await?
            .ok_or_else(template_not_found)?;
        let mut views = Vec::new();
        for v in self.store.list_template_versions(template).await? {
            views.push(self.version_view(&v).await?);
        }
        Ok(views)
    }

    /// The parsed manifest of a version whose import succeeded; otherwise a message saying why
    /// there is none yet.
    pub(super) async fn imported_manifest(
        &self,
        version: &TemplateVersion,
    ) -> Result<Manifest, DomainError> {
        if let Some(json) = &version.manifest {
            return Manifest::from_json(json).map_err(DomainError::internal);
        }
        let job = self.store.get_job(version.job_id).await?;
        let (status, error) = job
            .map(|j| (j.status, j.error))
            .unwrap_or((JobStatus::Failed, String::new()));
        Err(match status {
            JobStatus::Pending | JobStatus::Running => DomainError::conflict(
                format!(
                    "Template version {} is still importing ({}). Wait until its job succeeds (GET /api/v2/templateversions/{}) and try again.",
                    version.name,
                    status.as_str(),
                    version.id
                ),
                None,
            ),
            _ => DomainError::invalid(format!(
                "Template version {} did not import successfully ({}{}); upload a fixed archive as a new version.",
                version.name,
                status.as_str(),
                if error.is_empty() {
                    String::new()
                } else {
                    format!(": {error}")
                }
            )),
        })
    }

    /// The rich parameters a version declares.
    pub async fn template_version_parameters(
        &self,
        actor: &Principal,
        id: TemplateVersionId,
    ) -> Result<Vec<TemplateVersionParameterView>, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let version = self.load_version(id).await?;
        let manifest = self.imported_manifest(&version).await?;
        Ok(manifest
            .parameters
            .iter()
            .map(TemplateVersionParameterView::from)
            .collect())
    }

    /// The import job's log lines after `after`.
    pub async fn template_version_logs(
        &self,
        actor: &Principal,
        id: TemplateVersionId,
        after: i64,
    ) -> Result<Vec<ProvisionerJobLogView>, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let version = self.load_version(id).await?;
        let logs = self
            .store
            .list_job_logs(version.job_id, after, LOG_PAGE)
            .await?;
        Ok(logs.iter().map(ProvisionerJobLogView::from).collect())
    }

    pub async fn create_template(
        &self,
        actor: &Principal,
        org: &str,
        req: CreateTemplateRequest,
    ) -> Result<TemplateView, DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let org = self.get_organization(actor, org).await?;
        let name = req.name.trim().to_owned();
        let mut problems: Vec<FieldError> = [
            validate::name("name", &name),
            validate::display_name("display_name", &req.display_name),
            validate::text("description", &req.description, limits::DESCRIPTION),
            validate::text("icon", &req.icon, limits::ICON),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if req.template_version_id.is_none() {
            problems.push(FieldError::new(
                "template_version_id",
                "Required: create a template version first.",
            ));
        }
        let (Some(version_id), true) = (req.template_version_id, problems.is_empty()) else {
            return Err(DomainError::invalid_fields("Invalid template.", problems));
        };
        let version = self.version_for_new_template(&org, version_id).await?;
        if self
            .store
            .get_template_by_name(org.id, &name)
            .await?
            .is_some()
        {
            return Err(DomainError::conflict(
                format!("A template named {name:?} already exists."),
                Some("name"),
            ));
        }
        let now = self.clock.now();
        let template = Template {
            id: TemplateId::new(),
            organization_id: org.id,
            name,
            display_name: req.display_name.trim().to_owned(),
            description: req.description,
            icon: req.icon,
            active_version_id: version.id,
            created_by: actor.user.id,
            created_at: now,
            updated_at: now,
        };
        self.insert_template(template.clone()).await?;
        self.audit(
            actor,
            AuditEvent::new("template.create", "template", template.id.0).details(json!({
                "name": template.name,
                "active_version_id": version.id.0,
                "version": version.name,
            })),
        )
        .await;
        Ok(TemplateView::new(
            &template,
            Some(&org),
            Some(&actor.user),
            self.provisioner_name(),
        ))
    }

    /// The imported version a new template starts from: in `org`, and in no template yet.
    async fn version_for_new_template(
        &self,
        org: &Organization,
        version_id: TemplateVersionId,
    ) -> Result<TemplateVersion, DomainError> {
        let version = self
            .store
            .get_template_version(version_id)
            .await?
            .ok_or_else(|| {
                DomainError::invalid_fields(
                    "Invalid template.",
                    vec![FieldError::new(
                        "template_version_id",
                        "No template version has this id.",
                    )],
                )
            })?;
        if version.organization_id != org.id {
            return Err(DomainError::invalid(
                "The template version belongs to another organization.",
            ));
        }
        if version.template_id.is_some() {
            return Err(DomainError::conflict(
                "This template version already belongs to a template; create a new version for the new template.",
                Some("template_version_id"),
            ));
        }
        self.imported_manifest(&version).await?;
        Ok(version)
    }

    /// Stores a new template, attaching its first version unless another template took it.
    async fn insert_template(&self, template: Template) -> Result<(), DomainError> {
        let attached = self
            .store
            .insert_template(template)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Constraint::TemplateName) => {
                    DomainError::conflict("A template with this name already exists.", Some("name"))
                }
                other => other.into(),
            })?;
        if !attached {
            return Err(DomainError::conflict(
                "This template version already belongs to a template.",
                Some("template_version_id"),
            ));
        }
        Ok(())
    }

    fn provisioner_name(&self) -> &'static str {
        self.provisioning
            .as_ref()
            .map(|p| p.provisioner.name())
            .unwrap_or("local")
    }

    pub(super) async fn template_view(
        &self,
        template: &Template,
    ) -> Result<TemplateView, DomainError> {
        let org = self
            .store
            .get_organization(template.organization_id)
            .await?;
        let creator = self.store.get_user_by_id(template.created_by).await?;
        Ok(TemplateView::new(
            template,
            org.as_ref(),
            creator.as_ref(),
            self.provisioner_name(),
        ))
    }

    /// Templates of one organization (id or name), or of all.
    pub async fn list_templates(
        &self,
        actor: &Principal,
        org: Option<&str>,
    ) -> Result<Vec<TemplateView>, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let org_id = match org {
            Some(o) => Some(self.get_organization(actor, o).await?.id),
            None => None,
        };
        let mut views = Vec::new();
        for t in self.store.list_templates(org_id).await? {
            views.push(self.template_view(&t).await?);
        }
        Ok(views)
    }

    pub async fn get_template(
        &self,
        actor: &Principal,
        id: TemplateId,
    ) -> Result<TemplateView, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let template = self
            .store
            .get_template(id)
            .await?
            .ok_or_else(template_not_found)?;
        self.template_view(&template).await
    }

    pub async fn get_template_by_name(
        &self,
        actor: &Principal,
        org: &str,
        name: &str,
    ) -> Result<TemplateView, DomainError> {
        require_scope(actor, Scope::TemplatesRead)?;
        let org = self.get_organization(actor, org).await?;
        if !is_lookup_key(name) {
            return Err(template_not_found());
        }
        let template = self
            .store
            .get_template_by_name(org.id, name)
            .await?
            .ok_or_else(template_not_found)?;
        self.template_view(&template).await
    }

    /// Makes `version` (of this template, imported successfully) the one new workspaces use.
    pub async fn update_template_active_version(
        &self,
        actor: &Principal,
        template: TemplateId,
        version: TemplateVersionId,
    ) -> Result<(), DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let template = self
            .store
            .get_template(template)
            .await?
            .ok_or_else(template_not_found)?;
        let version = self.load_version(version).await?;
        if version.template_id != Some(template.id) {
            return Err(DomainError::invalid(format!(
                "Template version {} does not belong to template {}; create it with \"template_id\": \"{}\".",
                version.name, template.name, template.id
            )));
        }
        self.imported_manifest(&version).await?;
        if !self
            .store
            .set_template_active_version(template.id, version.id, self.clock.now())
            .await?
        {
            return Err(template_not_found());
        }
        self.audit(
            actor,
            AuditEvent::new("template.active_version.update", "template", template.id.0).details(
                json!({
                    "name": template.name,
                    "from": template.active_version_id.0,
                    "to": version.id.0,
                    "version": version.name,
                }),
            ),
        )
        .await;
        Ok(())
    }

    /// Deletes a template no workspace uses.
    pub async fn delete_template(
        &self,
        actor: &Principal,
        id: TemplateId,
    ) -> Result<(), DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        // Read first, so the entry names what was deleted.
        let name = self.store.get_template(id).await?.map(|t| t.name);
        match self.store.delete_template(id, self.clock.now()).await? {
            DeleteTemplateOutcome::Deleted => {
                self.audit(
                    actor,
                    AuditEvent::new("template.delete", "template", id.0)
                        .details(json!({ "name": name })),
                )
                .await;
                Ok(())
            }
            DeleteTemplateOutcome::NotFound => Err(template_not_found()),
            DeleteTemplateOutcome::HasWorkspaces(n) => Err(DomainError::conflict(
                format!(
                    "The template is used by {n} workspace(s). Delete them first (POST /api/v2/workspaces/{{id}}/builds with \"transition\": \"delete\"), then delete the template."
                ),
                None,
            )),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
