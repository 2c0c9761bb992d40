//! The CLI's config directory (`--global-config` / `CODER_CONFIG_DIR`): the `url` and `session`
//! files `coder login` writes, laid out and protected as Coder's CLI does.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

const URL_FILE: &str = "url";
const SESSION_FILE: &str = "session";

/// Where `coder login` keeps the server URL and the session token.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    path: PathBuf,
}

impl ConfigDir {
    /// The directory given with `--global-config`, else Coder's default for this OS.
    pub fn resolve(flag: Option<&Path>) -> anyhow::Result<ConfigDir> {
        let path = match flag {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => default_dir()?,
        };
        Ok(ConfigDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored server URL, if any.
    pub fn url(&self) -> anyhow::Result<Option<String>> {
        self.read(URL_FILE)
    }

    /// The stored session token, if any.
    pub fn session(&self) -> anyhow::Result<Option<String>> {
        self.read(SESSION_FILE)
    }

    pub fn write_url(&self, url: &str) -> anyhow::Result<()> {
        self.write(URL_FILE, url)
    }

    pub fn write_session(&self, token: &str) -> anyhow::Result<()> {
        self.write(SESSION_FILE, token)
    }

    /// Removes the stored URL and session; `true` when there was a session to remove.
    pub fn clear(&self) -> anyhow::Result<bool> {
        let had_session = self.remove(SESSION_FILE)?;
        self.remove(URL_FILE)?;
        Ok(had_session)
    }

    fn read(&self, name: &str) -> anyhow::Result<Option<String>> {
        let file = self.path.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let value = text.trim();
                Ok((!value.is_empty()).then(|| value.to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }

    /// Writes through a temporary file and a rename, so a reader never sees half a token and
    /// the file has mode 0600 even when an older copy had another.
    fn write(&self, name: &str, value: &str) -> anyhow::Result<()> {
        create_private_dir(&self.path)?;
        let file = self.path.join(name);
        let temp = self
            .path
            .join(format!(".{name}.{}.tmp", std::process::id()));
        let written = write_private_file(&temp, value.as_bytes())
            .and_then(|()| std::fs::rename(&temp, &file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e).with_context(|| format!("cannot write {}", file.display()));
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> anyhow::Result<bool> {
        let file = self.path.join(name);
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
}

/// Coder's `configdir.LocalConfig("coderv2")`: `$XDG_CONFIG_HOME/coderv2` or
/// `~/.config/coderv2` on Linux, `~/Library/Application Support/coderv2` on macOS,
/// `%APPDATA%\coderv2` on Windows.
fn default_dir() -> anyhow::Result<PathBuf> {
    const HINT: &str = "cannot find a home directory: set --global-config or CODER_CONFIG_DIR";
    if cfg!(windows) {
        let appdata = env_path("APPDATA").context(HINT)?;
        return Ok(appdata.join("coderv2"));
    }
    if cfg!(target_os = "macos") {
        let home = env_path("HOME").context(HINT)?;
        return Ok(home.join("Library/Application Support/coderv2"));
    }
    if let Some(xdg) = env_path("XDG_CONFIG_HOME") {
        return Ok(xdg.join("coderv2"));
    }
    Ok(env_path("HOME").context(HINT)?.join(".config/coderv2"))
}

/// A non-empty environment variable as a path.
pub fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Creates `dir` and its missing parents with mode 0700; an existing directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Creates (or truncates) `path` with mode 0600 and writes `bytes`.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // A leftover file of the same name keeps its old mode through `open`.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stores_url_and_session_privately() {
        let temp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::resolve(Some(&temp.path().join("nested/coderv2"))).unwrap();
        assert_eq!(dir.session().unwrap(), None);
        dir.write_url("http://127.0.0.1:3000").unwrap();
        dir.write_session("abc-def").unwrap();
        dir.write_session("abc-xyz").unwrap();
        assert_eq!(dir.url().unwrap().as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(dir.session().unwrap().as_deref(), Some("abc-xyz"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("session")), 0o600);
            assert_eq!(mode(&dir.path().join("url")), 0o600);
            assert_eq!(mode(dir.path()), 0o700);
        }
        assert!(dir.clear().unwrap());
        assert!(!dir.clear().unwrap());
        assert_eq!(dir.url().unwrap(), None);
    }
}
