//! Provisioners turn builds into running workspaces: they prepare a workspace's home, start
//! its agent (`coder agent`) with the agent's token, and stop or remove it. They never run
//! workspace commands themselves: the agent does, and the server reaches it over the agent's
//! own connection.
//!
//! The built-in `local` provisioner makes each workspace a directory on this host and runs its
//! agent in a bubblewrap sandbox. Other provisioners (Docker, Kubernetes) implement the same
//! trait.

mod archive;
mod cgroups;
mod disk;
pub mod docker;
mod host;
pub mod local;
pub mod sandbox;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::domain::{JobId, WorkspaceId};

pub use crate::domain::provisioner::WorkspaceLimits;
pub use archive::{ArchiveError, TemplateSource, read_template_source, validate_archive};
pub use docker::{DockerOptions, DockerProvisioner};
pub use host::HostProvisioner;
pub use local::{LocalProvisioner, LocalProvisionerOptions};

/// What `start` needs to know about the workspace it starts.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub owner_name: String,
    /// The template's archive; its files are copied into the home on the first start.
    pub archive: Arc<Vec<u8>>,
    /// The new agent's token, handed to it as `CODER_AGENT_TOKEN`.
    pub agent_token: String,
    pub limits: WorkspaceLimits,
    /// Which provisioner of the host builds it, and its container for `docker`.
    pub kind: crate::domain::container::ProvisionerKind,
    pub docker: Option<crate::domain::container::DockerSpec>,
}

/// Why a provisioner operation failed; each says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// The template cannot work (a bad archive).
    #[error("{0}")]
    Invalid(String),
    /// The provisioner cannot run workspaces on this server (no sandbox available).
    #[error("{0}")]
    Unavailable(String),
    /// The host failed (I/O, spawning); the cause is in the message.
    #[error("{0}")]
    Internal(String),
}

impl ProvisionError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        ProvisionError::Internal(format!("{context}: {err}"))
    }
}

/// Runs workspaces. Every method is safe to call for a workspace in any state, and works after
/// a restart of the server: what a provisioner needs to find a workspace again lives on its
/// host, not in the server's memory.
#[async_trait]
pub trait Provisioner: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// Why this provisioner cannot run workspaces here, if it cannot.
    fn unavailable(&self) -> Option<String>;

    /// Prepares the workspace (its home, from the template's files, on the first start), ends
    /// any agent still running in it, and starts its agent. Returns notes for the build log.
    async fn start(&self, spec: StartSpec) -> Result<Vec<String>, ProvisionError>;

    /// Ends every process of the workspace; its files stay.
    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError>;

    /// Stops the workspace and removes its files.
    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError>;

    /// What this provisioner holds on its host, to reconcile with the database after a crash:
    /// each workspace it has files or a container for, with whether its processes run. A
    /// provisioner that cannot tell holds nothing.
    async fn inventory(&self) -> Result<Vec<Held>, ProvisionError> {
        Ok(Vec::new())
    }
}

/// A workspace a provisioner holds (`Provisioner::inventory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub workspace: WorkspaceId,
    pub running: bool,
}

/// In-process signals between the services and this server's job runner. Other replicas learn
/// the same things from the database by polling.
#[derive(Debug, Default)]
pub struct JobSignals {
    queued: Notify,
    cancels: Mutex<HashMap<JobId, Arc<Notify>>>,
}

impl JobSignals {
    /// Wakes the runner: a job was queued.
    pub fn job_queued(&self) {
        self.queued.notify_one();
    }

    pub(crate) async fn wait_for_job(&self) {
        self.queued.notified().await;
    }

    /// Tells the runner, if it runs the job, to cancel it now.
    pub fn cancel(&self, job: JobId) {
        let notify = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job)
            .cloned();
        if let Some(n) = notify {
            n.notify_one();
        }
    }

    pub(crate) fn watch_cancel(&self, job: JobId) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job, notify.clone());
        notify
    }

    pub(crate) fn unwatch_cancel(&self, job: JobId) {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job);
    }
}

/// Limits on commands run through the API.
#[derive(Debug, Clone, Copy)]
pub struct CommandLimits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
}

impl Default for CommandLimits {
    fn default() -> Self {
        CommandLimits {
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(300),
        }
    }
}

/// The provisioner with its signals and limits, as the services and the runner share them.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// The built-in provisioner of this server.
    pub provisioner: Arc<dyn Provisioner>,
    /// Its id: the `provisioner_id` tag of the workspaces it holds.
    pub provisioner_id: String,
    pub signals: Arc<JobSignals>,
    pub limits: CommandLimits,
    /// How every workspace is confined, whichever provisioner starts it.
    pub workspace_limits: WorkspaceLimits,
}

impl Provisioning {
    pub fn new(
        provisioner: Arc<dyn Provisioner>,
        provisioner_id: String,
        limits: CommandLimits,
        workspace_limits: WorkspaceLimits,
    ) -> Self {
        Provisioning {
            provisioner,
            provisioner_id,
            signals: Arc::new(JobSignals::default()),
            limits,
            workspace_limits,
        }
    }
}

/// A provisioner's id, kept in its data directory from the first start: the `provisioner_id`
/// tag of the workspaces whose files it holds.
pub fn provisioner_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let file = data_dir.join("provisioner-id");
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&file, &id)?;
            Ok(id)
        }
    }
}
