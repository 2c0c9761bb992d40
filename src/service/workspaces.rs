//! Workspaces: creating them, finding them by id or `[owner/]name`, listing them with Coder's
//! filter syntax, and their views. Members see only their own workspaces; anyone else's is
//! "not found".

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

pub use super::list_cache::ListRendering;
use super::templates::require_scope;
use super::views::{BuildParts, WorkspaceBuildView, WorkspaceView, WorkspacesView};
use super::{Services, UserSelector, validate};
use crate::audit::AuditEvent;
use crate::domain::manifest::resolve_parameters;
use crate::domain::text::{StoredText, is_lookup_key};
use crate::domain::{
    BuildId, DomainError, FieldError, JobType, Page, ParameterValue, Principal, ProvisionerJob,
    Scope, Template, TemplateId, TemplateVersion, TemplateVersionId, Transition, User, UserId,
    Workspace, WorkspaceBuild, WorkspaceId, WorkspaceStatus, WorkspaceSummary,
};
use crate::store::{Constraint, StoreError, WorkspaceFilter};

#[derive(Debug, Clone, Default)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    pub template_id: Option<TemplateId>,
    pub template_version_id: Option<TemplateVersionId>,
    pub rich_parameter_values: Vec<ParameterValue>,
}

/// How a caller names a workspace: its id, or Coder's `[owner/]name[.agent]` (`me` is the
/// caller; without an owner, the caller's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceRef {
    Id(WorkspaceId),
    Name { owner: UserSelector, name: String },
}

impl WorkspaceRef {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(WorkspaceRef::Id(WorkspaceId(id)));
        }
        let (owner, rest) = match raw.split_once('/') {
            Some((owner, rest)) => (UserSelector::parse(owner), rest),
            None => (UserSelector::Me, raw),
        };
        // The agent part is accepted for Coder compatibility: every workspace has one agent.
        let name = rest.split_once('.').map_or(rest, |(name, _)| name);
        if name.is_empty() {
            return Err(DomainError::invalid(
                "Name a workspace by its id or as [owner/]name, for example \"me/dev\".",
            ));
        }
        Ok(WorkspaceRef::Name {
            owner,
            name: name.to_owned(),
        })
    }
}

pub(super) fn workspace_not_found() -> DomainError {
    DomainError::NotFound("Workspace not found.".into())
}

/// Members act on their own workspaces; owners on all.
pub(super) fn can_access(actor: &Principal, workspace: &Workspace) -> bool {
    actor.is_owner() || workspace.owner_id == actor.user.id
}

/// A search query is one line of at most this many characters.
pub const SEARCH_QUERY: StoredText = StoredText::line(1024);

/// Coder's workspace search: `owner:`, `name:`, `template:`, `status:` and bare words (names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceQuery {
    pub owner: Option<String>,
    pub name: Option<String>,
    pub template: Option<String>,
    pub status: Option<WorkspaceStatus>,
}

impl WorkspaceQuery {
    pub fn parse(q: &str) -> Result<Self, DomainError> {
        let mut query = WorkspaceQuery::default();
        let mut problems = Vec::new();
        // Every value ends up in a database lookup: the stored-text rule keeps out what no
        // stored name can hold (a NUL would be a PostgreSQL error).
        if let Err(problem) = validate::text("q", q, SEARCH_QUERY) {
            return Err(DomainError::invalid_fields(
                "Invalid workspace search query.",
                vec![problem],
            ));
        }
        for term in split_terms(q) {
            let (key, value) = match term.split_once(':') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                None => ("name".to_owned(), term.clone()),
            };
            let value = value.trim_matches('"').to_owned();
            if value.is_empty() {
                problems.push(FieldError::new(
                    "q",
                    format!("The {key}: filter needs a value."),
                ));
                continue;
            }
            match key.as_str() {
                "owner" => query.owner = Some(value),
                "name" => {
                    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        problems.push(FieldError::new(
                            "q",
                            "A name filter holds only letters, digits and hyphens.",
                        ));
                    }
                    query.name = Some(value);
                }
                "template" => query.template = Some(value),
                "status" => match WorkspaceStatus::parse(&value.to_ascii_lowercase()) {
                    Some(s) => query.status = Some(s),
                    None => problems.push(FieldError::new(
                        "q",
                        format!(
                            "Unknown status {value:?}; use one of: {}.",
                            WorkspaceStatus::ALL.map(|s| s.as_str()).join(", ")
                        ),
                    )),
                },
                other => problems.push(FieldError::new(
                    "q",
                    format!("Unknown filter {other:?}; use owner:, name:, template: or status:."),
                )),
            }
        }
        if problems.is_empty() {
            Ok(query)
        } else {
            Err(DomainError::invalid_fields(
                "Invalid workspace search query.",
                problems,
            ))
        }
    }
}

