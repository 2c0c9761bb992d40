//! File operations inside a workspace home that cannot reach outside it.
//!
//! A path is taken relative to the home, or absolute under `/home/coder`. It is normalized
//! lexically (a `..` that climbs above the home is refused), resolved with symlinks followed,
//! and must stay inside the home. The file is then opened without following a final symlink and
//! its descriptor's real path is checked again, so a link swapped in meanwhile by a process in
//! the workspace cannot redirect the operation.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, open, openat};
use rustix::io::Errno;

use crate::domain::WORKSPACE_HOME;
use crate::domain::agent::{
    AgentOpError, DirEntry, DirListing, EditResult, FileContent, FileEdits,
};

/// The most a single read returns.
pub const MAX_READ: u64 = 1024 * 1024;
/// The largest file an edit rewrites.
pub const MAX_EDIT_FILE: u64 = 10 * 1024 * 1024;

fn invalid(msg: impl Into<String>) -> AgentOpError {
    AgentOpError::Invalid(msg.into())
}

/// The path relative to the home, normalized; refuses paths that leave it.
pub fn relative_to_home(raw: &str) -> Result<PathBuf, AgentOpError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid(
            "A path is required: give one relative to the home or absolute under /home/coder.",
        ));
    }
    if trimmed.contains('\0') {
        return Err(invalid("The path contains a NUL character."));
    }
    let rest = if let Some(rest) = trimmed.strip_prefix(WORKSPACE_HOME) {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(outside(trimmed));
        }
        rest
    } else if trimmed == "~" {
        ""
    } else if let Some(rest) = trimmed.strip_prefix("~/") {
        rest
    } else if trimmed.starts_with('/') {
        return Err(outside(trimmed));
    } else {
        trimmed
    };
    let mut out = PathBuf::new();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(outside(trimmed));
                }
            }
            Component::Prefix(_) => return Err(outside(trimmed)),
        }
    }
    Ok(out)
}

fn outside(raw: &str) -> AgentOpError {
    invalid(format!(
        "{raw:?} is outside the workspace: paths must stay inside {WORKSPACE_HOME}."
    ))
}

/// How a host path inside the home appears inside the workspace.
fn shown(home: &Path, real: &Path) -> String {
    match real.strip_prefix(home) {
        Ok(rest) if rest.as_os_str().is_empty() => WORKSPACE_HOME.to_owned(),
        Ok(rest) => format!("{WORKSPACE_HOME}/{}", rest.display()),
        Err(_) => real.display().to_string(),
    }
}

fn canonical_home(home: &Path) -> Result<PathBuf, AgentOpError> {
    home.canonicalize().map_err(|_| {
        AgentOpError::Busy(
            "The workspace has no files yet: start it first (a start build prepares its home)."
                .into(),
        )
    })
}

/// Resolves symlinks and checks the result is inside the home.
fn resolve_existing(home: &Path, rel: &Path) -> Result<PathBuf, AgentOpError> {
    let target = home.join(rel);
    let display = shown(home, &target);
    let real = target.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if link_leaves(home, &target) => invalid(format!(
            "{display} is a symbolic link (or under one) pointing outside the workspace; it is not followed."
        )),
        std::io::ErrorKind::NotFound => {
            AgentOpError::NotFound(format!("{display} does not exist."))
        }
        _ => invalid(format!("{display} cannot be resolved: {e}")),
    })?;
    if !real.starts_with(home) {
        return Err(invalid(format!(
            "{display} is a symbolic link (or under one) pointing outside the workspace; it is not followed."
        )));
    }
    Ok(real)
}

/// Whether `path`, or a directory above it inside the home, is a symbolic link whose target is
/// outside the home: such a link is refused as an escape even when its target does not exist
/// (here, because the sandbox does not show it).
fn link_leaves(home: &Path, path: &Path) -> bool {
    let mut current = Some(path);
    while let Some(p) = current {
        if !p.starts_with(home) || p == home {
            return false;
        }
        if let Ok(target) = std::fs::read_link(p) {
            let joined = p.parent().unwrap_or(home).join(target);
            let mut normal = PathBuf::new();
            for c in joined.components() {
                match c {
                    Component::ParentDir => {
                        normal.pop();
                    }
                    Component::CurDir => {}
                    other => normal.push(other),
                }
            }
            return !normal.starts_with(home);
        }
        current = p.parent();
    }
    false
}

