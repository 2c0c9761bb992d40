//! A template uploaded as a folder (`<input type="file" webkitdirectory>`). Browsers send each
//! file of the folder as its own form part whose file name is the path below the chosen folder's
//! parent, `webkitRelativePath` (File and Directory Entries API §2, e.g. `basic/coder.yaml`).
//! This packs them into the tar archive the import takes, with that first folder dropped so
//! `coder.yaml` sits at the archive's root, as `coder templates push -d` packs a directory.

use crate::domain::DomainError;

/// One file of the chosen folder.
pub struct FolderFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// The chosen folder's name (a default for the template's) and the archive of its files.
pub fn pack(files: Vec<FolderFile>) -> Result<(String, Vec<u8>), DomainError> {
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let parts = components(&file.path)?;
        entries.push((parts, file.data));
    }
    // Every file of one folder shares its first component; a flat selection of files has none.
    let folder = match entries.first() {
        Some((first, _)) if first.len() > 1 => first[0].clone(),
        _ => String::new(),
    };
    let nested = !folder.is_empty() && entries.iter().all(|(p, _)| p.len() > 1 && p[0] == folder);
    let mut builder = tar::Builder::new(Vec::new());
    let mut packed = 0_usize;
    for (parts, data) in entries {
        let inner = if nested { &parts[1..] } else { &parts[..] };
        // Version-control metadata is not part of a template (as the CLI leaves `.git` out).
        if inner.first().is_some_and(|c| c == ".git") {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, inner.join("/"), data.as_slice())
            .map_err(|e| DomainError::invalid(format!("The folder could not be packed: {e}.")))?;
        packed += 1;
    }
    if packed == 0 {
        return Err(DomainError::invalid(
            "The folder is empty; choose the folder that holds coder.yaml.",
        ));
    }
    let archive = builder
        .into_inner()
        .map_err(|e| DomainError::invalid(format!("The folder could not be packed: {e}.")))?;
    Ok((if nested { folder } else { String::new() }, archive))
}

/// A relative path's components; anything that could leave the folder is refused.
fn components(path: &str) -> Result<Vec<String>, DomainError> {
    let refused = || {
        DomainError::invalid(format!(
            "The file {path:?} has a path a template cannot hold; upload the folder again."
        ))
    };
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(refused());
    }
    let parts: Vec<String> = path.split('/').map(str::to_owned).collect();
    if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(refused());
    }
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> FolderFile {
        FolderFile {
            path: path.to_owned(),
            data: data.as_bytes().to_vec(),
        }
    }

    fn names(archive: &[u8]) -> Vec<String> {
        let mut reader = tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn a_folder_is_packed_with_its_own_name_dropped() {
        let (name, archive) = pack(vec![
            file("basic/coder.yaml", "x"),
            file("basic/scripts/start.sh", "y"),
            file("basic/.git/HEAD", "z"),
        ])
        .unwrap();
        assert_eq!(name, "basic");
        assert_eq!(names(&archive), ["coder.yaml", "scripts/start.sh"]);
    }

    #[test]
    fn loose_files_stay_as_they_are() {
        let (name, archive) = pack(vec![file("coder.yaml", "x")]).unwrap();
        assert_eq!(name, "");
        assert_eq!(names(&archive), ["coder.yaml"]);
    }

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\b",
            "a/\nb",
        ] {
            assert!(pack(vec![file(bad, "x")]).is_err(), "{bad:?}");
        }
        assert!(pack(Vec::new()).is_err());
        assert!(pack(vec![file("basic/.git/HEAD", "x")]).is_err());
    }
}