/// Splits on spaces outside double quotes.
fn split_terms(q: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        terms.push(current);
    }
    terms
}

impl Services {
    /// Resolves `who` to a user the actor may create workspaces for: members only themselves.
    async fn workspace_owner(
        &self,
        actor: &Principal,
        who: &UserSelector,
    ) -> Result<User, DomainError> {
        let user = self.get_user(actor, who).await?;
        if user.id != actor.user.id && !actor.is_owner() {
            return Err(DomainError::NotFound("User not found.".into()));
        }
        Ok(user)
    }

    /// Finds a workspace the actor may see, by id or `[owner/]name`.
    pub async fn resolve_workspace(
        &self,
        actor: &Principal,
        raw: &str,
    ) -> Result<Workspace, DomainError> {
        let found = match WorkspaceRef::parse(raw)? {
            WorkspaceRef::Id(id) => self.store.get_workspace(id).await?,
            WorkspaceRef::Name { owner, name } => {
                let owner_id = match &owner {
                    UserSelector::Me => Some(actor.user.id),
                    UserSelector::Id(id) => Some(*id),
                    UserSelector::Username(u) if is_lookup_key(u) => {
                        self.store.get_user_by_username(u).await?.map(|u| u.id)
                    }
                    UserSelector::Username(_) => None,
                };
                match owner_id {
                    Some(id) if is_lookup_key(&name) => {
                        self.store
                            .get_workspace_by_owner_and_name(id, &name)
                            .await?
                    }
                    _ => None,
                }
            }
        };
        match found {
            Some(ws) if can_access(actor, &ws) => Ok(ws),
            _ => Err(workspace_not_found()),
        }
    }

    /// Creates a workspace for `owner` and queues its first (start) build.
    pub async fn create_workspace(
        &self,
        actor: &Principal,
        owner: &UserSelector,
        req: CreateWorkspaceRequest,
    ) -> Result<WorkspaceView, DomainError> {
        require_scope(actor, Scope::WorkspacesWrite)?;
        let owner = self.workspace_owner(actor, owner).await?;
        let name = req.name.trim().to_owned();
        if let Err(problem) = validate::name("name", &name) {
            return Err(DomainError::invalid_fields(
                "Invalid workspace.",
                vec![problem],
            ));
        }
        let (template, version) = self
            .template_for_workspace(req.template_id, req.template_version_id)
            .await?;
        let manifest = self.imported_manifest(&version).await?;
        let parameters = resolve_parameters(&manifest.parameters, None, &req.rich_parameter_values)
            .map_err(|problems| {
                DomainError::invalid_fields("Invalid parameter values.", problems)
            })?;
        if self
            .store
            .get_workspace_by_owner_and_name(owner.id, &name)
            .await?
            .is_some()
        {
            return Err(DomainError::conflict(
                format!("{} already has a workspace named {name:?}.", owner.username),
                Some("name"),
            ));
        }
        let workspace = self
            .insert_first_build(actor, &owner, &template, &version, name, parameters)
            .await?;
        self.provisioning()?.signals.job_queued();
        self.audit(
            actor,
            AuditEvent::new("workspace.create", "workspace", workspace.id.0).details(
                serde_json::json!({
                    "name": workspace.name,
                    "owner": owner.username,
                    "template": template.name,
                    "template_version_id": version.id.0,
                }),
            ),
        )
        .await;
        self.audit(
            actor,
            build_event(&workspace, &owner.username, Transition::Start, 1),
        )
        .await;
        self.workspace_view(&workspace).await
    }

