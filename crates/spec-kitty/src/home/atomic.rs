//! Replacing a file so that a reader sees the old or the new version, never
//! a torn one, and a crash leaves one of the two on disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to a temp file beside `path` (created with `mode`, so
/// it is never readable by others even for an instant), fsyncs it, renames
/// it over `path`, and fsyncs the directory.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        ulid::Ulid::new()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Moves `from` to `to` (same directory), making it 0600 first: the file
/// holds secrets (a corrupt credentials file still may), so its kept copy
/// is never readable by others, not even for an instant under its new name.
pub fn move_aside_private(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(from, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(from, to)
}
