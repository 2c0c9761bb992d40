//! Template archives: checking an upload is a tar, finding its manifest, and copying its files
//! into a workspace home without letting any entry land outside it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::domain::manifest::MANIFEST_FILE;
use crate::domain::text::limits;

/// The largest manifest or README read from an archive.
const MAX_TEXT_FILE: u64 = 1024 * 1024;
/// Mode bits never extracted: set-user-id, set-group-id and sticky (`S_ISUID | S_ISGID |
/// S_ISVTX`). A server running as root would otherwise create set-uid-root programs that a
/// workspace could run.
const FILE_MODE_MASK: u32 = 0o7000;
/// On directories the sticky bit only restricts deletion (as on `/tmp`) and is kept.
const DIR_MODE_MASK: u32 = 0o6000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArchiveError(pub String);

/// The parts of a template archive the import job reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// `coder.yaml`, if the archive has one at its root.
    pub manifest: Option<String>,
    /// `README.md` at the root, or empty.
    pub readme: String,
}

/// The entry's path relative to the archive root, or `None` when it is absolute or climbs out.
fn relative_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Checks that `data` is a readable tar archive; returns how many entries it has.
pub fn validate_archive(data: &[u8]) -> Result<usize, ArchiveError> {
    let not_tar = |e: std::io::Error| {
        ArchiveError(format!(
            "The upload is not a valid tar archive ({e}). Create one with `tar -cf template.tar -C <dir> .`."
        ))
    };
    let mut archive = tar::Archive::new(data);
    let mut count = 0;
    for entry in archive.entries().map_err(not_tar)? {
        entry.map_err(not_tar)?;
        count += 1;
    }
    if count == 0 && !data.is_empty() && data.iter().any(|b| *b != 0) {
        return Err(ArchiveError(
            "The upload is not a valid tar archive. Create one with `tar -cf template.tar -C <dir> .`."
                .into(),
        ));
    }
    Ok(count)
}

/// Reads the manifest and README from the archive root.
pub fn read_template_source(data: &[u8]) -> Result<TemplateSource, ArchiveError> {
    let mut archive = tar::Archive::new(data);
    let mut source = TemplateSource {
        manifest: None,
        readme: String::new(),
    };
    let broken =
        |e: std::io::Error| ArchiveError(format!("The template archive is unreadable: {e}"));
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(path) = entry.path().ok().and_then(|p| relative_path(&p)) else {
            continue;
        };
        let is_manifest = path == Path::new(MANIFEST_FILE);
        let is_readme = path == Path::new("README.md");
        if !is_manifest && !is_readme {
            continue;
        }
        if entry.header().size().unwrap_or(0) > MAX_TEXT_FILE {
            return Err(ArchiveError(format!(
                "{} is larger than {} KiB.",
                path.display(),
                MAX_TEXT_FILE / 1024
            )));
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| ArchiveError(format!("{} is not UTF-8 text: {e}", path.display())))?;
        if is_manifest {
            source.manifest = Some(text);
        } else {
            // The README is stored with the version and shown on pages: the stored-text rule.
            limits::README
                .check(&text)
                .map_err(|problem| ArchiveError(format!("README.md {problem}.")))?;
            source.readme = text;
        }
    }
    Ok(source)
}

/// Copies the archive's regular files and directories (not the manifest) into `dest`. Links,
/// devices and entries whose path leaves the archive are skipped and reported.
pub fn extract_into(data: &[u8], dest: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut archive = tar::Archive::new(data);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let broken =
        |e: std::io::Error| ArchiveError(format!("The template archive is unreadable: {e}"));
    let mut skipped = Vec::new();
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let raw = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<unreadable path>".into());
        let kind = entry.header().entry_type();
        let Some(path) = entry.path().ok().and_then(|p| relative_path(&p)) else {
            if raw.trim_matches(|c| c == '.' || c == '/').is_empty() {
                continue;
            }
            skipped.push(format!("{raw}: the path leaves the archive"));
            continue;
        };
        if path == Path::new(MANIFEST_FILE) {
            continue;
        }
        if !(kind.is_file() || kind.is_dir()) {
            skipped.push(format!(
                "{raw}: only regular files and directories are copied"
            ));
            continue;
        }
        entry.set_mask(if kind.is_dir() {
            DIR_MODE_MASK
        } else {
            FILE_MODE_MASK
        });
        // unpack_in re-checks the path and refuses to write through links; none exist, since
        // links are never extracted.
        entry
            .unpack_in(dest)
            .map_err(|e| ArchiveError(format!("cannot copy {raw} into the workspace: {e}")))?;
    }
    Ok(skipped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn finds_the_manifest_and_readme_at_the_root() {
        let data = tar_of(&[
            ("./coder.yaml", b"agent: {}\n"),
            ("README.md", b"# hi"),
            ("sub/coder.yaml", b"ignored"),
        ]);
        let source = read_template_source(&data).unwrap();
        assert_eq!(source.manifest.as_deref(), Some("agent: {}\n"));
        assert_eq!(source.readme, "# hi");
        assert_eq!(validate_archive(&data).unwrap(), 3);
        assert!(validate_archive(b"definitely not a tar archive, just some text").is_err());
    }

    #[test]
    fn extraction_skips_the_manifest_and_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        header.set_cksum();
        builder.append_link(&mut header, "escape", "/etc").unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "dir/file.txt", &b"hi"[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "coder.yaml", &b"x"[..])
            .unwrap();
        let data = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let skipped = extract_into(&data, dir.path()).unwrap();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(
            std::fs::read(dir.path().join("dir/file.txt")).unwrap(),
            b"hi"
        );
        assert!(!dir.path().join("coder.yaml").exists());
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn extraction_drops_setuid_setgid_and_sticky_bits() {
        use std::os::unix::fs::PermissionsExt;
        let mut builder = tar::Builder::new(Vec::new());
        for (path, mode) in [
            ("suid", 0o4755),
            ("sgid", 0o2755),
            ("sticky", 0o1644),
            ("all", 0o7777),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(mode);
            header.set_cksum();
            builder.append_data(&mut header, path, &b"x"[..]).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o3777);
        header.set_cksum();
        builder
            .append_data(&mut header, "shared", std::io::empty())
            .unwrap();
        let data = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        extract_into(&data, dir.path()).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("suid"), 0o755);
        assert_eq!(mode("sgid"), 0o755);
        assert_eq!(mode("sticky"), 0o644);
        assert_eq!(mode("all"), 0o777);
        assert_eq!(mode("shared"), 0o1777, "a directory keeps its sticky bit");
    }

    #[test]
    fn a_readme_with_nul_is_refused() {
        let data = tar_of(&[("coder.yaml", b""), ("README.md", b"a\0b")]);
        let err = read_template_source(&data).unwrap_err();
        assert!(err.0.contains("README.md must not contain a NUL"), "{err}");
    }
}