    /// The template and version a new workspace is built from: the version given (which must
    /// belong to the template, if one is given too), else the template's active version.
    async fn template_for_workspace(
        &self,
        requested_template: Option<TemplateId>,
        template_version_id: Option<TemplateVersionId>,
    ) -> Result<(Template, TemplateVersion), DomainError> {
        match (requested_template, template_version_id) {
            (_, Some(version_id)) => {
                let version = self
                    .store
                    .get_template_version(version_id)
                    .await?
                    .ok_or_else(|| {
                        DomainError::invalid_fields(
                            "Invalid workspace.",
                            vec![FieldError::new(
                                "template_version_id",
                                "No template version has this id.",
                            )],
                        )
                    })?;
                let template_id = version.template_id.ok_or_else(|| {
                    DomainError::invalid("This template version belongs to no template; create a template from it first.")
                })?;
                if requested_template.is_some_and(|t| t != template_id) {
                    return Err(DomainError::invalid(
                        "template_version_id does not belong to template_id.",
                    ));
                }
                let template = self.store.get_template(template_id).await?.ok_or_else(|| {
                    DomainError::invalid("The template of this version was deleted.")
                })?;
                Ok((template, version))
            }
            (Some(template_id), None) => {
                let template = self.store.get_template(template_id).await?.ok_or_else(|| {
                    DomainError::invalid_fields(
                        "Invalid workspace.",
                        vec![FieldError::new("template_id", "No template has this id.")],
                    )
                })?;
                let version = self.load_version(template.active_version_id).await?;
                Ok((template, version))
            }
            (None, None) => Err(DomainError::invalid_fields(
                "Invalid workspace.",
                vec![FieldError::new(
                    "template_id",
                    "Give template_id or template_version_id.",
                )],
            )),
        }
    }

