//! `spec-kitty-server backup FILE` and `restore FILE` (SQLite; PostgreSQL
//! has `pg_dump` and `pg_restore`).

use std::path::Path;

use super::Failure;
use crate::config::StorageArgs;
use crate::store::sqlite;

/// The SQLite database file named by the storage settings, or why there is
/// none.
fn sqlite_file(storage: &StorageArgs) -> Result<std::path::PathBuf, Failure> {
    let url = storage.resolve().database_url;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(Failure(
            "backup and restore are for SQLite; for PostgreSQL use pg_dump and pg_restore (see the README)"
                .into(),
        ));
    }
    Ok(sqlite::path_from_url(&url)?)
}

pub(super) fn backup(file: &Path, storage: &StorageArgs) -> Result<(), Failure> {
    let db = sqlite_file(storage)?;
    sqlite::backup::backup(&db, file)?;
    println!(
        "Backed up {} to {} (mode 0600: it holds password hashes)",
        db.display(),
        file.display()
    );
    Ok(())
}

pub(super) fn restore(file: &Path, storage: &StorageArgs, force: bool) -> Result<(), Failure> {
    let db = sqlite_file(storage)?;
    sqlite::backup::restore(file, &db, force)?;
    println!("Restored {} from {}", db.display(), file.display());
    Ok(())
}
