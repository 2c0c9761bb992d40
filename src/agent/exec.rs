//! Running commands in the workspace's shell: each in a new process group, so that a timeout
//! or the end of a command takes everything it started with it, and with its output captured
//! up to a cap.

use std::io::PipeReader;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;

use super::Workspace;
use crate::domain::agent::{AgentOpError, ExecOutput};

/// The most output a command returns; the rest is dropped and the result marked truncated.
pub const MAX_OUTPUT: usize = 1024 * 1024;

impl Workspace {
    /// `shell -c script` in the working directory with the workspace's variables, stdin closed,
    /// as the leader of a new process group.
    pub fn shell_command(&self, script: &str) -> Command {
        self.command(&self.shell, &["-c", script])
    }

    /// `program args...` as `shell_command` runs its shell.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.working_dir())
            .stdin(Stdio::null())
            .process_group(0);
        cmd
    }
}

pub fn kill_group(pgid: u32) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        // ESRCH (already gone) is the common, harmless case.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// One pipe that both stdout and stderr write to, so their output interleaves as written.
pub fn output_pipe() -> Result<(PipeReader, std::io::PipeWriter), AgentOpError> {
    std::io::pipe().map_err(|e| AgentOpError::internal("cannot create a pipe", e))
}

pub fn async_reader(reader: PipeReader) -> Result<pipe::Receiver, AgentOpError> {
    pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| AgentOpError::internal("cannot read the command's output", e))
}

/// Output read so far, capped.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

/// Reads `rx` to its end into `out`, keeping at most `cap` bytes and counting the rest (the
/// pipe is still drained, so the writer never blocks).
async fn capture(mut rx: pipe::Receiver, cap: usize, out: &mut Captured) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let keep = cap.saturating_sub(out.bytes.len()).min(n);
                out.bytes.extend_from_slice(&buf[..keep]);
                out.dropped += (n - keep) as u64;
            }
        }
    }
}

/// The exit code a shell would report: the code, or 128 + the signal that ended the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Runs `command` to its end or its timeout and returns what it wrote.
pub async fn run_foreground(
    workspace: &Workspace,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, AgentOpError> {
    let (reader, writer) = output_pipe()?;
    let stdout = writer
        .try_clone()
        .map_err(|e| AgentOpError::internal("cannot create a pipe", e))?;
    let mut cmd = workspace.shell_command(command);
    cmd.stdout(stdout).stderr(writer).kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| AgentOpError::internal("cannot start the command", e))?;
    // Our copies of the pipe's write end go with `cmd`, so the reader sees EOF once the
    // command's processes have closed theirs.
    drop(cmd);
    let pgid = child.id().unwrap_or(0);
    let output = async_reader(reader)?;
    let mut captured = Captured::default();
    // The output is read in this task, beside the wait, not in a task of its own: a task
    // spawn and join per command, and the wake-ups they bring, were with the agent's threads
    // about 0.1 ms of a 2.2 ms `echo hi` (docs/benchmarks.md, issue 19).
    let (exit_code, timed_out) = {
        let reading = capture(output, MAX_OUTPUT, &mut captured);
        tokio::pin!(reading);
        let mut read_to_end = false;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                tokio::select! {
                    status = child.wait() => break status,
                    () = &mut reading, if !read_to_end => read_to_end = true,
                }
            }
        })
        .await;
        // Whatever the command left behind goes with it, as when a terminal closes.
        kill_group(pgid);
        let ended = match waited {
            Ok(Ok(status)) => (exit_code(status), false),
            Ok(Err(e)) => return Err(AgentOpError::internal("cannot wait for the command", e)),
            Err(_) => {
                let _ = child.wait().await;
                (124, true)
            }
        };
        // A process that left the group (`setsid`) can hold the pipe open: stop reading then.
        if !read_to_end {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut reading).await;
        }
        ended
    };
    let mut output = String::from_utf8_lossy(&captured.bytes).into_owned();
    let truncated = captured.dropped > 0;
    if truncated {
        output.push_str(&format!(
            "\n[output truncated: {} more bytes were not kept; the limit is {} KiB]\n",
            captured.dropped,
            MAX_OUTPUT / 1024
        ));
    }
    if timed_out {
        output.push_str(&format!(
            "\n[the command timed out after {} s and was killed; for longer work run it in the background]\n",
            timeout.as_secs_f64()
        ));
    }
    Ok(ExecOutput {
        output,
        exit_code,
        timed_out,
        truncated,
        process_id: None,
    })
}