    /// Stores the workspace with its first build, a start, and that build's pending job.
    async fn insert_first_build(
        &self,
        actor: &Principal,
        owner: &User,
        template: &Template,
        version: &TemplateVersion,
        name: String,
        parameters: Vec<ParameterValue>,
    ) -> Result<Workspace, DomainError> {
        let now = self.clock.now();
        let workspace = Workspace {
            id: WorkspaceId::new(),
            owner_id: owner.id,
            organization_id: template.organization_id,
            template_id: template.id,
            name,
            deleted: false,
            last_used_at: now,
            created_at: now,
            updated_at: now,
        };
        let job = ProvisionerJob::pending(
            template.organization_id,
            JobType::WorkspaceBuild,
            version.file_id,
            actor.user.id,
            now,
        )
        .with_tags(version.provisioner_tags.clone());
        let build = WorkspaceBuild {
            id: BuildId::new(),
            workspace_id: workspace.id,
            build_number: 1,
            transition: Transition::Start,
            template_version_id: version.id,
            job_id: job.id,
            initiator_id: actor.user.id,
            reason: "initiator".to_owned(),
            parameters,
            created_at: now,
            updated_at: now,
        };
        let stored = self
            .store
            .insert_workspace(workspace.clone(), build, job)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Constraint::WorkspaceName) => DomainError::conflict(
                    format!("{} already has a workspace with this name.", owner.username),
                    Some("name"),
                ),
                other => other.into(),
            })?;
        if !stored {
            return Err(DomainError::invalid("The template was deleted meanwhile."));
        }
        Ok(workspace)
    }

    /// A workspace by id or `[owner/]name`.
    pub async fn get_workspace(
        &self,
        actor: &Principal,
        raw: &str,
    ) -> Result<WorkspaceView, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let workspace = self.resolve_workspace(actor, raw).await?;
        self.workspace_view(&workspace).await
    }

    pub async fn get_workspace_by_owner_and_name(
        &self,
        actor: &Principal,
        owner: &UserSelector,
        name: &str,
    ) -> Result<WorkspaceView, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let owner_id = match owner {
            UserSelector::Me => Some(actor.user.id),
            UserSelector::Id(id) => Some(*id),
            UserSelector::Username(u) if is_lookup_key(u) => {
                self.store.get_user_by_username(u).await?.map(|u| u.id)
            }
            UserSelector::Username(_) => None,
        };
        let found = match owner_id {
            Some(id) if is_lookup_key(name) => {
                self.store.get_workspace_by_owner_and_name(id, name).await?
            }
            _ => None,
        };
        match found {
            Some(ws) if can_access(actor, &ws) => self.workspace_view(&ws).await,
            _ => Err(workspace_not_found()),
        }
    }

    /// Workspaces matching a Coder search query, among those the actor may see.
    pub async fn list_workspaces(
        &self,
        actor: &Principal,
        q: &str,
        page: Page,
    ) -> Result<WorkspacesView, DomainError> {
        let Some(filter) = self.workspace_filter(actor, q).await? else {
            return Ok(WorkspacesView {
                workspaces: Vec::new(),
                count: 0,
            });
        };
        let (workspaces, count) = self.store.list_workspaces(&filter, page).await?;
        let mut views = Vec::with_capacity(workspaces.len());
        let mut cache = ViewCache::default();
        for ws in &workspaces {
            views.push(self.workspace_view_cached(ws, &mut cache).await?);
        }
        Ok(WorkspacesView {
            workspaces: views,
            count,
        })
    }

    /// The same search as `list_workspaces`, as one-query summaries: for lists that need no
    /// build, agent or app details (the MCP tools).
    pub async fn list_workspace_summaries(
        &self,
        actor: &Principal,
        q: &str,
        page: Page,
    ) -> Result<(Vec<WorkspaceSummary>, i64), DomainError> {
        match self.workspace_filter(actor, q).await? {
            Some(filter) => Ok(self.store.list_workspace_summaries(&filter, page).await?),
            None => Ok((Vec::new(), 0)),
        }
    }

    /// `list_workspace_summaries` as `render` renders it, reusing the rendering of the same
    /// list while nothing it shows has changed (`list_cache`, docs/benchmarks.md). Lists of
    /// one owner's workspaces are kept (the generations count per owner); others are rendered
    /// each time. The answer depends only on the filter and page (access is decided before),
    /// so one owner's list is shared by every caller allowed to see it.
    pub async fn render_workspace_summaries<R: ListRendering>(
        &self,
        actor: &Principal,
        q: &str,
        page: Page,
        render: impl FnOnce(&[WorkspaceSummary], i64) -> R,
    ) -> Result<Arc<R>, DomainError> {
        let Some(filter) = self.workspace_filter(actor, q).await? else {
            return Ok(Arc::new(render(&[], 0)));
        };
        let Some(owner) = filter.owner_id else {
            let (found, count) = self.store.list_workspace_summaries(&filter, page).await?;
            return Ok(Arc::new(render(&found, count)));
        };
        // Read before the list, never after: a change committing in between then makes the
        // kept rendering look older than it is, never newer than it is.
        let generations = self.store.workspace_list_generations(owner).await?;
        if let Some(kept) = self.list_cache.get::<R>(&filter, page, generations) {
            return Ok(kept);
        }
        let (found, count) = self.store.list_workspace_summaries(&filter, page).await?;
        let rendered = Arc::new(render(&found, count));
        self.list_cache
            .put(filter, page, generations, Arc::clone(&rendered));
        Ok(rendered)
    }

    /// The store filter for a search by `actor`; `None` when it can match nothing (an unknown
    /// owner, or a member asking for someone else's workspaces).
    async fn workspace_filter(
        &self,
        actor: &Principal,
        q: &str,
    ) -> Result<Option<WorkspaceFilter>, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let query = WorkspaceQuery::parse(q)?;
        let mut filter = WorkspaceFilter {
            name: query.name,
            template_name: query.template,
            status: query.status,
            ..WorkspaceFilter::default()
        };
        let owner: Option<UserId> = match query.owner.as_deref() {
            None => None,
            Some("me") => Some(actor.user.id),
            Some(name) => match self.store.get_user_by_username(name).await? {
                Some(u) => Some(u.id),
                None => return Ok(None),
            },
        };
        if actor.is_owner() {
            filter.owner_id = owner;
        } else {
            if owner.is_some_and(|o| o != actor.user.id) {
                return Ok(None);
            }
            filter.owner_id = Some(actor.user.id);
        }
        Ok(Some(filter))
    }

    pub(super) async fn workspace_view(
        &self,
        workspace: &Workspace,
    ) -> Result<WorkspaceView, DomainError> {
        self.workspace_view_cached(workspace, &mut ViewCache::default())
            .await
    }

    async fn workspace_view_cached(
        &self,
        workspace: &Workspace,
        cache: &mut ViewCache,
    ) -> Result<WorkspaceView, DomainError> {
        let build = self
            .store
            .get_latest_workspace_build(workspace.id)
            .await?
            .ok_or_else(|| DomainError::internal("workspace without a build"))?;
        let build_view = self.build_view_cached(workspace, &build, cache).await?;
        let template = cache.template(self, workspace.template_id).await?;
        let org = self
            .store
            .get_organization(workspace.organization_id)
            .await?;
        Ok(WorkspaceView::new(
            workspace,
            org.as_ref(),
            template.as_ref(),
            build_view,
        ))
    }

    pub(super) async fn build_view(
        &self,
        workspace: &Workspace,
        build: &WorkspaceBuild,
    ) -> Result<WorkspaceBuildView, DomainError> {
        self.build_view_cached(workspace, build, &mut ViewCache::default())
            .await
    }

    async fn build_view_cached(
        &self,
        workspace: &Workspace,
        build: &WorkspaceBuild,
        cache: &mut ViewCache,
    ) -> Result<WorkspaceBuildView, DomainError> {
        let job = self
            .store
            .get_job(build.job_id)
            .await?
            .ok_or_else(|| DomainError::internal("build without its job"))?;
        let owner = cache.user(self, workspace.owner_id).await?;
        let initiator = cache.user(self, build.initiator_id).await?;
        let version = self
            .store
            .get_template_version(build.template_version_id)
            .await?;
        let template = cache.template(self, workspace.template_id).await?;
        let agent = self.store.get_agent_by_build(build.id).await?;
        let (apps, connection) = match &agent {
            Some(a) => (
                self.store.list_agent_apps(a.id).await?,
                self.store.get_agent_connection(a.id).await?,
            ),
            None => (Vec::new(), None),
        };
        Ok(WorkspaceBuildView::new(BuildParts {
            build,
            workspace,
            owner: owner.as_ref(),
            initiator: initiator.as_ref(),
            job: &job,
            version: version.as_ref(),
            template: template.as_ref(),
            agent: agent
                .as_ref()
                .map(|a| (a, connection.as_ref(), apps.as_slice())),
            now: self.clock.now(),
        }))
    }
}

