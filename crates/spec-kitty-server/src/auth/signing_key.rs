//! The server's JWT signing key: 64 random bytes, made on first start and
//! kept in the data directory with mode 0600, so tokens survive restarts.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the signing key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the signing key {path} is corrupt (expected 128 hex characters); restore it from a backup, or delete it to make a new one (every issued token then stops working)"
    )]
    Corrupt { path: PathBuf },
    #[error("could not gather randomness for a signing key: {0}")]
    Random(String),
}

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "signing-key";

/// The key's length in bytes (HS256 wants at least 32; we make 64).
pub const KEY_BYTES: usize = 64;

/// The key's text form, the same in the key file and in the database: its
/// [`KEY_BYTES`] bytes as 128 lower-case hex characters.
pub fn encode_key(key: &[u8]) -> String {
    crate::hex::encode(key)
}

/// Reads a key's text form, wherever it is kept: exactly 128 hex
/// characters (surrounding white space ignored), or `None`.
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    crate::hex::decode(text.trim()).filter(|key| key.len() == KEY_BYTES)
}

/// Loads a key file that must exist (given by configuration, shared by
/// every instance).
pub fn load_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    decode_key(&text).ok_or(KeyError::Corrupt {
        path: path.to_path_buf(),
    })
}

/// Loads the key from `dir`, creating it (mode 0600) if absent.
pub fn load_or_create(dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = dir.join(KEY_FILE);
    loop {
        match fs::read_to_string(&path) {
            Ok(text) => {
                if let Ok(meta) = fs::metadata(&path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(path = %path.display(), "signing key is readable by others; run: chmod 600 {}", path.display());
                }
                return decode_key(&text).ok_or(KeyError::Corrupt { path });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(KeyError::Read { path, source }),
        }
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        let hex = encode_key(&key);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeyError::Create {
                path: path.clone(),
                source,
            })?;
        // Write to a private temp file, then link it into place: another
        // process starting at the same moment either wins or reads ours.
        let tmp = dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(hex.as_bytes())?;
                f.sync_all()
            });
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(KeyError::Create { path, source });
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(key.to_vec()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(KeyError::Create { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path()).expect("created");
        assert_eq!(first.len(), 64);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).expect("reloaded"), first);
    }

    #[test]
    fn one_text_form_for_file_and_database() {
        let key = [7u8; KEY_BYTES];
        assert_eq!(
            decode_key(&format!(" {}\n", encode_key(&key))),
            Some(key.to_vec())
        );
        assert_eq!(
            decode_key(&"ab".repeat(32)),
            None,
            "64 hex characters is too short"
        );
        assert_eq!(decode_key(&"ab".repeat(65)), None);
    }

    #[test]
    fn corrupt_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), "garbage").expect("write");
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyError::Corrupt { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(KEY_FILE)).expect("kept"),
            "garbage"
        );
    }
}
