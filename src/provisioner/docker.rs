//! The `docker` provisioner: each workspace is a container on the provisioner's Docker engine,
//! talked to through the Engine API (`bollard`), never by parsing `docker` output.
//!
//! The home is a named volume that outlives the container (stop removes the container and keeps
//! the volume; delete removes both). The agent binary and the agent socket's directory are bound
//! into the container read-only, so the agent reaches the server through the socket and the
//! container needs no network (`none` by default). Containers run as uid 1000 with every
//! capability dropped, `no-new-privileges`, and the server's process, memory and CPU limits;
//! never privileged, never with the Docker socket. Every container and volume carries labels
//! naming its workspace, so what a provisioner owns can be found again after a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, ListContainersOptions,
    ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use sha2::Digest;

use super::sandbox::{AGENT_BINARY_INSIDE, SOCKET_DIR_INSIDE};
use super::{Held, ProvisionError, Provisioner, StartSpec, archive};
use crate::domain::container::DockerSpec;
use crate::domain::{WORKSPACE_HOME, WorkspaceId};

/// The label naming the workspace a container or volume belongs to.
pub const WORKSPACE_LABEL: &str = "coder.workspace_id";
/// The label marking what this provisioner made, with the provisioner's id as its value.
pub const PROVISIONER_LABEL: &str = "coder.provisioner_id";
/// The uid (and gid) the agent and the workspace's processes run as.
const WORKSPACE_UID: u32 = 1000;
/// How long `docker stop` waits before it kills.
const STOP_GRACE_SECS: i32 = 5;

#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The engine's address (`DOCKER_HOST`, or `unix:///var/run/docker.sock`).
    pub host: String,
    /// The `coder` binary agents run from, bound into every container.
    pub agent_binary: PathBuf,
    /// The agent socket; its directory is bound into every container.
    pub agent_socket: PathBuf,
    /// The server's URL when the socket only forwards to it (a daemon's), else `None`.
    pub agent_url: Option<url::Url>,
    /// This provisioner's id, on the labels of what it makes.
    pub provisioner_id: String,
}

#[derive(Debug)]
pub struct DockerProvisioner {
    options: DockerOptions,
    docker: Option<Docker>,
    /// Why the engine cannot be used, when it cannot.
    unavailable: Option<String>,
}

fn container_name(workspace: WorkspaceId) -> String {
    format!("coder-{workspace}")
}

fn volume_name(workspace: WorkspaceId) -> String {
    format!("coder-{workspace}-home")
}

