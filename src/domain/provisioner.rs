//! Provisioners and the jobs they take: tags that route a job to the provisioners that can run
//! it, the keys external provisioner daemons sign in with, and the daemon wire contract.
//!
//! A job carries tags (its template version's, plus `provisioner_id` once its workspace lives
//! on one provisioner's host); a provisioner takes a job when every tag of the job is one of
//! its own, as in Coder. Every provisioner has a `provisioner_id` tag naming itself, so a
//! workspace's later builds (stop, delete, a restart) go to the host that holds its files.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::uuid_id;
use super::{DomainError, FieldError, OrganizationId};

uuid_id!(ProvisionerKeyId);

/// The tag naming one provisioner (the built-in one of a server, or a daemon); reserved.
pub const PROVISIONER_ID_TAG: &str = "provisioner_id";
/// The most tags a template version or a key may have (a provisioner serves every subset of
/// its tags, so this keeps that set small).
pub const MAX_TAGS: usize = 6;
/// The header a daemon presents its key in (Coder's).
pub const DAEMON_KEY_HEADER: &str = "Coder-Provisioner-Daemon-Key";
/// The largest daemon message: a template archive (at most 10 MiB) in base64, and room.
pub const DAEMON_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Tags, kept sorted so that equal sets have equal text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProvisionerTags(pub BTreeMap<String, String>);

impl ProvisionerTags {
    /// Checks tags a user gave: names of lowercase letters, digits, `-`, `_` and `.`, values
    /// printable and short, at most `MAX_TAGS`, and not the reserved `provisioner_id`.
    pub fn from_user(tags: BTreeMap<String, String>, field: &str) -> Result<Self, DomainError> {
        let invalid = |detail: String| {
            DomainError::invalid_fields(
                "Invalid provisioner tags.",
                vec![FieldError::new(field, detail)],
            )
        };
        if tags.len() > MAX_TAGS {
            return Err(invalid(format!("At most {MAX_TAGS} tags are allowed.")));
        }
        for (k, v) in &tags {
            let name_ok = !k.is_empty()
                && k.len() <= 64
                && k.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                });
            if !name_ok {
                return Err(invalid(format!(
                    "Tag name {k:?} must be 1-64 lowercase letters, digits, '-', '_' or '.'."
                )));
            }
            if k == PROVISIONER_ID_TAG {
                return Err(invalid(format!(
                    "The tag {PROVISIONER_ID_TAG} is reserved: it names one provisioner."
                )));
            }
            if v.len() > 128 || v.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "The value of tag {k} must be at most 128 printable characters."
                )));
            }
        }
        Ok(ProvisionerTags(tags))
    }

    /// The canonical text stored with a job and compared when claiming it.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads stored tags; unreadable text is no tags.
    pub fn from_stored(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// These tags with `provisioner_id` set to `id`.
    pub fn placed_on(&self, id: &str) -> Self {
        let mut tags = self.0.clone();
        tags.insert(PROVISIONER_ID_TAG.to_owned(), id.to_owned());
        ProvisionerTags(tags)
    }

    /// The canonical text of every subset of these tags: the tag sets of the jobs a
    /// provisioner with these tags takes.
    pub fn subsets(&self) -> Vec<String> {
        let entries: Vec<(&String, &String)> = self.0.iter().collect();
        (0u32..(1 << entries.len()))
            .map(|mask| {
                let subset: BTreeMap<String, String> = entries
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, (k, v))| ((*k).clone(), (*v).clone()))
                    .collect();
                ProvisionerTags(subset).canonical()
            })
            .collect()
    }
}

/// A key an external provisioner daemon signs in with; only a hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerKey {
    pub id: ProvisionerKeyId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub tags: ProvisionerTags,
    pub created_at: DateTime<Utc>,
}

/// A provisioner daemon as the database records it, for every replica to list (Coder's
/// `ProvisionerDaemon`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerDaemon {
    /// Its persistent id, a UUID kept in its data directory (its workspaces'
    /// `provisioner_id`).
    pub id: String,
    pub organization_id: OrganizationId,
    /// The key it signed in with last.
    pub key_id: ProvisionerKeyId,
    pub name: String,
    pub version: String,
    pub tags: ProvisionerTags,
    /// The replica it is connected to; `None` once it has left.
    pub replica_id: Option<super::ReplicaId>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Coder's `ProvisionerDaemonStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonStatus {
    Offline,
    Idle,
    Busy,
}

