//! The startup script, run once per agent, and the reporter that delivers its output and the
//! agent's lifecycle to the server in order, retrying while the server is away.

use std::io::PipeReader;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::Workspace;
use super::client::{ServerClient, SessionError};
use super::exec::{async_reader, output_pipe};
use crate::domain::LogLevel;
use crate::domain::agent::{AgentLogLine, AgentManifest, PatchAgentLogs, ReportLifecycle};

/// Reports waiting to be delivered; past this, log lines are dropped (and counted) rather than
/// blocking the script's output or growing without bound while the server is away.
const QUEUE: usize = 4096;
/// Lines sent in one request.
const BATCH: usize = 500;
/// The longest line kept whole; longer output is split.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug)]
enum Report {
    Line(AgentLogLine),
    Lifecycle(&'static str),
}

/// Sends reports to the server in the order they were made.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Reporter {
    pub fn start(client: ServerClient) -> Reporter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(deliver(client, rx, dropped.clone()));
        Reporter { tx, dropped }
    }

    fn line(&self, output: String) {
        let line = AgentLogLine {
            created_at: Utc::now(),
            level: LogLevel::Info,
            output,
        };
        if self.tx.try_send(Report::Line(line)).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Lifecycle changes are never dropped: they wait for room.
    async fn lifecycle(&self, state: &'static str) {
        let _ = self.tx.send(Report::Lifecycle(state)).await;
    }
}

async fn deliver(
    client: ServerClient,
    mut rx: mpsc::Receiver<Report>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut lines = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(report) = next.take() {
            match report {
                Report::Line(line) => {
                    lines.push(line);
                    if lines.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                Report::Lifecycle(state) => {
                    flush(&client, &mut lines, &dropped).await;
                    let report = ReportLifecycle {
                        state: state.to_owned(),
                        changed_at: Utc::now(),
                    };
                    retry(|| client.report_lifecycle(&report)).await;
                }
            }
        }
        flush(&client, &mut lines, &dropped).await;
    }
}

async fn flush(
    client: &ServerClient,
    lines: &mut Vec<AgentLogLine>,
    dropped: &std::sync::atomic::AtomicU64,
) {
    let lost = dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
    if lost > 0 {
        lines.push(AgentLogLine {
            created_at: Utc::now(),
            level: LogLevel::Warn,
            output: format!(
                "[coder] {lost} line(s) of output were dropped while the server was unreachable."
            ),
        });
    }
    if lines.is_empty() {
        return;
    }
    let logs = PatchAgentLogs {
        logs: std::mem::take(lines),
    };
    retry(|| client.patch_logs(&logs)).await;
}

/// Retries while the server is unreachable; a refusal is final (logged), so one bad report
/// cannot stop every later one.
async fn retry<F, Fut>(mut send: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SessionError>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match send().await {
            Ok(()) => return,
            Err(SessionError::Refused(why)) => {
                tracing::warn!(reason = %why, "the server refused a report; dropping it");
                return;
            }
            Err(SessionError::Unreachable(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs the manifest's startup script in the background, reporting `starting`, its output, and
/// then `ready`, `start_error` or `start_timeout`.
pub fn run_script(workspace: Arc<Workspace>, manifest: &AgentManifest, reporter: Reporter) {
    let script = manifest.startup_script.clone();
    let timeout = Duration::from_secs(manifest.startup_script_timeout_seconds.max(1));
    tokio::spawn(async move {
        reporter.lifecycle("starting").await;
        if script.trim().is_empty() {
            reporter.lifecycle("ready").await;
            return;
        }
        let state = match run(&workspace, &script, timeout, &reporter).await {
            Ok(Some(0)) => "ready",
            Ok(Some(code)) => {
                reporter.line(format!(
                    "[coder] The startup script exited with code {code}."
                ));
                "start_error"
            }
            Ok(None) => {
                reporter.line(format!(
                    "[coder] The startup script is still running after {} s (the template's startup_timeout); it keeps running.",
                    timeout.as_secs()
                ));
                "start_timeout"
            }
            Err(why) => {
                reporter.line(format!("[coder] The startup script could not start: {why}"));
                "start_error"
            }
        };
        reporter.lifecycle(state).await;
    });
}

/// The script's exit code, or None when it outlived `timeout` (it keeps running).
async fn run(
    workspace: &Workspace,
    script: &str,
    timeout: Duration,
    reporter: &Reporter,
) -> Result<Option<i32>, String> {
    // The wrapper runs the script and then prints its exit code behind a marker no script can
    // guess, on the same pipe: every line the script wrote is read before its end is known.
    // Processes the script leaves running stay (they are the workspace's services) and their
    // output keeps flowing into the log.
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let marker = format!("__coder_startup_script_exit_{nonce}__");
    let wrapper = "\"$0\" -c \"$1\" </dev/null 2>&1; code=$?; printf '%s%s\\n' \"$2\" \"$code\"";
    let (reader, writer) = output_pipe().map_err(|e| e.to_string())?;
    let stdout = writer.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = workspace.command(
        "/bin/sh",
        &["-c", wrapper, &workspace.shell, script, &marker],
    );
    cmd.stdout(stdout).stderr(writer).kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    drop(cmd);
    let exited = read_lines(reader, marker, reporter.clone())?;
    // Reaps the wrapper; its exit code is the marker's.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    match tokio::time::timeout(timeout, exited).await {
        Ok(code) => Ok(Some(code.unwrap_or(-1))),
        Err(_) => Ok(None),
    }
}

/// Reads the output as lines into reports until every writer has closed the pipe; a line
/// holding `marker` is the script's end, and what follows the marker its exit code.
fn read_lines(
    reader: PipeReader,
    marker: String,
    reporter: Reporter,
) -> Result<tokio::sync::oneshot::Receiver<i32>, String> {
    let mut rx = async_reader(reader).map_err(|e| e.to_string())?;
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut exit_tx = Some(exit_tx);
        let mut line_out = |line: String| {
            let line = line.trim_end_matches('\r');
            match line.find(&marker) {
                Some(at) => {
                    if at > 0 {
                        reporter.line(line[..at].to_owned());
                    }
                    let code = line[at + marker.len()..].trim().parse().unwrap_or(-1);
                    if let Some(tx) = exit_tx.take() {
                        let _ = tx.send(code);
                    }
                }
                None => reporter.line(line.to_owned()),
            }
        };
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                line_out(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            if pending.len() > MAX_LINE {
                line_out(String::from_utf8_lossy(&pending).into_owned());
                pending.clear();
            }
        }
        if !pending.is_empty() {
            line_out(String::from_utf8_lossy(&pending).into_owned());
        }
    });
    Ok(exit_rx)
}