/// Property tests: arbitrary bytes and generated archives with hostile paths and contents. The
/// readers never panic, answer in bounded time, and find exactly the manifest written at the
/// root.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    fn entry_path() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(MANIFEST_FILE.to_owned()),
            Just(format!("./{MANIFEST_FILE}")),
            Just(format!("sub/{MANIFEST_FILE}")),
            Just("README.md".to_owned()),
            Just("../escape".to_owned()),
            Just("/etc/passwd".to_owned()),
            "[a-z]{1,8}(/[a-z]{1,8}){0,3}",
        ]
    }

    /// A tar built by hand, with raw paths (`tar::Builder` refuses `..`), any mode and type.
    fn archive() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
        let entry = (
            entry_path(),
            prop_oneof![
                hostile_text().prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..64),
            ],
            any::<u32>(),
            prop::sample::select(vec![b'0', b'2', b'5', b'1', b'3', b'x']),
        );
        prop::collection::vec(entry, 0..6).prop_map(|entries| {
            let mut out = Vec::new();
            let mut manifest = None;
            for (path, data, mode, kind) in entries {
                let mut header = tar::Header::new_old();
                let name = header.as_old_mut();
                let bytes = path.as_bytes();
                name.name[..bytes.len().min(99)].copy_from_slice(&bytes[..bytes.len().min(99)]);
                header.set_mode(mode & 0o7777);
                header.set_size(data.len() as u64);
                header.set_entry_type(tar::EntryType::new(kind));
                header.set_cksum();
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&data);
                out.resize(out.len().div_ceil(512) * 512, 0);
                let at_root = path == MANIFEST_FILE || path == format!("./{MANIFEST_FILE}");
                if at_root && kind == b'0' {
                    manifest = Some(String::from_utf8(data).ok());
                }
            }
            out.extend_from_slice(&[0; 1024]);
            (out, manifest.flatten())
        })
    }

    proptest! {
        #![proptest_config(config(128))]

        #[test]
        fn arbitrary_bytes_are_refused_or_read(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            timed("validate_archive", || validate_archive(&data))?.ok();
            timed("read_template_source", || read_template_source(&data))?.ok();
        }

        #[test]
        fn generated_archives_yield_exactly_their_root_manifest((data, manifest) in archive()) {
            prop_assert!(timed("validate_archive", || validate_archive(&data))?.is_ok());
            match timed("read_template_source", || read_template_source(&data))? {
                Ok(source) => {
                    if manifest.is_some() {
                        prop_assert_eq!(source.manifest, manifest);
                    }
                    prop_assert!(limits::README.check(&source.readme).is_ok());
                }
                Err(e) => prop_assert!(!e.0.is_empty()),
            }
        }

        #[test]
        fn extraction_stays_inside_and_drops_special_bits((data, _) in archive()) {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("home");
            std::fs::create_dir(&dest).unwrap();
            let _ = timed("extract_into", || extract_into(&data, &dest))?;
            prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing beside home");
            let mut stack = vec![dest];
            while let Some(path) = stack.pop() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    let entry = entry.unwrap();
                    let meta = std::fs::symlink_metadata(entry.path()).unwrap();
                    prop_assert!(!meta.file_type().is_symlink());
                    let special = if meta.is_dir() { DIR_MODE_MASK } else { FILE_MODE_MASK };
                    prop_assert_eq!(meta.permissions().mode() & special, 0, "{:?}", entry.path());
                    if meta.is_dir() {
                        stack.push(entry.path());
                    }
                }
            }
        }
    }
}