/// The real path of an open descriptor, which must be inside the home.
fn verify_fd(home: &Path, fd: &OwnedFd, display: &str) -> Result<PathBuf, AgentOpError> {
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| AgentOpError::internal("cannot check an opened path", e))?;
    if !real.starts_with(home) {
        return Err(invalid(format!(
            "{display} moved outside the workspace while it was being opened; nothing was done."
        )));
    }
    Ok(real)
}

fn open_error(display: &str, e: Errno) -> AgentOpError {
    match e {
        Errno::NOENT => AgentOpError::NotFound(format!("{display} does not exist.")),
        Errno::LOOP => invalid(format!(
            "{display} is a symbolic link that changed while it was being opened; try again."
        )),
        Errno::NOTDIR => invalid(format!("{display} is not a directory.")),
        Errno::ISDIR => invalid(format!("{display} is a directory.")),
        Errno::ACCESS | Errno::PERM => invalid(format!("{display}: permission denied.")),
        other => AgentOpError::internal(&format!("cannot open {display}"), other),
    }
}

pub fn list_dir(home: &Path, raw: &str) -> Result<DirListing, AgentOpError> {
    let home = canonical_home(home)?;
    let rel = relative_to_home(raw).or_else(|e| {
        if raw.trim().is_empty() {
            Ok(PathBuf::new())
        } else {
            Err(e)
        }
    })?;
    let real = resolve_existing(&home, &rel)?;
    let display = shown(&home, &real);
    let fd = open(
        &real,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| open_error(&display, e))?;
    let real = verify_fd(&home, &fd, &display)?;
    let via_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let mut contents = Vec::new();
    let entries = std::fs::read_dir(&via_fd)
        .map_err(|e| AgentOpError::internal(&format!("cannot list {display}"), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::symlink_metadata(via_fd.join(&name)) else {
            continue;
        };
        contents.push(DirEntry {
            absolute_path_string: shown(&home, &real.join(&name)),
            is_dir: meta.is_dir(),
            is_symlink: meta.file_type().is_symlink(),
            size: meta.len(),
            name,
        });
    }
    contents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(DirListing {
        absolute_path_string: shown(&home, &real),
        contents,
    })
}

/// Opens an existing regular file for reading, inside the home.
fn open_for_read(home: &Path, raw: &str) -> Result<(File, String), AgentOpError> {
    let rel = relative_to_home(raw)?;
    let real = resolve_existing(home, &rel)?;
    let display = shown(home, &real);
    // NONBLOCK: opening a FIFO must not hang the server.
    let fd = open(
        &real,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| open_error(&display, e))?;
    verify_fd(home, &fd, &display)?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| AgentOpError::internal(&format!("cannot stat {display}"), e))?;
    if meta.is_dir() {
        return Err(invalid(format!(
            "{display} is a directory; list it instead."
        )));
    }
    if !meta.is_file() {
        return Err(invalid(format!("{display} is not a regular file.")));
    }
    Ok((file, display))
}

pub fn read_file(
    home: &Path,
    raw: &str,
    offset: u64,
    limit: u64,
) -> Result<FileContent, AgentOpError> {
    let home = canonical_home(home)?;
    let (mut file, display) = open_for_read(&home, raw)?;
    let size = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| AgentOpError::internal("cannot stat the file", e))?;
    if offset > size {
        return Err(invalid(format!(
            "offset {offset} is past the end of {display} ({size} bytes)."
        )));
    }
    let limit = if limit == 0 {
        MAX_READ
    } else {
        limit.min(MAX_READ)
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| AgentOpError::internal("cannot seek", e))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| AgentOpError::internal(&format!("cannot read {display}"), e))?;
    if bytes.contains(&0) {
        return Err(invalid(format!(
            "{display} is a binary file ({size} bytes); inspect it with a command such as `xxd` or `base64`."
        )));
    }
    let length = bytes.len() as u64;
    Ok(FileContent {
        mime_type: mime_type(&display).to_owned(),
        content: String::from_utf8_lossy(&bytes).into_owned(),
        absolute_path_string: display,
        size,
        offset,
        length,
        has_more: offset + length < size,
    })
}

