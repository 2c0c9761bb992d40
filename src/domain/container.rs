//! Which provisioner a template's workspaces need, and what a container workspace is made of:
//! the `provisioner:` and `docker:` keys of `coder.yaml`.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

/// Where the Docker engine is when neither a flag nor `DOCKER_HOST` says.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The kind of provisioner that builds a template's workspaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionerKind {
    /// A bubblewrap sandbox on the provisioner's host (the default).
    #[default]
    Local,
    /// A container on the provisioner's Docker engine.
    Docker,
}

impl ProvisionerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionerKind::Local => "local",
            ProvisionerKind::Docker => "docker",
        }
    }
}

/// A container workspace, from the manifest's `docker:` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerSpec {
    /// An image on the provisioner's Docker engine (pulled when missing and a registry is
    /// reachable), e.g. `debian:bookworm`.
    #[serde(default)]
    pub image: Option<String>,
    /// A directory of the template archive holding a `Dockerfile`: built on the provisioner's
    /// engine at the first start, and cached by the content's hash.
    #[serde(default)]
    pub build: Option<String>,
    /// CPU for the container, in cores; never more than the server's workspace limit.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory for the container; never more than the server's workspace limit.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Linux capabilities the container gets back (every other one is dropped), e.g.
    /// `NET_BIND_SERVICE`. Only owners write templates, so only owners grant them.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The `docker:` key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocker {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    cpus: Option<f64>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
}

/// The provisioner kind and container spec of a manifest, checked; the error says what to fix.
pub fn container_spec(
    provisioner: Option<&str>,
    docker: Option<RawDocker>,
) -> Result<(ProvisionerKind, Option<DockerSpec>), String> {
    let kind = match provisioner.map(str::trim) {
        None | Some("local") => ProvisionerKind::Local,
        Some("docker") => ProvisionerKind::Docker,
        Some(other) => {
            return Err(format!(
                "provisioner: {other:?} is not a provisioner; use local (the default) or docker."
            ));
        }
    };
    let docker = match (kind, docker) {
        (ProvisionerKind::Local, None) => return Ok((kind, None)),
        (ProvisionerKind::Local, Some(_)) => {
            return Err("docker: applies to container workspaces; add provisioner: docker.".into());
        }
        (ProvisionerKind::Docker, None) => {
            return Err(
                "provisioner: docker needs a docker: key with an image (or a build directory)."
                    .into(),
            );
        }
        (ProvisionerKind::Docker, Some(d)) => d,
    };
    let image = docker
        .image
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty());
    let build = docker
        .build
        .map(|b| b.trim().trim_end_matches('/').to_owned());
    match (&image, &build) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("docker: give exactly one of image or build.".into());
        }
        (Some(image), None) if !valid_image(image) => {
            return Err(format!(
                "docker.image {image:?} is not an image reference such as debian:bookworm or registry.example.com/team/dev:1.2."
            ));
        }
        (None, Some(dir)) if !inside_archive(dir) => {
            return Err(format!(
                "docker.build {dir:?} must be a directory of the template archive, relative and without \"..\"."
            ));
        }
        _ => {}
    }
    let cpus = match docker.cpus {
        Some(c) if !(0.01..=1024.0).contains(&c) => {
            return Err("docker.cpus must be between 0.01 and 1024 cores.".into());
        }
        other => other,
    };
    let memory_bytes = match docker.memory.as_deref() {
        None => None,
        Some(raw) => match super::size::parse_bytes(raw) {
            Ok(n) if n >= 64 << 20 => Some(n),
            _ => {
                return Err(format!(
                    "docker.memory {raw:?} must be a size of at least 64MiB, such as 2GiB."
                ));
            }
        },
    };
    let mut capabilities = Vec::new();
    for cap in &docker.capabilities {
        let name = cap.trim().to_ascii_uppercase();
        let name = name.strip_prefix("CAP_").unwrap_or(&name).to_owned();
        if name == "ALL" || name == "SYS_ADMIN" {
            return Err(format!(
                "docker.capabilities: {cap:?} would undo the container's isolation; name the narrow capabilities the workspace needs."
            ));
        }
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        {
            return Err(format!(
                "docker.capabilities: {cap:?} is not a capability name such as NET_BIND_SERVICE."
            ));
        }
        if !capabilities.contains(&name) {
            capabilities.push(name);
        }
    }
    Ok((
        kind,
        Some(DockerSpec {
            image,
            build,
            cpus,
            memory_bytes,
            capabilities,
        }),
    ))
}

/// `[registry[:port]/]path[:tag][@digest]` in the characters Docker allows.
fn valid_image(image: &str) -> bool {
    image.len() <= 255
        && image.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
        && !image.starts_with(['-', '/', ':', '@'])
}

fn inside_archive(dir: &str) -> bool {
    !dir.is_empty()
        && dir.len() <= 1024
        && Path::new(dir)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(image: Option<&str>, build: Option<&str>) -> RawDocker {
        RawDocker {
            image: image.map(str::to_owned),
            build: build.map(str::to_owned),
            cpus: None,
            memory: Some("1GiB".into()),
            capabilities: vec!["cap_net_bind_service".into()],
        }
    }

    #[test]
    fn a_container_workspace_names_one_image_or_build_directory() {
        let (kind, spec) = container_spec(Some("docker"), Some(raw(Some("debian:bookworm"), None)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kind, ProvisionerKind::Docker);
        let spec = spec.unwrap_or_default();
        assert_eq!(spec.memory_bytes, Some(1 << 30));
        assert_eq!(spec.capabilities, vec!["NET_BIND_SERVICE".to_owned()]);
        let mut all = raw(Some("x"), None);
        all.capabilities = vec!["ALL".into()];
        assert!(container_spec(Some("docker"), Some(all)).is_err());
        assert_eq!(
            container_spec(None, None),
            Ok((ProvisionerKind::Local, None))
        );
        for (p, d) in [
            (Some("docker"), None),
            (None, Some(raw(Some("x"), None))),
            (Some("docker"), Some(raw(Some("x"), Some("d")))),
            (Some("docker"), Some(raw(None, Some("../up")))),
            (Some("docker"), Some(raw(Some("bad image"), None))),
            (Some("kubernetes"), None),
        ] {
            assert!(container_spec(p, d).is_err());
        }
    }
}
