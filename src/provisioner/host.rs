//! A host's provisioners behind one: the bubblewrap `local` one and the `docker` one, each
//! workspace going to the kind its template names.

use async_trait::async_trait;

use super::docker::{DockerOptions, DockerProvisioner};
use super::local::{LocalProvisioner, LocalProvisionerOptions};
use super::{Held, ProvisionError, Provisioner, StartSpec};
use crate::domain::WorkspaceId;
use crate::domain::container::ProvisionerKind;

#[derive(Debug)]
pub struct HostProvisioner {
    pub local: LocalProvisioner,
    pub docker: DockerProvisioner,
}

impl HostProvisioner {
    /// Both of the host's provisioners, sharing the agent binary, socket and URL; `docker_host`
    /// is the engine's address, and `provisioner_id` labels what the Docker one makes.
    pub async fn new(
        local: LocalProvisionerOptions,
        docker_host: &str,
        provisioner_id: &str,
    ) -> Self {
        let docker = DockerOptions {
            host: docker_host.to_owned(),
            agent_binary: local.agent_binary.clone(),
            agent_socket: local.agent_socket.clone(),
            agent_url: local.agent_url.clone(),
            provisioner_id: provisioner_id.to_owned(),
        };
        HostProvisioner {
            local: LocalProvisioner::new(local).await,
            docker: DockerProvisioner::connect(docker).await,
        }
    }
}

#[async_trait]
impl Provisioner for HostProvisioner {
    fn name(&self) -> &'static str {
        "host"
    }

    /// Only when neither kind can run anything here; a template of a kind this host lacks is
    /// refused at its start, with that kind's reason.
    fn unavailable(&self) -> Option<String> {
        match (self.local.unavailable(), self.docker.unavailable()) {
            (Some(local), Some(_)) => Some(local),
            _ => None,
        }
    }

    async fn start(&self, spec: StartSpec) -> Result<Vec<String>, ProvisionError> {
        let (provisioner, why): (&dyn Provisioner, _) = match spec.kind {
            ProvisionerKind::Local => (&self.local, self.local.unavailable()),
            ProvisionerKind::Docker => (&self.docker, self.docker.unavailable()),
        };
        if let Some(why) = why {
            return Err(ProvisionError::Unavailable(why));
        }
        provisioner.start(spec).await
    }

    /// A workspace is of one kind; stopping the other finds nothing and does nothing.
    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.local.stop(workspace).await?;
        self.docker.stop(workspace).await
    }

    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.local.delete(workspace).await?;
        self.docker.delete(workspace).await
    }

    async fn inventory(&self) -> Result<Vec<Held>, ProvisionError> {
        let mut held = self.local.inventory().await?;
        held.extend(self.docker.inventory().await?);
        Ok(held)
    }
}
