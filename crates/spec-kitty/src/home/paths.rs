//! Where the client keeps its files: everything under `$HOME/.spec-kitty/`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the home directory could not be found or prepared.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("HOME is not set; spec-kitty keeps its files under $HOME/.spec-kitty")]
    NoHome,
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The client's directory and the files in it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$HOME/.spec-kitty`.
    pub fn from_env() -> Result<Home, PathsError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(PathsError::NoHome)?;
        Ok(Home::at(PathBuf::from(home).join(".spec-kitty")))
    }

    /// A client directory at an explicit place (tests).
    pub fn at(root: PathBuf) -> Home {
        Home { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials")
    }

    pub fn credentials_lock(&self) -> PathBuf {
        self.root.join("credentials.lock")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn queue(&self) -> PathBuf {
        self.root.join("events.db")
    }

    /// The Python client's queue while logged out (its "legacy" queue),
    /// which `sync import --python-queue` empties.
    pub fn python_queue(&self) -> PathBuf {
        self.root.join("queue.db")
    }

    /// Where the Python client 2.1+ keeps one queue per log-in scope
    /// (`queue-<hash>.db`): it writes there, not to `queue.db`, while
    /// logged in.
    pub fn python_queues_dir(&self) -> PathBuf {
        self.root.join("queues")
    }

    /// The scope the Python client used last (`server|user|team`, plain
    /// text), which names one of the files in [`Home::python_queues_dir`].
    pub fn python_active_scope(&self) -> PathBuf {
        self.root.join("active_queue_scope")
    }

    /// Creates the directory with mode 0700 if missing, and narrows it to
    /// 0700 if it exists wider (it holds credentials).
    pub fn ensure(&self) -> Result<(), PathsError> {
        let create = |source| PathsError::Create {
            path: self.root.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(create)?;
        let mode = std::fs::metadata(&self.root)
            .map_err(create)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .map_err(create)?;
        }
        Ok(())
    }
}

/// Shows a path with `$HOME` replaced by `~`, for messages.
pub fn display(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}