impl ProvisionerDaemon {
    /// Offline once it has left, or once its replica has not vouched for it for as long as a
    /// replica counts as gone (the replica may have died without saying so).
    pub fn status(&self, running_job: bool, now: DateTime<Utc>) -> DaemonStatus {
        if self.replica_id.is_none()
            || now - self.last_seen_at >= super::replica::REPLICA_STALE_AFTER
        {
            DaemonStatus::Offline
        } else if running_job {
            DaemonStatus::Busy
        } else {
            DaemonStatus::Idle
        }
    }
}

/// How a workspace is confined: the server's policy, handed to the provisioner with every
/// start (so a daemon on another host applies the same). `None` leaves a resource unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceLimits {
    pub max_processes: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// CPU time per wall-clock second, in cores.
    pub cpu_cores: Option<f64>,
    /// The largest file a workspace process may write (RLIMIT_FSIZE).
    pub max_file_bytes: Option<u64>,
    /// The size of the filesystem holding the home and `/tmp`; `None` leaves them on the
    /// provisioner host's disk.
    pub disk_bytes: Option<u64>,
    /// Share the host's network (outbound access, but no network isolation).
    pub host_network: bool,
}

impl Default for WorkspaceLimits {
    fn default() -> Self {
        WorkspaceLimits {
            max_processes: Some(4096),
            memory_bytes: Some(4 << 30),
            cpu_cores: None,
            max_file_bytes: Some(16 << 30),
            disk_bytes: None,
            host_network: false,
        }
    }
}

/// What the server asks a provisioner daemon to do (the `Provisioner` trait, on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum DaemonRequest {
    Start(Box<DaemonStart>),
    Stop {
        workspace_id: uuid::Uuid,
    },
    Delete {
        workspace_id: uuid::Uuid,
    },
    /// What the daemon's host holds, for the server to reconcile with its database.
    Inventory,
}

/// One workspace a daemon's host holds (the answer to `DaemonRequest::Inventory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldWorkspace {
    pub workspace_id: uuid::Uuid,
    /// Whether its processes run.
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStart {
    pub workspace_id: uuid::Uuid,
    pub workspace_name: String,
    pub owner_name: String,
    /// The template's archive, base64.
    pub archive: String,
    pub agent_token: String,
    pub limits: WorkspaceLimits,
    #[serde(default)]
    pub kind: super::container::ProvisionerKind,
    #[serde(default)]
    pub docker: Option<super::container::DockerSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> ProvisionerTags {
        ProvisionerTags(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_provisioner_takes_every_subset_of_its_tags() {
        let mine = tags(&[("pool", "gpu"), ("region", "eu")]);
        let subsets = mine.subsets();
        assert_eq!(subsets.len(), 4);
        assert!(subsets.contains(&"{}".to_owned()));
        assert!(subsets.contains(&tags(&[("region", "eu")]).canonical()));
        assert!(subsets.contains(&mine.canonical()));
        assert!(!subsets.contains(&tags(&[("region", "us")]).canonical()));
        // Key order does not matter: the text is canonical.
        assert_eq!(
            tags(&[("b", "1"), ("a", "2")]).canonical(),
            r#"{"a":"2","b":"1"}"#
        );
        let placed = mine.placed_on("p1");
        assert_eq!(placed.0[PROVISIONER_ID_TAG], "p1");
        assert_eq!(ProvisionerTags::from_stored(&placed.canonical()), placed);
    }

    #[test]
    fn user_tags_are_checked() {
        let user = |pairs: &[(&str, &str)]| {
            ProvisionerTags::from_user(tags(pairs).0, "tags").map(|t| t.canonical())
        };
        assert!(user(&[("pool", "gpu")]).is_ok());
        for bad in [
            vec![("Pool", "gpu")],
            vec![("", "x")],
            vec![(PROVISIONER_ID_TAG, "x")],
            vec![("pool", "a\u{0}b")],
        ] {
            assert!(user(&bad).is_err(), "{bad:?}");
        }
        let many: Vec<(String, String)> =
            (0..7).map(|i| (format!("t{i}"), String::new())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(user(&many).is_err());
    }
}
