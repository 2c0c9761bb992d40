//! Provisioner daemons connected to this replica (`coder provisioner start` on other hosts),
//! and the provisioners the job runner feeds: this server's own, and one per daemon, which
//! runs the `Provisioner` operations on its host over the daemon's WebSocket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;

use super::rpc_link::{Link, LinkError, LinkSession};
use crate::clock::SharedClock;
use crate::domain::ReplicaId;
use crate::domain::WorkspaceId;
use crate::domain::agent::{AgentOpError, AgentOutcome};
use crate::domain::provisioner::{
    DaemonRequest, DaemonStart, HeldWorkspace, ProvisionerDaemon, ProvisionerTags,
};
use crate::provisioner::{Held, ProvisionError, Provisioner, StartSpec};
use crate::store::{SharedStore, StoreError};

/// How long a daemon may take to start, stop or delete a workspace (an archive to unpack, a
/// disk to make): past it, the build fails.
const DAEMON_OP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a daemon may take to list what its host holds (a directory listing and an engine
/// query); a pass that times out is retried at the next.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(30);

/// A provisioner the job runner feeds: its id (the `provisioner_id` tag of the workspaces
/// whose files it holds) and its other tags.
#[derive(Debug, Clone)]
pub struct ProvisionerSlot {
    pub id: String,
    pub tags: ProvisionerTags,
    pub provisioner: Arc<dyn Provisioner>,
}

impl ProvisionerSlot {
    /// The tag sets of the jobs it takes: every subset of its tags and its id.
    pub fn tag_sets(&self) -> Vec<String> {
        self.tags.placed_on(&self.id).subsets()
    }
}

#[derive(Debug)]
struct Daemon {
    name: String,
    tags: ProvisionerTags,
    link: Arc<Link>,
}

#[derive(Debug)]
pub struct DaemonLinks {
    daemons: Mutex<HashMap<String, Daemon>>,
    next_session: AtomicU64,
    /// Woken when a daemon connects: a daemon that comes back may have lost workspaces (its
    /// host restarted) or missed a delete, so the job runner reconciles it at once.
    connected: tokio::sync::Notify,
    /// Where every replica reads who is connected where (`provisioner_daemons`).
    store: SharedStore,
    clock: SharedClock,
    replica: ReplicaId,
}

impl DaemonLinks {
    pub fn new(store: SharedStore, clock: SharedClock, replica: ReplicaId) -> Self {
        DaemonLinks {
            daemons: Mutex::default(),
            next_session: AtomicU64::default(),
            connected: tokio::sync::Notify::new(),
            store,
            clock,
            replica,
        }
    }

    /// Takes `daemon`'s connection (replacing an older one of the same daemon) and records it
    /// as held by this replica.
    pub async fn open(
        self: &Arc<Self>,
        mut daemon: ProvisionerDaemon,
    ) -> Result<LinkSession, StoreError> {
        let now = self.clock.now();
        daemon.replica_id = Some(self.replica);
        daemon.created_at = now;
        daemon.last_seen_at = now;
        self.store.upsert_provisioner_daemon(&daemon).await?;
        let (link, session) = Link::open(self.next_session.fetch_add(1, Ordering::Relaxed));
        let number = link.session();
        let id = daemon.id;
        let entry = Daemon {
            name: daemon.name,
            tags: daemon.tags,
            link,
        };
        let previous = self.lock().insert(id.clone(), entry);
        if let Some(old) = previous {
            old.link.close();
        }
        self.connected.notify_one();
        let links = self.clone();
        Ok(session.on_end(move || {
            let mut daemons = links.lock();
            if daemons.get(&id).is_some_and(|d| d.link.session() == number) {
                daemons.remove(&id);
                drop(daemons);
                // A reconnection racing this is healed by the next heartbeat (`refresh`).
                let store = links.store.clone();
                let (replica, now) = (links.replica, links.clock.now());
                tokio::spawn(async move {
                    if let Err(err) = store.release_provisioner_daemon(&id, replica, now).await {
                        tracing::warn!(error = %err, "could not record a provisioner daemon's leaving");
                    }
                });
            }
        }))
    }

    /// This replica's heartbeat for the daemons connected to it.
    pub async fn refresh(&self) {
        let connected: Vec<String> = self.lock().keys().cloned().collect();
        if connected.is_empty() {
            return;
        }
        let now = self.clock.now();
        if let Err(err) = self
            .store
            .refresh_provisioner_daemons(self.replica, &connected, now)
            .await
            && !err.is_unavailable()
        {
            tracing::warn!(error = %err, "could not refresh this replica's provisioner daemons");
        }
    }

    /// Resolves when a daemon has connected since the last call.
    pub async fn wait_for_connection(&self) {
        self.connected.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Daemon>> {
        self.daemons.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One provisioner per connected daemon.
    pub fn slots(&self) -> Vec<ProvisionerSlot> {
        self.lock()
            .iter()
            .map(|(id, d)| ProvisionerSlot {
                id: id.clone(),
                tags: d.tags.clone(),
                provisioner: Arc::new(RemoteProvisioner {
                    name: d.name.clone(),
                    link: d.link.clone(),
                }),
            })
            .collect()
    }

    /// Ends every link (the server is stopping); daemons reconnect to a running replica.
    pub fn close_all(&self) {
        for (_, daemon) in self.lock().drain() {
            daemon.link.close();
        }
    }
}

/// A daemon's provisioner, driven over its link.
#[derive(Debug)]
struct RemoteProvisioner {
    name: String,
    link: Arc<Link>,
}

impl RemoteProvisioner {
    async fn call(
        &self,
        request: DaemonRequest,
        timeout: Duration,
    ) -> Result<serde_json::Value, ProvisionError> {
        match self.link.call(&request, timeout).await {
            Ok(AgentOutcome::Result(value)) => Ok(value),
            Ok(AgentOutcome::Error(e)) => Err(match e {
                AgentOpError::Invalid(m) => ProvisionError::Invalid(m),
                AgentOpError::Busy(m) => ProvisionError::Unavailable(m),
                AgentOpError::NotFound(m) | AgentOpError::Internal(m) => {
                    ProvisionError::Internal(format!("provisioner daemon {}: {m}", self.name))
                }
            }),
            Err(e @ (LinkError::Lost | LinkError::NotConnected | LinkError::Relay(_))) => {
                Err(ProvisionError::Unavailable(format!(
                    "The provisioner daemon {} went away ({e}); the build can be retried once it reconnects.",
                    self.name
                )))
            }
            Err(e @ LinkError::TimedOut(_)) => Err(ProvisionError::Internal(format!(
                "The provisioner daemon {} {e}.",
                self.name
            ))),
        }
    }
}

#[async_trait]
impl Provisioner for RemoteProvisioner {
    fn name(&self) -> &'static str {
        "daemon"
    }

    fn unavailable(&self) -> Option<String> {
        None
    }

    async fn start(&self, spec: StartSpec) -> Result<Vec<String>, ProvisionError> {
        let request = DaemonRequest::Start(Box::new(DaemonStart {
            workspace_id: spec.workspace_id.0,
            workspace_name: spec.workspace_name,
            owner_name: spec.owner_name,
            archive: base64::engine::general_purpose::STANDARD.encode(spec.archive.as_slice()),
            agent_token: spec.agent_token,
            limits: spec.limits,
            kind: spec.kind,
            docker: spec.docker,
        }));
        let mut notes: Vec<String> =
            serde_json::from_value(self.call(request, DAEMON_OP_TIMEOUT).await?).map_err(|e| {
                ProvisionError::internal("the daemon answered in an unexpected shape", e)
            })?;
        notes.insert(0, format!("Provisioned by daemon {}.", self.name));
        Ok(notes)
    }

    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.call(
            DaemonRequest::Stop {
                workspace_id: workspace.0,
            },
            DAEMON_OP_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.call(
            DaemonRequest::Delete {
                workspace_id: workspace.0,
            },
            DAEMON_OP_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    async fn inventory(&self) -> Result<Vec<Held>, ProvisionError> {
        let held: Vec<HeldWorkspace> = serde_json::from_value(
            self.call(DaemonRequest::Inventory, INVENTORY_TIMEOUT)
                .await?,
        )
        .map_err(|e| ProvisionError::internal("the daemon answered in an unexpected shape", e))?;
        Ok(held
            .into_iter()
            .map(|h| Held {
                workspace: WorkspaceId(h.workspace_id),
                running: h.running,
            })
            .collect())
    }
}
