//! Provisioner keys (owners make them; each gives its daemons tags) and the daemons that sign
//! in with them.

use std::collections::BTreeMap;

use super::Services;
use super::daemons::DaemonLinks;
use super::rpc_link::LinkSession;
use super::templates::require_scope;
use super::{require_owner, validate};
use crate::domain::provisioner::{
    DaemonStatus, ProvisionerDaemon, ProvisionerKey, ProvisionerKeyId, ProvisionerTags,
};
use crate::domain::{DomainError, FieldError, Principal, Scope};
use crate::secret;
use crate::store::{Constraint, ListedDaemon, StoreError};

/// A daemon's name: what builds and logs call it.
const MAX_DAEMON_NAME: usize = 64;

/// A key just made: the secret, shown once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedProvisionerKey {
    pub key: String,
}

/// Coder's `ProvisionerKey` as the API lists it (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProvisionerKeyView {
    pub id: uuid::Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub organization: uuid::Uuid,
    pub name: String,
    pub tags: ProvisionerTags,
}

impl From<&ProvisionerKey> for ProvisionerKeyView {
    fn from(k: &ProvisionerKey) -> Self {
        ProvisionerKeyView {
            id: k.id.0,
            created_at: k.created_at,
            organization: k.organization_id.0,
            name: k.name.clone(),
            tags: k.tags.clone(),
        }
    }
}

/// Coder's `ProvisionerDaemon` as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProvisionerDaemonView {
    pub id: String,
    pub organization_id: uuid::Uuid,
    pub key_id: uuid::Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub name: String,
    pub version: String,
    /// What a daemon's host runs workspaces with.
    pub provisioners: [&'static str; 2],
    pub tags: ProvisionerTags,
    /// `None` once the key it signed in with was deleted.
    pub key_name: Option<String>,
    pub status: DaemonStatus,
}

impl ProvisionerDaemonView {
    fn of(listed: ListedDaemon, now: chrono::DateTime<chrono::Utc>) -> Self {
        let status = listed.daemon.status(listed.running_job, now);
        let d = listed.daemon;
        ProvisionerDaemonView {
            id: d.id,
            organization_id: d.organization_id.0,
            key_id: d.key_id.0,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
            name: d.name,
            version: d.version,
            provisioners: ["local", "docker"],
            tags: d.tags,
            key_name: listed.key_name,
            status,
        }
    }
}

impl Services {
    fn daemon_links(&self) -> Result<&std::sync::Arc<DaemonLinks>, DomainError> {
        self.daemon_links
            .as_ref()
            .ok_or_else(|| DomainError::internal("provisioner daemons are not served here"))
    }

    pub async fn create_provisioner_key(
        &self,
        actor: &Principal,
        org: &str,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<CreatedProvisionerKey, DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let org = self.get_organization(actor, org).await?;
        validate::name("name", name)
            .map_err(|e| DomainError::invalid_fields("Invalid provisioner key.", vec![e]))?;
        let tags = ProvisionerTags::from_user(tags, "tags")?;
        let key = format!("coder-pk-{}", secret::random_alphanumeric(40));
        let record = ProvisionerKey {
            id: ProvisionerKeyId::new(),
            organization_id: org.id,
            name: name.to_owned(),
            tags,
            created_at: self.clock.now(),
        };
        self.store
            .insert_provisioner_key(&record, &secret::sha256(key.as_bytes()))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Constraint::ProvisionerKeyName) => DomainError::conflict(
                    format!("A provisioner key named {name:?} already exists."),
                    Some("name"),
                ),
                other => other.into(),
            })?;
        Ok(CreatedProvisionerKey { key })
    }

    pub async fn list_provisioner_keys(
        &self,
        actor: &Principal,
        org: &str,
    ) -> Result<Vec<ProvisionerKeyView>, DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesRead)?;
        let org = self.get_organization(actor, org).await?;
        let keys = self.store.list_provisioner_keys(org.id).await?;
        Ok(keys.iter().map(ProvisionerKeyView::from).collect())
    }

    /// Deletes the key; daemons already connected with it stay until they reconnect.
    pub async fn delete_provisioner_key(
        &self,
        actor: &Principal,
        org: &str,
        name: &str,
    ) -> Result<(), DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesWrite)?;
        let org = self.get_organization(actor, org).await?;
        if self.store.delete_provisioner_key(org.id, name).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!(
                "No provisioner key named {name:?}."
            )))
        }
    }

    /// The organization's daemons, connected to any replica or gone, with their status.
    pub async fn list_provisioner_daemons(
        &self,
        actor: &Principal,
        org: &str,
    ) -> Result<Vec<ProvisionerDaemonView>, DomainError> {
        require_owner(actor)?;
        require_scope(actor, Scope::TemplatesRead)?;
        let org = self.get_organization(actor, org).await?;
        let now = self.clock.now();
        Ok(self
            .store
            .list_provisioner_daemons(org.id)
            .await?
            .into_iter()
            .map(|listed| ProvisionerDaemonView::of(listed, now))
            .collect())
    }

    /// Signs a daemon in with its key and opens the link the runner drives it through. `id` is
    /// the daemon's own persistent id (its workspaces' `provisioner_id` tag).
    pub async fn open_daemon_session(
        &self,
        presented_key: &str,
        id: &str,
        name: &str,
        version: &str,
    ) -> Result<LinkSession, DomainError> {
        let key = match presented_key {
            "" => None,
            k => {
                self.store
                    .get_provisioner_key_by_secret(&secret::sha256(k.as_bytes()))
                    .await?
            }
        };
        let Some(key) = key else {
            return Err(DomainError::Unauthenticated(
                "A valid provisioner key is required in the Coder-Provisioner-Daemon-Key header; an owner makes one with `coder provisioner keys create`.".into(),
            ));
        };
        let bad = |field: &str, detail: &str| {
            DomainError::invalid_fields(
                "Invalid provisioner daemon.",
                vec![FieldError::new(field, detail)],
            )
        };
        let Ok(id) = uuid::Uuid::parse_str(id) else {
            return Err(bad(
                "id",
                "The daemon's id must be a UUID (kept in its data directory).",
            ));
        };
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_DAEMON_NAME
            || name.chars().any(char::is_control)
        {
            return Err(bad(
                "name",
                "The daemon's name must be 1-64 printable characters.",
            ));
        }
        let version = version.trim();
        if version.chars().count() > MAX_DAEMON_NAME || version.chars().any(char::is_control) {
            return Err(bad(
                "version",
                "The daemon's version must be at most 64 printable characters.",
            ));
        }
        tracing::info!(daemon = name, key = %key.name, "provisioner daemon connected");
        let now = self.clock.now();
        let daemon = ProvisionerDaemon {
            // One text form, the one its workspaces' `provisioner_id` is compared with.
            id: id.to_string(),
            organization_id: key.organization_id,
            key_id: key.id,
            name: name.to_owned(),
            version: version.to_owned(),
            tags: key.tags.clone(),
            replica_id: None,
            created_at: now,
            last_seen_at: now,
        };
        let session = self.daemon_links()?.open(daemon).await?;
        // A daemon is a provisioner like the built-in one: wake the runner for its jobs.
        if let Ok(p) = self.provisioning() {
            p.signals.job_queued();
        }
        Ok(session)
    }
}