fn engine_error(host: &str, what: &str, e: bollard::errors::Error) -> ProvisionError {
    ProvisionError::Internal(format!("Docker engine at {host}: {what}: {e}"))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerProvisioner {
    /// Connects to the engine and checks it answers; a provisioner that cannot reach it says
    /// so on every start, naming the address.
    pub async fn connect(options: DockerOptions) -> Self {
        let connected = if let Some(path) = options.host.strip_prefix("unix://").or_else(|| {
            options
                .host
                .starts_with('/')
                .then_some(options.host.as_str())
        }) {
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&options.host, 120, bollard::API_DEFAULT_VERSION)
        };
        let (docker, unavailable) = match connected {
            Ok(docker) => match docker.ping().await {
                Ok(_) => (Some(docker), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "The Docker engine at {} does not answer ({e}). Start dockerd, or point --docker-host (DOCKER_HOST) at it.",
                        options.host
                    )),
                ),
            },
            Err(e) => (
                None,
                Some(format!(
                    "Cannot use the Docker engine at {} ({e}); set --docker-host (DOCKER_HOST) to its socket, e.g. unix:///var/run/docker.sock.",
                    options.host
                )),
            ),
        };
        match &unavailable {
            None => tracing::info!(host = %options.host, "docker provisioner ready"),
            Some(why) => {
                tracing::warn!(reason = %why, "container workspaces cannot start until this is fixed")
            }
        }
        DockerProvisioner {
            options,
            docker,
            unavailable,
        }
    }

    fn engine(&self) -> Result<&Docker, ProvisionError> {
        match (&self.docker, &self.unavailable) {
            (Some(d), _) => Ok(d),
            (None, why) => Err(ProvisionError::Unavailable(
                why.clone()
                    .unwrap_or_else(|| "The Docker engine is not connected.".into()),
            )),
        }
    }

    fn labels(&self, workspace: WorkspaceId) -> HashMap<String, String> {
        HashMap::from([
            (WORKSPACE_LABEL.to_owned(), workspace.to_string()),
            (
                PROVISIONER_LABEL.to_owned(),
                self.options.provisioner_id.clone(),
            ),
        ])
    }

    /// The image to run: the template's, pulled if the engine lacks it, or one built from its
    /// archive (cached by the build context's hash). Returns the image and notes.
    async fn image(
        &self,
        spec: &DockerSpec,
        archive: &Arc<Vec<u8>>,
    ) -> Result<(String, Vec<String>), ProvisionError> {
        let docker = self.engine()?;
        let host = &self.options.host;
        if let Some(image) = &spec.image {
            match docker.inspect_image(image).await {
                Ok(_) => return Ok((image.clone(), Vec::new())),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(engine_error(host, "cannot inspect the image", e)),
            }
            let mut pull = docker.create_image(
                Some(CreateImageOptions {
                    from_image: Some(image.clone()),
                    ..Default::default()
                }),
                None,
                None,
            );
            while let Some(step) = pull.next().await {
                step.map_err(|e| {
                    ProvisionError::Invalid(format!(
                        "The image {image} is not on the Docker engine at {host} and could not be pulled ({e}). Build or load it there, or name another image in docker.image."
                    ))
                })?;
            }
            return Ok((image.clone(), vec![format!("Pulled the image {image}.")]));
        }
        let dir = spec.build.clone().unwrap_or_default();
        let data = archive.clone();
        let context = tokio::task::spawn_blocking(move || build_context(&data, &dir))
            .await
            .map_err(|e| ProvisionError::internal("the build context task failed", e))??;
        let tag = format!(
            "coderd-template:{}",
            &hex(&sha2::Sha256::digest(&context))[..16]
        );
        match docker.inspect_image(&tag).await {
            Ok(_) => return Ok((tag, vec!["The template's image is already built.".into()])),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(host, "cannot inspect the image", e)),
        }
        let mut build = docker.build_image(
            BuildImageOptions {
                dockerfile: "Dockerfile".into(),
                t: Some(tag.clone()),
                rm: true,
                forcerm: true,
                ..Default::default()
            },
            None,
            Some(bollard::body_full(context.into())),
        );
        let mut output = Vec::new();
        while let Some(step) = build.next().await {
            let info = step.map_err(|e| {
                ProvisionError::Invalid(format!(
                    "Building the template's image failed: {e}. {}",
                    output.join(" ")
                ))
            })?;
            if let Some(line) = info
                .stream
                .as_deref()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                output.push(line.to_owned());
                if output.len() > 20 {
                    output.remove(0);
                }
            }
        }
        let mut notes = vec![format!("Built the template's image {tag}:")];
        notes.extend(output);
        Ok((tag, notes))
    }

    /// Makes the home volume on the first start and fills it with the template's files, owned
    /// by the workspace's user; true when it was made now.
    async fn home(
        &self,
        workspace: WorkspaceId,
        image: &str,
        archive: &Arc<Vec<u8>>,
    ) -> Result<bool, ProvisionError> {
        let docker = self.engine()?;
        let host = &self.options.host;
        let volume = volume_name(workspace);
        match docker.inspect_volume(&volume).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(host, "cannot inspect the home volume", e)),
        }
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(self.labels(workspace)),
                ..Default::default()
            })
            .await
            .map_err(|e| engine_error(host, "cannot create the home volume", e))?;
        // A short-lived container fills the volume: the archive goes in while it is created
        // (extracted safely on this host first, then packed again), then it gives the files to
        // the workspace's user with the image's own chown, with only the capabilities that
        // needs.
        let data = archive.clone();
        let files = tokio::task::spawn_blocking(move || home_tar(&data))
            .await
            .map_err(|e| ProvisionError::internal("the home archive task failed", e))??;
        let init = format!("{}-init", container_name(workspace));
        let _ = self.remove_container(&init).await;
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(init.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.to_owned()),
                    user: Some("0:0".into()),
                    entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
                    cmd: Some(vec![format!(
                        "chown -R {WORKSPACE_UID}:{WORKSPACE_UID} {WORKSPACE_HOME}"
                    )]),
                    labels: Some(self.labels(workspace)),
                    host_config: Some(HostConfig {
                        binds: Some(vec![format!("{volume}:{WORKSPACE_HOME}")]),
                        network_mode: Some("none".into()),
                        cap_drop: Some(vec!["ALL".into()]),
                        cap_add: Some(vec!["CHOWN".into(), "DAC_OVERRIDE".into(), "FOWNER".into()]),
                        security_opt: Some(vec!["no-new-privileges".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                engine_error(host, "cannot create the container that fills the home", e)
            })?;
        let filled = async {
            docker
                .upload_to_container(
                    &init,
                    Some(UploadToContainerOptions {
                        path: WORKSPACE_HOME.into(),
                        ..Default::default()
                    }),
                    bollard::body_full(files.into()),
                )
                .await
                .map_err(|e| engine_error(host, "cannot copy the template's files", e))?;
            docker
                .start_container(&init, None)
                .await
                .map_err(|e| engine_error(host, "cannot start the container that fills the home", e))?;
            let mut wait = docker.wait_container(&init, None::<WaitContainerOptions>);
            while let Some(status) = wait.next().await {
                match status {
                    Ok(s) if s.status_code != 0 => {
                        return Err(ProvisionError::Invalid(format!(
                            "Giving the home to the workspace user failed (exit {}): the image needs /bin/sh and chown.",
                            s.status_code
                        )));
                    }
                    Ok(_) => {}
                    Err(bollard::errors::Error::DockerContainerWaitError { code, error }) => {
                        return Err(ProvisionError::Invalid(format!(
                            "Giving the home to the workspace user failed (exit {code}): {error}. The image needs /bin/sh and chown."
                        )));
                    }
                    Err(e) => return Err(engine_error(host, "cannot wait for the home", e)),
                }
            }
            Ok(())
        }
        .await;
        let _ = self.remove_container(&init).await;
        if let Err(e) = filled {
            // The next start tries again with an empty volume.
            let _ = docker
                .remove_volume(&volume, Some(RemoveVolumeOptions { force: true }))
                .await;
            return Err(e);
        }
        Ok(true)
    }

    async fn remove_container(&self, name: &str) -> Result<(), ProvisionError> {
        let docker = self.engine()?;
        let _ = docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(STOP_GRACE_SECS),
                    ..Default::default()
                }),
            )
            .await;
        match docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(
                &self.options.host,
                "cannot remove a container",
                e,
            )),
        }
    }

    fn agent_env(&self, token: &str) -> Vec<String> {
        let socket = format!(
            "{SOCKET_DIR_INSIDE}/{}",
            socket_name(&self.options.agent_socket)
        );
        let mut env = vec![
            format!("HOME={WORKSPACE_HOME}"),
            "USER=coder".into(),
            "LOGNAME=coder".into(),
            "LANG=C.UTF-8".into(),
            "TERM=dumb".into(),
            format!("CODER_AGENT_TOKEN={token}"),
        ];
        match &self.options.agent_url {
            Some(url) => {
                env.push(format!(
                    "CODER_AGENT_URL={}",
                    url.as_str().trim_end_matches('/')
                ));
                env.push(format!("CODER_AGENT_SOCKET={socket}"));
            }
            None => env.push(format!("CODER_AGENT_URL=unix://{socket}")),
        }
        env
    }

    /// The workspaces whose home volumes this provisioner made.
    async fn held(&self) -> Result<Vec<WorkspaceId>, ProvisionError> {
        let docker = self.engine()?;
        let filter = HashMap::from([(
            "label".to_owned(),
            vec![format!(
                "{PROVISIONER_LABEL}={}",
                self.options.provisioner_id
            )],
        )]);
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| engine_error(&self.options.host, "cannot list volumes", e))?;
        let mut held: Vec<WorkspaceId> = volumes
            .volumes
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.labels.get(WORKSPACE_LABEL))
            .filter_map(|id| uuid::Uuid::parse_str(id).ok().map(WorkspaceId))
            .collect();
        held.sort();
        held.dedup();
        Ok(held)
    }

    /// Whether the workspace's container runs.
    async fn running(&self, workspace: WorkspaceId) -> Result<bool, ProvisionError> {
        let docker = self.engine()?;
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: false,
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{WORKSPACE_LABEL}={workspace}")],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error(&self.options.host, "cannot list containers", e))?;
        Ok(!containers.is_empty())
    }
}