/// Users and templates already loaded while building a list of views.
#[derive(Default)]
struct ViewCache {
    users: HashMap<UserId, Option<User>>,
    templates: HashMap<TemplateId, Option<crate::domain::Template>>,
}

impl ViewCache {
    async fn user(&mut self, services: &Services, id: UserId) -> Result<Option<User>, DomainError> {
        if let Some(u) = self.users.get(&id) {
            return Ok(u.clone());
        }
        let u = services.store.get_user_by_id(id).await?;
        self.users.insert(id, u.clone());
        Ok(u)
    }

    async fn template(
        &mut self,
        services: &Services,
        id: TemplateId,
    ) -> Result<Option<crate::domain::Template>, DomainError> {
        if let Some(t) = self.templates.get(&id) {
            return Ok(t.clone());
        }
        let t = services.store.get_template(id).await?;
        self.templates.insert(id, t.clone());
        Ok(t)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn workspace_refs_follow_coder_syntax() {
        let id = Uuid::new_v4();
        assert_eq!(
            WorkspaceRef::parse(&id.to_string()).unwrap(),
            WorkspaceRef::Id(WorkspaceId(id))
        );
        assert_eq!(
            WorkspaceRef::parse("alice/dev.main").unwrap(),
            WorkspaceRef::Name {
                owner: UserSelector::Username("alice".into()),
                name: "dev".into()
            }
        );
        assert_eq!(
            WorkspaceRef::parse("dev").unwrap(),
            WorkspaceRef::Name {
                owner: UserSelector::Me,
                name: "dev".into()
            }
        );
        assert!(WorkspaceRef::parse("alice/").is_err());
    }

    #[test]
    fn search_queries_follow_coder_syntax() {
        let q = WorkspaceQuery::parse("owner:me template:\"python\" status:running dev").unwrap();
        assert_eq!(q.owner.as_deref(), Some("me"));
        assert_eq!(q.template.as_deref(), Some("python"));
        assert_eq!(q.status, Some(WorkspaceStatus::Running));
        assert_eq!(q.name.as_deref(), Some("dev"));
        assert!(WorkspaceQuery::parse("color:red").is_err());
        assert!(WorkspaceQuery::parse("status:sleeping").is_err());
        assert!(WorkspaceQuery::parse("name:a%b").is_err());
        assert_eq!(
            WorkspaceQuery::parse("").unwrap(),
            WorkspaceQuery::default()
        );
    }
}

/// Property tests of the `q` search syntax: any query parses or is refused with validations on
/// `q`; what parses carries only values a stored name could have.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::text::is_lookup_key;
    use crate::proptest_support::{config, hostile_text, timed};

