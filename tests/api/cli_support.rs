//! Helpers for the tests that run the real `coder` binary: a hermetic command, running it to the
//! end within a bound, and its output as text.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

pub const CODER_BIN: &str = env!("CARGO_BIN_EXE_coder");
/// Generous: a cold CI machine may be slow to start processes, never this slow.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// `coder <args>` with a hermetic environment: no inherited `CODER_*` variable, no colours, no
/// stdin, killed when dropped.
pub fn coder_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(CODER_BIN);
    cmd.args(args);
    hermetic(&mut cmd);
    cmd
}

/// Gives `cmd` (`coder`, or a wrapper that runs it) `coder_command`'s environment.
pub fn hermetic(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CODER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
}

/// Runs a command to completion within `STEP_TIMEOUT` and returns its output.
pub async fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::time::timeout(STEP_TIMEOUT, cmd.output())
        .await
        .expect("coder finishes in time")
        .expect("coder runs")
}

/// What the command printed, stdout then stderr: the text to match against.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The exit status and both streams, labelled: the text for a failed assertion.
pub fn describe_output(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