fn socket_name(socket: &Path) -> String {
    socket
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The template's files as a tar for the home: extracted with the same checks as a local home
/// (no escapes, no set-uid bits), then packed again.
fn home_tar(archive: &[u8]) -> Result<Vec<u8>, ProvisionError> {
    let staging = tempdir()?;
    archive::extract_into(archive, staging.path()).map_err(|e| ProvisionError::Invalid(e.0))?;
    pack(staging.path())
}

/// The directory `dir` of the template archive, as a Docker build context.
fn build_context(archive: &[u8], dir: &str) -> Result<Vec<u8>, ProvisionError> {
    let staging = tempdir()?;
    archive::extract_into(archive, staging.path()).map_err(|e| ProvisionError::Invalid(e.0))?;
    let root = staging.path().join(dir);
    if !root.join("Dockerfile").is_file() {
        return Err(ProvisionError::Invalid(format!(
            "docker.build {dir:?}: the template archive has no {dir}/Dockerfile."
        )));
    }
    pack(&root)
}

fn pack(dir: &Path) -> Result<Vec<u8>, ProvisionError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", dir)
        .map_err(|e| ProvisionError::internal("cannot pack the template's files", e))?;
    builder
        .into_inner()
        .map_err(|e| ProvisionError::internal("cannot pack the template's files", e))
}

