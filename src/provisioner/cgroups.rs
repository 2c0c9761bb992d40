//! Per-workspace control groups: a cap on processes, memory and CPU that holds for everything
//! the workspace starts, so that a fork bomb or a memory bomb ends inside the workspace.
//!
//! Both layouts are supported: cgroup v2 (one unified hierarchy, `pids.max`, `memory.max`,
//! `cpu.max`) and cgroup v1 (one hierarchy per controller, `pids.max`,
//! `memory.limit_in_bytes`, `cpu.cfs_quota_us`). Workspace groups live under
//! `coder-workspaces/<workspace id>` at the top of each hierarchy, not under the server's own
//! group, so that they outlive the server (a service manager stopping the server's group must
//! not take the workspaces with it).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "coder-workspaces";

/// The limits one workspace gets; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_processes: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// CPU time per wall-clock second, in cores (1.5 = one and a half cores).
    pub cpu_cores: Option<f64>,
}

/// Which controllers this host lets the server use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    V2 {
        root: PathBuf,
    },
    V1 {
        pids: Option<PathBuf>,
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    None(String),
}

impl Cgroups {
    /// Finds writable hierarchies; needs root (or a delegated hierarchy).
    pub fn detect() -> Cgroups {
        let root = Path::new(ROOT);
        if root.join("cgroup.controllers").is_file() {
            let parent = root.join(PARENT);
            return match enable_v2_controllers(root, &parent) {
                Ok(()) => Cgroups::V2 { root: parent },
                Err(why) => Cgroups::None(format!(
                    "cgroup v2 is mounted at {ROOT} but the pids, memory and cpu controllers cannot be delegated to {}: {why}",
                    parent.display()
                )),
            };
        }
        let usable = |controller: &str| {
            let dir = root.join(controller);
            let parent = dir.join(PARENT);
            (dir.join("cgroup.procs").is_file() && std::fs::create_dir_all(&parent).is_ok())
                .then_some(parent)
        };
        let (pids, memory, cpu) = (usable("pids"), usable("memory"), usable("cpu"));
        if pids.is_none() && memory.is_none() && cpu.is_none() {
            return Cgroups::None(format!(
                "no writable cgroup hierarchy under {ROOT} (the server needs root, or a delegated cgroup)"
            ));
        }
        Cgroups::V1 { pids, memory, cpu }
    }

    /// What this host cannot limit, for the startup warning; empty when everything works.
    pub fn missing(&self) -> Vec<String> {
        match self {
            Cgroups::V2 { .. } => Vec::new(),
            Cgroups::V1 { pids, memory, cpu } => [("pids", pids), ("memory", memory), ("cpu", cpu)]
                .into_iter()
                .filter(|(_, dir)| dir.is_none())
                .map(|(name, _)| format!("the cgroup v1 {name} controller is not writable"))
                .collect(),
            Cgroups::None(why) => vec![why.clone()],
        }
    }

    fn groups(&self, workspace: &str) -> Vec<PathBuf> {
        match self {
            Cgroups::V2 { root } => vec![root.join(workspace)],
            Cgroups::V1 { pids, memory, cpu } => [pids, memory, cpu]
                .into_iter()
                .flatten()
                .map(|parent| parent.join(workspace))
                .collect(),
            Cgroups::None(_) => Vec::new(),
        }
    }

    /// Creates the workspace's groups with `limits`.
    pub fn create(&self, workspace: &str, limits: &Limits) -> std::io::Result<()> {
        match self {
            Cgroups::V2 { root } => {
                let dir = root.join(workspace);
                std::fs::create_dir_all(&dir)?;
                write_limit(
                    &dir,
                    "pids.max",
                    limits.max_processes.map(|n| n.to_string()),
                )?;
                write_limit(
                    &dir,
                    "memory.max",
                    limits.memory_bytes.map(|n| n.to_string()),
                )?;
                // No swap beyond the memory limit, or a memory bomb only moves to swap.
                if limits.memory_bytes.is_some() && dir.join("memory.swap.max").exists() {
                    std::fs::write(dir.join("memory.swap.max"), "0")?;
                }
                let cpu = limits
                    .cpu_cores
                    .map(|c| format!("{} 100000", (c * 100_000.0).round() as u64));
                write_limit(&dir, "cpu.max", cpu)?;
            }
            Cgroups::V1 { pids, memory, cpu } => {
                if let Some(parent) = pids {
                    let dir = parent.join(workspace);
                    std::fs::create_dir_all(&dir)?;
                    write_limit(
                        &dir,
                        "pids.max",
                        limits.max_processes.map(|n| n.to_string()),
                    )?;
                }
                if let Some(parent) = memory {
                    let dir = parent.join(workspace);
                    std::fs::create_dir_all(&dir)?;
                    if let Some(bytes) = limits.memory_bytes {
                        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                        // With swap accounting, memory plus swap gets the same cap.
                        let memsw = dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            std::fs::write(memsw, bytes.to_string())?;
                        }
                    }
                }
                if let Some(parent) = cpu {
                    let dir = parent.join(workspace);
                    std::fs::create_dir_all(&dir)?;
                    if let Some(cores) = limits.cpu_cores {
                        std::fs::write(dir.join("cpu.cfs_period_us"), "100000")?;
                        std::fs::write(
                            dir.join("cpu.cfs_quota_us"),
                            ((cores * 100_000.0).round() as u64).to_string(),
                        )?;
                    }
                }
            }
            Cgroups::None(_) => {}
        }
        Ok(())
    }

    /// Moves `pid` (and so everything it starts later) into the workspace's groups.
    pub fn attach(&self, workspace: &str, pid: u32) -> std::io::Result<()> {
        for dir in self.groups(workspace) {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// Kills whatever is still in the workspace's groups and removes them.
    pub fn destroy(&self, workspace: &str) {
        for dir in self.groups(workspace) {
            if !dir.exists() {
                continue;
            }
            for _ in 0..50 {
                let pids = members(&dir);
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    super::sandbox::kill(pid);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if let Err(e) = std::fs::remove_dir(&dir) {
                tracing::warn!(group = %dir.display(), error = %e, "could not remove a workspace cgroup");
            }
        }
    }
}

fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn write_limit(dir: &Path, file: &str, value: Option<String>) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value.unwrap_or_else(|| "max".to_owned()))
}

/// cgroup v2 only lets a group limit what its parent delegates (`cgroup.subtree_control`).
fn enable_v2_controllers(root: &Path, parent: &Path) -> Result<(), String> {
    let wanted = ["pids", "memory", "cpu"];
    let available =
        std::fs::read_to_string(root.join("cgroup.controllers")).map_err(|e| e.to_string())?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| !available.split_whitespace().any(|a| a == *c))
        .collect();
    if !missing.is_empty() {
        return Err(format!("controllers not available: {}", missing.join(", ")));
    }
    let enable = wanted.map(|c| format!("+{c}")).join(" ");
    std::fs::write(root.join("cgroup.subtree_control"), &enable).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    std::fs::write(parent.join("cgroup.subtree_control"), &enable).map_err(|e| e.to_string())
}
