//! Background processes: commands started to outlive the request that started them, with their
//! output kept in a file in the workspace's `/tmp`, so that it can be read later, page by page,
//! while they run and after they end.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use rustix::process::{Pid, Signal, kill_process_group};

use super::Workspace;
use super::exec::exit_code;
use crate::domain::agent::{AgentOpError, PROCESS_SIGNALS, ProcessInfo, ProcessOutput};

/// Background processes one workspace may run at once.
pub const MAX_RUNNING: usize = 32;
/// Ended processes whose record and output are kept; the oldest go first.
const MAX_ENDED: usize = 64;
/// What one output read returns by default, and at most.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 * 1024;
pub const MAX_OUTPUT_LIMIT: u64 = 1024 * 1024;

#[derive(Debug)]
struct Entry {
    info: ProcessInfo,
    log: PathBuf,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// By number, so listing is in start order.
    entries: BTreeMap<u64, Entry>,
}

#[derive(Debug, Default)]
pub struct ProcessTable {
    table: Mutex<Table>,
}

fn not_found(id: &str) -> AgentOpError {
    AgentOpError::NotFound(format!(
        "No background process {id:?} in this workspace; list them with coder_workspace_process_list (or GET .../processes)."
    ))
}

fn number(id: &str) -> Option<u64> {
    id.strip_prefix('p')?.parse().ok()
}

impl ProcessTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `command` in the background and returns at once.
    pub fn start(workspace: &Arc<Workspace>, command: &str) -> Result<ProcessInfo, AgentOpError> {
        let table = &workspace.processes;
        let number = {
            let mut t = table.lock();
            let running = t.entries.values().filter(|e| e.info.running).count();
            if running >= MAX_RUNNING {
                return Err(AgentOpError::Busy(format!(
                    "The workspace already runs {MAX_RUNNING} background processes; signal some (coder_workspace_process_signal) or restart the workspace first."
                )));
            }
            t.next += 1;
            t.next
        };
        let id = format!("p{number}");
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let log = std::env::temp_dir().join(format!("coder-process-{id}-{suffix}.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| AgentOpError::internal("cannot create the process's output file", e))?;
        let file_err = file
            .try_clone()
            .map_err(|e| AgentOpError::internal("cannot create the process's output file", e))?;
        let mut cmd = workspace.shell_command(command);
        cmd.stdout(file).stderr(file_err).kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| AgentOpError::internal("cannot start the process", e))?;
        let info = ProcessInfo {
            id: id.clone(),
            pid: child.id().unwrap_or(0),
            command: command.to_owned(),
            running: true,
            exit_code: None,
            started_at: Utc::now(),
            ended_at: None,
            output_size: 0,
            log_path: log.display().to_string(),
        };
        table.lock().entries.insert(
            number,
            Entry {
                info: info.clone(),
                log,
            },
        );
        let workspace = workspace.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => -1,
            };
            workspace.processes.ended(number, code);
        });
        Ok(info)
    }

    fn ended(&self, number: u64, code: i32) {
        let mut t = self.lock();
        if let Some(entry) = t.entries.get_mut(&number) {
            entry.info.running = false;
            entry.info.exit_code = Some(code);
            entry.info.ended_at = Some(Utc::now());
        }
        let ended: Vec<u64> = t
            .entries
            .iter()
            .filter(|(_, e)| !e.info.running)
            .map(|(n, _)| *n)
            .collect();
        for n in ended.iter().take(ended.len().saturating_sub(MAX_ENDED)) {
            if let Some(old) = t.entries.remove(n) {
                let _ = std::fs::remove_file(old.log);
            }
        }
    }

    pub fn list(&self) -> Vec<ProcessInfo> {
        self.lock().entries.values().map(Entry::current).collect()
    }

    /// Up to `limit` bytes of the process's output from `offset`.
    pub fn output(&self, id: &str, offset: u64, limit: u64) -> Result<ProcessOutput, AgentOpError> {
        let (info, log) = {
            let t = self.lock();
            let entry = number(id)
                .and_then(|n| t.entries.get(&n))
                .ok_or_else(|| not_found(id))?;
            (entry.current(), entry.log.clone())
        };
        let limit = match limit {
            0 => DEFAULT_OUTPUT_LIMIT,
            n => n.min(MAX_OUTPUT_LIMIT),
        };
        let mut file = std::fs::File::open(&log)
            .map_err(|e| AgentOpError::internal(&format!("cannot open the output of {id}"), e))?;
        let size = file
            .metadata()
            .map_err(|e| AgentOpError::internal("cannot read the output's size", e))?
            .len();
        let start = offset.min(size);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| AgentOpError::internal("cannot read the output", e))?;
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| AgentOpError::internal("cannot read the output", e))?;
        let length = bytes.len() as u64;
        Ok(ProcessOutput {
            output: String::from_utf8_lossy(&bytes).into_owned(),
            offset: start,
            length,
            has_more: start + length < size,
            process: ProcessInfo {
                output_size: size,
                ..info
            },
        })
    }

    /// Sends `signal` to the process's whole group.
    pub fn signal(&self, id: &str, signal: &str) -> Result<ProcessInfo, AgentOpError> {
        let info = {
            let t = self.lock();
            number(id)
                .and_then(|n| t.entries.get(&n))
                .ok_or_else(|| not_found(id))?
                .current()
        };
        let sig = parse_signal(signal)?;
        if !info.running {
            return Err(AgentOpError::Invalid(format!(
                "Process {id} has already ended (exit code {}).",
                info.exit_code.unwrap_or(-1)
            )));
        }
        if let Some(pid) = i32::try_from(info.pid).ok().and_then(Pid::from_raw) {
            kill_process_group(pid, sig)
                .map_err(|e| AgentOpError::internal(&format!("cannot signal process {id}"), e))?;
        }
        Ok(info)
    }
}

impl Entry {
    /// The record with the output's size as it is now.
    fn current(&self) -> ProcessInfo {
        let output_size = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        ProcessInfo {
            output_size,
            ..self.info.clone()
        }
    }
}

fn parse_signal(name: &str) -> Result<Signal, AgentOpError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Ok(match full.as_str() {
        "SIGTERM" => Signal::TERM,
        "SIGKILL" => Signal::KILL,
        "SIGINT" => Signal::INT,
        "SIGHUP" => Signal::HUP,
        "SIGQUIT" => Signal::QUIT,
        "SIGUSR1" => Signal::USR1,
        _ => {
            return Err(AgentOpError::Invalid(format!(
                "Unknown signal {name:?}; use one of {}.",
                PROCESS_SIGNALS.join(", ")
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_with_or_without_the_sig_prefix() {
        assert_eq!(parse_signal("term").ok(), Some(Signal::TERM));
        assert_eq!(parse_signal("SIGKILL").ok(), Some(Signal::KILL));
        assert!(parse_signal("SIGSTOP").is_err());
        assert_eq!(number("p12"), Some(12));
        assert_eq!(number("12"), None);
    }
}