/// Creates the directories of `rel` under the home, never following a link out of it; returns
/// the real path of the deepest one.
fn ensure_dir(home: &Path, rel: &Path) -> Result<PathBuf, AgentOpError> {
    let mut current = home.to_path_buf();
    for c in rel.components() {
        let next = current.join(c);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let real = resolve_existing(home, next.strip_prefix(home).unwrap_or(&next))?;
                if !real.is_dir() {
                    return Err(invalid(format!(
                        "{} is not a directory.",
                        shown(home, &next)
                    )));
                }
                current = real;
            }
            Ok(meta) if meta.is_dir() => current = next,
            Ok(_) => {
                return Err(invalid(format!(
                    "{} is not a directory.",
                    shown(home, &next)
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&next)
                    .map_err(|e| invalid(format!("cannot create {}: {e}", shown(home, &next))))?;
                current = next;
            }
            Err(e) => {
                return Err(AgentOpError::internal(
                    &format!("cannot inspect {}", shown(home, &next)),
                    e,
                ));
            }
        }
    }
    Ok(current)
}

/// Writes `content` to the file at `rel`; a final symlink is followed only when it points
/// inside the home.
fn write_at(home: &Path, rel: &Path, content: &[u8], follow: bool) -> Result<String, AgentOpError> {
    let Some(name) = rel.file_name() else {
        return Err(invalid(format!(
            "{WORKSPACE_HOME} is a directory; name a file inside it."
        )));
    };
    let parent = ensure_dir(home, rel.parent().unwrap_or(Path::new("")))?;
    let parent_display = shown(home, &parent);
    let dir = open(
        &parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| open_error(&parent_display, e))?;
    let parent = verify_fd(home, &dir, &parent_display)?;
    let display = shown(home, &parent.join(name));
    let fd = match openat(
        &dir,
        name,
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::TRUNC
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => fd,
        Err(Errno::LOOP) if follow => {
            let target = parent.join(name);
            let real = target.canonicalize().map_err(|_| {
                invalid(format!(
                    "{display} is a symbolic link to a missing target; it is not followed."
                ))
            })?;
            if !real.starts_with(home) {
                return Err(invalid(format!(
                    "{display} is a symbolic link pointing outside the workspace; refusing to write through it."
                )));
            }
            let rel = real.strip_prefix(home).unwrap_or(&real).to_path_buf();
            return write_at(home, &rel, content, false);
        }
        Err(e) => return Err(open_error(&display, e)),
    };
    let mut file = File::from(fd);
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(invalid(format!("{display} is not a regular file.")));
    }
    file.write_all(content)
        .map_err(|e| AgentOpError::internal(&format!("cannot write {display}"), e))?;
    Ok(display)
}

pub fn write_file(home: &Path, raw: &str, content: &[u8]) -> Result<String, AgentOpError> {
    let home = canonical_home(home)?;
    let rel = relative_to_home(raw)?;
    write_at(&home, &rel, content, true)
}