/// A private directory that is removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, ProvisionError> {
    let dir = std::env::temp_dir().join(format!("coderd-docker-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir)
        .map_err(|e| ProvisionError::internal("cannot make a staging directory", e))?;
    Ok(TempDir(dir))
}

#[async_trait]
impl Provisioner for DockerProvisioner {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }

    async fn start(&self, spec: StartSpec) -> Result<Vec<String>, ProvisionError> {
        let docker = self.engine()?;
        let host = &self.options.host;
        let docker_spec = spec.docker.clone().ok_or_else(|| {
            ProvisionError::Invalid(
                "A container workspace needs the template's docker: key.".into(),
            )
        })?;
        let workspace = spec.workspace_id;
        let name = container_name(workspace);
        self.remove_container(&name).await?;
        let (image, mut notes) = self.image(&docker_spec, &spec.archive).await?;
        if self.home(workspace, &image, &spec.archive).await? {
            notes.push("Made the home volume and copied the template's files into it.".into());
        }
        let limits = &spec.limits;
        // The template may ask for less than the server allows, never more.
        let memory = match (docker_spec.memory_bytes, limits.memory_bytes) {
            (Some(t), Some(s)) => Some(t.min(s)),
            (t, s) => t.or(s),
        };
        let cpus = match (docker_spec.cpus, limits.cpu_cores) {
            (Some(t), Some(s)) => Some(t.min(s)),
            (t, s) => t.or(s),
        };
        let socket_dir = self
            .options
            .agent_socket
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let binds = vec![
            format!("{}:{WORKSPACE_HOME}", volume_name(workspace)),
            format!(
                "{}:{AGENT_BINARY_INSIDE}:ro",
                self.options.agent_binary.display()
            ),
            format!("{socket_dir}:{SOCKET_DIR_INSIDE}:ro"),
        ];
        let mut ulimits = Vec::new();
        if let Some(bytes) = limits.max_file_bytes {
            let blocks = i64::try_from(bytes).unwrap_or(i64::MAX);
            ulimits.push(bollard::models::ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(blocks),
                hard: Some(blocks),
            });
        }
        ulimits.push(bollard::models::ResourcesUlimits {
            name: Some("core".into()),
            soft: Some(0),
            hard: Some(0),
        });
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.clone()),
                    hostname: Some(spec.workspace_name.clone()),
                    user: Some(format!("{WORKSPACE_UID}:{WORKSPACE_UID}")),
                    entrypoint: Some(vec![AGENT_BINARY_INSIDE.into()]),
                    cmd: Some(vec!["agent".into()]),
                    working_dir: Some(WORKSPACE_HOME.into()),
                    env: Some(self.agent_env(&spec.agent_token)),
                    labels: Some(self.labels(workspace)),
                    host_config: Some(HostConfig {
                        binds: Some(binds),
                        network_mode: Some(
                            if limits.host_network {
                                "bridge"
                            } else {
                                "none"
                            }
                            .into(),
                        ),
                        cap_drop: Some(vec!["ALL".into()]),
                        cap_add: Some(docker_spec.capabilities.clone())
                            .filter(|caps| !caps.is_empty()),
                        security_opt: Some(vec!["no-new-privileges".into()]),
                        privileged: Some(false),
                        init: Some(true),
                        pids_limit: limits.max_processes.and_then(|n| i64::try_from(n).ok()),
                        memory: memory.and_then(|n| i64::try_from(n).ok()),
                        // Memory and swap together: no swap beyond the memory limit.
                        memory_swap: memory.and_then(|n| i64::try_from(n).ok()),
                        nano_cpus: cpus.map(|c| (c * 1e9).round() as i64),
                        ulimits: Some(ulimits),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| engine_error(host, "cannot create the workspace's container", e))?;
        docker
            .start_container(&name, None)
            .await
            .map_err(|e| engine_error(host, "cannot start the workspace's container", e))?;
        notes.push(format!(
            "Started the container {name} from {image} (network: {}).",
            if limits.host_network {
                "bridge"
            } else {
                "none"
            }
        ));
        Ok(notes)
    }

    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        if self.docker.is_none() {
            return Ok(());
        }
        self.remove_container(&container_name(workspace)).await
    }

    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        if self.docker.is_none() {
            return Ok(());
        }
        self.remove_container(&container_name(workspace)).await?;
        let docker = self.engine()?;
        match docker
            .remove_volume(
                &volume_name(workspace),
                Some(RemoveVolumeOptions { force: true }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(
                &self.options.host,
                "cannot remove the home volume",
                e,
            )),
        }
    }

    async fn inventory(&self) -> Result<Vec<Held>, ProvisionError> {
        if self.docker.is_none() {
            return Ok(Vec::new());
        }
        let mut held = Vec::new();
        for workspace in self.held().await? {
            held.push(Held {
                workspace,
                running: self.running(workspace).await?,
            });
        }
        Ok(held)
    }
}
