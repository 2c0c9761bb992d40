//! A size cap on a workspace's home and `/tmp`: both live on a filesystem of their own, an
//! ext4 image (sparse, so it only takes the space it uses) loop-mounted on the host, so that a
//! workspace that fills its disk fills only its own. Needs root, `mkfs.ext4` and `mount`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image file of a workspace whose disk is capped.
pub fn image(root: &Path) -> PathBuf {
    root.join("disk.img")
}

/// Where the image is mounted; the home and `/tmp` are directories on it.
pub fn mount_point(root: &Path) -> PathBuf {
    root.join("disk")
}

fn run(program: &str, args: &[&str]) -> std::io::Result<()> {
    let out = Command::new(program).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    // Field 5 is the mount point, with spaces and the like escaped as octal.
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m.replace("\\040", " ") == wanted)
}

/// Creates the image on the first start (owned by `uid` inside) and mounts it; returns true
/// when it was just created (empty, so the template's files go in).
pub fn ensure(root: &Path, size_bytes: u64, uid: u32) -> std::io::Result<bool> {
    let img = image(root);
    let mnt = mount_point(root);
    let fresh = !img.exists();
    if fresh {
        let file = std::fs::File::create(&img)?;
        file.set_len(size_bytes)?;
        drop(file);
        let owner = format!("root_owner={uid}:{uid}");
        // -m 0: no blocks reserved for root, who never writes there.
        if let Err(e) = run(
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", "-E", &owner, &img.to_string_lossy()],
        ) {
            let _ = std::fs::remove_file(&img);
            return Err(e);
        }
    }
    std::fs::create_dir_all(&mnt)?;
    if !is_mounted(&mnt) {
        run(
            "mount",
            &[
                "-o",
                "loop,nosuid,nodev",
                &img.to_string_lossy(),
                &mnt.to_string_lossy(),
            ],
        )?;
    }
    if fresh {
        let _ = std::fs::remove_dir(mnt.join("lost+found"));
    }
    Ok(fresh)
}

/// Unmounts the image if it is mounted (lazily if something still holds it).
pub fn unmount(root: &Path) {
    let mnt = mount_point(root);
    if !is_mounted(&mnt) {
        return;
    }
    let path = mnt.to_string_lossy().into_owned();
    if let Err(e) = run("umount", &[&path]).or_else(|_| run("umount", &["-l", &path])) {
        tracing::warn!(error = %e, "could not unmount a workspace disk");
    }
}