/// Applies every edit in memory first; files are written only when all edits apply.
pub fn edit_files(home: &Path, files: &[FileEdits]) -> Result<Vec<EditResult>, AgentOpError> {
    let home = canonical_home(home)?;
    if files.is_empty() {
        return Err(invalid("Give at least one file to edit."));
    }
    let mut planned = Vec::new();
    for f in files {
        let (mut file, display) = open_for_read(&home, &f.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_EDIT_FILE {
            return Err(invalid(format!(
                "{display} is larger than {} MiB; edit it with a command instead.",
                MAX_EDIT_FILE / 1024 / 1024
            )));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| AgentOpError::internal(&format!("cannot read {display}"), e))?;
        let mut text = String::from_utf8(bytes)
            .map_err(|_| invalid(format!("{display} is not UTF-8 text.")))?;
        if f.edits.is_empty() {
            return Err(invalid(format!("No edits given for {display}.")));
        }
        let mut replacements = 0;
        for (i, edit) in f.edits.iter().enumerate() {
            if edit.search.is_empty() {
                return Err(invalid(format!(
                    "{display}, edit {}: the search text is empty.",
                    i + 1
                )));
            }
            let count = text.matches(edit.search.as_str()).count();
            if count == 0 {
                return Err(invalid(format!(
                    "{display}, edit {}: the search text was not found. It must match the file exactly, whitespace included. Nothing was changed.",
                    i + 1
                )));
            }
            if count > 1 && !edit.replace_all {
                return Err(invalid(format!(
                    "{display}, edit {}: the search text matches {count} times. Include more surrounding text so it matches once, or set replace_all. Nothing was changed.",
                    i + 1
                )));
            }
            text = text.replace(edit.search.as_str(), &edit.replace);
            replacements += count;
        }
        planned.push((f.path.clone(), text, replacements));
    }
    let mut results = Vec::new();
    for (path, text, replacements) in planned {
        let rel = relative_to_home(&path)?;
        let display = write_at(&home, &rel, text.as_bytes(), true)?;
        results.push(EditResult {
            absolute_path_string: display,
            replacements,
        });
    }
    Ok(results)
}

fn mime_type(path: &str) -> &'static str {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "md" => "text/markdown",
        "yaml" | "yml" => "application/yaml",
        "xml" => "application/xml",
        "csv" => "text/csv",
        _ => "text/plain",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::agent::FileEdit;

    #[test]
    fn paths_are_normalized_and_escapes_refused() {
        let ok = |raw: &str| relative_to_home(raw).unwrap();
        assert_eq!(ok("a/b"), PathBuf::from("a/b"));
        assert_eq!(ok("/home/coder/a/../b"), PathBuf::from("b"));
        assert_eq!(ok("/home/coder"), PathBuf::new());
        assert_eq!(ok("~/x"), PathBuf::from("x"));
        for bad in [
            "",
            "..",
            "a/../../x",
            "/etc/passwd",
            "/home/coderx/a",
            "/home/other",
        ] {
            assert!(relative_to_home(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_operations_stay_inside_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, home.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), home.join("up")).unwrap();

        assert_eq!(
            write_file(&home, "a/b.txt", b"one two two").unwrap(),
            "/home/coder/a/b.txt"
        );
        let read = read_file(&home, "/home/coder/a/b.txt", 4, 3).unwrap();
        assert_eq!(read.content, "two");
        assert!(read.has_more);
        assert!(read_file(&home, "link", 0, 0).is_err());
        assert!(read_file(&home, "up/secret.txt", 0, 0).is_err());
        assert!(write_file(&home, "link", b"x").is_err());
        assert!(write_file(&home, "up/new.txt", b"x").is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
        assert!(!dir.path().join("new.txt").exists());

        let edits = |search: &str, all: bool| {
            vec![FileEdits {
                path: "a/b.txt".into(),
                edits: vec![FileEdit {
                    search: search.into(),
                    replace: "2".into(),
                    replace_all: all,
                }],
            }]
        };
        assert!(
            edit_files(&home, &edits("two", false))
                .unwrap_err()
                .to_string()
                .contains("2 times")
        );
        assert!(edit_files(&home, &edits("three", false)).is_err());
        assert_eq!(
            edit_files(&home, &edits("two", true)).unwrap()[0].replacements,
            2
        );
        assert_eq!(
            std::fs::read_to_string(home.join("a/b.txt")).unwrap(),
            "one 2 2"
        );

        let listing = list_dir(&home, "/home/coder").unwrap();
        let names: Vec<&str> = listing.contents.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "link", "up"]);
        assert!(list_dir(&home, "up").is_err());
    }
}
