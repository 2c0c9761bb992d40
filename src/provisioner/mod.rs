//! Provisioners turn builds into running workspaces; the job runner feeds them from the queue.
//!
//! The built-in `local` provisioner makes each workspace a directory on this host whose commands
//! run in a bubblewrap sandbox. Other provisioners (Docker, Kubernetes) implement the same trait.

mod archive;
pub mod files;
pub mod local;
mod process;
pub mod runner;
pub mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use crate::domain::manifest::{Manifest, parameter_env_name};
use crate::domain::{AGENT_NAME, JobId, ParameterValue, WorkspaceId};

pub use archive::{ArchiveError, TemplateSource, read_template_source, validate_archive};
pub use files::{DirEntry, DirListing, EditResult, FileContent, FileEdit, FileEdits};
pub use local::{LocalProvisioner, LocalProvisionerOptions};

/// What a provisioner needs to know about the workspace it acts on.
#[derive(Debug, Clone)]
pub struct WorkspaceContext {
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub owner_name: String,
    /// Every variable the workspace's processes get beyond the sandbox's own (`HOME`, `PATH`, …).
    pub env: BTreeMap<String, String>,
    /// The working directory, as an absolute path inside the workspace.
    pub dir: String,
}

impl WorkspaceContext {
    /// The context of a workspace built from `manifest` with `parameters`.
    pub fn new(
        workspace_id: WorkspaceId,
        workspace_name: &str,
        owner_name: &str,
        manifest: &Manifest,
        parameters: &[ParameterValue],
    ) -> Self {
        let mut env = BTreeMap::new();
        env.extend(manifest.agent.env.clone());
        for p in parameters {
            env.insert(parameter_env_name(&p.name), p.value.clone());
        }
        env.insert("CODER".into(), "true".into());
        env.insert("CODER_WORKSPACE_NAME".into(), workspace_name.to_owned());
        env.insert("CODER_WORKSPACE_OWNER_NAME".into(), owner_name.to_owned());
        env.insert("CODER_WORKSPACE_ID".into(), workspace_id.to_string());
        env.insert("CODER_WORKSPACE_AGENT_NAME".into(), AGENT_NAME.into());
        WorkspaceContext {
            workspace_id,
            workspace_name: workspace_name.to_owned(),
            owner_name: owner_name.to_owned(),
            env,
            dir: manifest.agent.dir.clone(),
        }
    }
}

/// What `start` needs beyond the context.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub context: WorkspaceContext,
    /// The template's archive; its files are copied into the home on the first start.
    pub archive: Arc<Vec<u8>>,
    pub startup_script: String,
}

/// Output of the agent's startup script, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Line(String),
    /// The startup script finished with this exit code; later lines come from processes it left
    /// running.
    ScriptExited(i32),
}

/// A started agent: its output until the workspace stops. The channel closes when every process
/// of the agent has ended.
#[derive(Debug)]
pub struct AgentProcess {
    pub events: mpsc::Receiver<AgentEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: String,
    pub timeout: Duration,
    pub background: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub exit_code: i32,
    pub timed_out: bool,
    pub truncated: bool,
}

/// Why a provisioner operation failed; each says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// The request cannot work (a path outside the workspace, a failed edit).
    #[error("{0}")]
    Invalid(String),
    /// A file or directory does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The provisioner cannot run workspaces on this server (no sandbox available).
    #[error("{0}")]
    Unavailable(String),
    /// Too many processes, or the workspace is busy.
    #[error("{0}")]
    Busy(String),
    /// The host failed (I/O, spawning); the cause is logged.
    #[error("{0}")]
    Internal(String),
}

impl ProvisionError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        ProvisionError::Internal(format!("{context}: {err}"))
    }
}

/// Runs workspaces. Every method is safe to call for a workspace in any state.
#[async_trait]
pub trait Provisioner: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// Why this provisioner cannot run workspaces here, if it cannot.
    fn unavailable(&self) -> Option<String>;

    /// Prepares the workspace (its home, from the template's files, on the first start), ends any
    /// process still running in it, and starts its agent with the startup script.
    async fn start(&self, spec: StartSpec) -> Result<AgentProcess, ProvisionError>;

    /// Ends every process of the workspace; its files stay.
    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError>;

    /// Stops the workspace and removes its files.
    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError>;

    /// Runs a shell command in the workspace.
    async fn exec(
        &self,
        context: &WorkspaceContext,
        request: ExecRequest,
    ) -> Result<ExecOutput, ProvisionError>;

    async fn list_dir(
        &self,
        workspace: WorkspaceId,
        path: &str,
    ) -> Result<DirListing, ProvisionError>;

    async fn read_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<FileContent, ProvisionError>;

    /// Writes (creating or replacing) a file; returns its absolute path inside the workspace.
    async fn write_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        content: Vec<u8>,
    ) -> Result<String, ProvisionError>;

    /// Applies search/replace edits; nothing is written unless every edit applies.
    async fn edit_files(
        &self,
        workspace: WorkspaceId,
        files: Vec<FileEdits>,
    ) -> Result<Vec<EditResult>, ProvisionError>;
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
    pub provisioner: Arc<dyn Provisioner>,
    pub signals: Arc<JobSignals>,
    pub limits: CommandLimits,
}

impl Provisioning {
    pub fn new(provisioner: Arc<dyn Provisioner>, limits: CommandLimits) -> Self {
        Provisioning {
            provisioner,
            signals: Arc::new(JobSignals::default()),
            limits,
        }
    }
}