    fn query() -> impl Strategy<Value = String> {
        let term = prop_oneof![
            hostile_text(),
            (
                prop::sample::select(vec![
                    "owner:",
                    "name:",
                    "template:",
                    "status:",
                    "OWNER:",
                    "bogus:",
                    ""
                ]),
                prop_oneof![
                    hostile_text(),
                    "[a-z0-9-]{0,10}",
                    Just("\"a b\"".to_owned()),
                    Just("running".to_owned())
                ],
            )
                .prop_map(|(k, v)| format!("{k}{v}")),
        ];
        prop::collection::vec(term, 0..5).prop_map(|terms| terms.join(" "))
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn queries_parse_or_name_q(q in query()) {
            match timed("WorkspaceQuery::parse", || WorkspaceQuery::parse(&q))? {
                Ok(parsed) => {
                    for value in [&parsed.owner, &parsed.name, &parsed.template].into_iter().flatten() {
                        prop_assert!(is_lookup_key(value), "{:?}", value);
                    }
                }
                Err(DomainError::Invalid { fields, .. }) => {
                    prop_assert!(!fields.is_empty());
                    prop_assert!(fields.iter().all(|f| f.field == "q"));
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn workspace_refs_parse_or_explain(raw in hostile_text()) {
            if let Ok(WorkspaceRef::Name { name, .. }) = timed("WorkspaceRef::parse", || WorkspaceRef::parse(&raw))? {
                prop_assert!(!name.is_empty());
            }
        }
    }
}

/// The entry for a queued build: one per start, stop and delete, naming the transition.
pub(super) fn build_event(
    workspace: &Workspace,
    owner: &str,
    transition: Transition,
    build_number: i64,
) -> AuditEvent {
    AuditEvent::new("workspace.build", "workspace", workspace.id.0).details(serde_json::json!({
        "name": workspace.name,
        "owner": owner,
        "transition": transition.as_str(),
        "build_number": build_number,
    }))
}
