//! Processes of workspaces: tracking them so `stop` can end them all, and capturing their output
//! with a size cap.

use std::collections::HashMap;
use std::io::PipeReader;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::{AgentEvent, ProvisionError};
use crate::domain::WorkspaceId;

/// The process groups each workspace has running. Every process is started as the leader of a
/// new group (the sandbox's `bwrap`, whose death takes its PID namespace with it), so killing
/// the group ends everything it started.
#[derive(Debug, Default)]
pub struct ProcessRegistry {
    groups: Mutex<HashMap<WorkspaceId, HashMap<u64, i32>>>,
    next: AtomicU64,
}

/// Removes its process group from the registry when dropped.
#[derive(Debug)]
pub struct Tracked {
    registry: Arc<ProcessRegistry>,
    workspace: WorkspaceId,
    key: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut groups = self
            .registry
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(set) = groups.get_mut(&self.workspace) {
            set.remove(&self.key);
            if set.is_empty() {
                groups.remove(&self.workspace);
            }
        }
    }
}

impl ProcessRegistry {
    pub fn track(self: &Arc<Self>, workspace: WorkspaceId, pgid: i32) -> Tracked {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(workspace)
            .or_default()
            .insert(key, pgid);
        Tracked {
            registry: self.clone(),
            workspace,
            key,
        }
    }

    pub fn count(&self, workspace: WorkspaceId) -> usize {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&workspace)
            .map_or(0, HashMap::len)
    }

    /// Kills every process group of the workspace and waits (up to 10 s) until their waiters
    /// have seen them exit.
    pub async fn kill_all(&self, workspace: WorkspaceId) {
        let groups: Vec<i32> = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&workspace)
            .map(|set| set.values().copied().collect())
            .unwrap_or_default();
        for pgid in groups {
            kill_group(pgid);
        }
        for _ in 0..200 {
            if self.count(workspace) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(%workspace, "workspace processes did not exit within 10 s of SIGKILL");
    }
}

pub fn kill_group(pgid: i32) {
    if let Some(pid) = Pid::from_raw(pgid) {
        // ESRCH (already gone) is the common, harmless case.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// One pipe that both stdout and stderr write to, so their output interleaves as written.
pub fn output_pipe() -> Result<(PipeReader, std::io::PipeWriter), ProvisionError> {
    std::io::pipe().map_err(|e| ProvisionError::internal("cannot create a pipe", e))
}

fn async_reader(reader: PipeReader) -> Result<pipe::Receiver, ProvisionError> {
    pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| ProvisionError::internal("cannot read the command's output", e))
}

/// Output read so far, capped.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub dropped: u64,
}

/// Reads the pipe to its end into `sink`, keeping at most `cap` bytes and counting the rest (the
/// pipe is still drained, so the writer never blocks).
pub fn spawn_capture(
    reader: PipeReader,
    cap: usize,
    sink: Arc<Mutex<Captured>>,
) -> Result<tokio::task::JoinHandle<()>, ProvisionError> {
    let mut rx = async_reader(reader)?;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
                    let room = cap.saturating_sub(out.bytes.len());
                    let keep = room.min(n);
                    out.bytes.extend_from_slice(&buf[..keep]);
                    out.dropped += (n - keep) as u64;
                }
            }
        }
    }))
}

/// The longest line kept whole in an agent log; longer output is split.
const MAX_LINE: usize = 16 * 1024;

/// Reads the agent's output as lines. A line holding `marker` ends the startup script: what
/// follows the marker is its exit code.
pub fn spawn_agent_reader(
    reader: PipeReader,
    marker: String,
    events: mpsc::Sender<AgentEvent>,
) -> Result<(), ProvisionError> {
    let mut rx = async_reader(reader)?;
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut lines = Vec::new();
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            if pending.len() > MAX_LINE {
                lines.push(String::from_utf8_lossy(&pending).into_owned());
                pending.clear();
            }
            for line in lines.drain(..) {
                if !send_line(&events, &marker, line).await {
                    return;
                }
            }
        }
        if !pending.is_empty() {
            let line = String::from_utf8_lossy(&pending).into_owned();
            send_line(&events, &marker, line).await;
        }
    });
    Ok(())
}

async fn send_line(events: &mpsc::Sender<AgentEvent>, marker: &str, line: String) -> bool {
    let line = line.trim_end_matches('\r').to_owned();
    if let Some(at) = line.find(marker) {
        let before = &line[..at];
        if !before.is_empty()
            && events
                .send(AgentEvent::Line(before.to_owned()))
                .await
                .is_err()
        {
            return false;
        }
        let code = line[at + marker.len()..].trim().parse().unwrap_or(-1);
        return events.send(AgentEvent::ScriptExited(code)).await.is_ok();
    }
    events.send(AgentEvent::Line(line)).await.is_ok()
}

/// The exit code a shell would report: the code, or 128 + the signal that ended the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}
