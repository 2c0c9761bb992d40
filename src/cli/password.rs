//! Reading a password for `coder login` and `coder server create-admin-user`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

/// Prompts on a terminal (without echo); otherwise reads the first line of stdin.
pub(super) fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let _ = std::io::stderr().flush();
        return rpassword::prompt_password("Password: ").context("cannot read the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password given: pass --password, set CODER_PASSWORD, or pipe it on stdin");
    }
    Ok(password)
}
