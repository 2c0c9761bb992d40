//! Questions on a terminal. Off a terminal (scripts, CI) nothing is asked: the command fails
//! with what to pass instead, so a script never hangs on a prompt.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

/// Whether someone is there to answer: stdin is a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks a yes/no question; anything but yes is an error (the command stops).
pub fn confirm(question: &str) -> anyhow::Result<()> {
    if !interactive() {
        bail!("{question} Pass --yes to confirm (there is no terminal to ask on)");
    }
    let answer = ask(&format!("{question} (yes/no)"), None)?;
    if matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("canceled")
    }
}

/// Reads one answer from the terminal; an empty answer takes `default` when there is one.
pub fn ask(question: &str, default: Option<&str>) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    match default {
        Some(d) if !d.is_empty() => write!(err, "> {question} [{d}]: ")?,
        _ => write!(err, "> {question}: ")?,
    }
    err.flush()?;
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    if read == 0 {
        bail!("no answer to {question:?} (end of input)");
    }
    let answer = line.trim();
    Ok(match default {
        Some(d) if answer.is_empty() => d.to_owned(),
        _ => answer.to_owned(),
    })
}
