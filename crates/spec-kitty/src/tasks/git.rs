//! Where an event was made: the git branch and commit, read straight from
//! `.git` (no `git` process: `move-task` must answer in milliseconds).

use std::path::{Path, PathBuf};

/// Branch and commit of the repository around `start`, when there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    pub branch: Option<String>,
    pub commit: Option<String>,
}

/// Finds the git directory for `start` (walking up), following the
/// `gitdir:` file of a worktree.
fn git_dir(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(current) = dir {
        let candidate = current.join(".git");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if candidate.is_file() {
            let text = std::fs::read_to_string(&candidate).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            let path = PathBuf::from(target);
            return Some(if path.is_absolute() {
                path
            } else {
                current.join(path)
            });
        }
        dir = current.parent();
    }
    None
}

/// Reads HEAD; a detached HEAD has a commit and no branch.
pub fn info(start: &Path) -> GitInfo {
    let Some(dir) = git_dir(start) else {
        return GitInfo::default();
    };
    let Ok(head) = std::fs::read_to_string(dir.join("HEAD")) else {
        return GitInfo::default();
    };
    let head = head.trim();
    match head.strip_prefix("ref:") {
        Some(reference) => {
            let reference = reference.trim();
            let branch = reference.strip_prefix("refs/heads/").map(str::to_string);
            GitInfo {
                branch,
                commit: resolve(&dir, reference),
            }
        }
        None if head.len() >= 40 => GitInfo {
            branch: None,
            commit: Some(head.to_string()),
        },
        None => GitInfo::default(),
    }
}

/// The commit a ref points to: loose ref file (in the worktree's git dir
/// or the common dir), then packed-refs.
fn resolve(dir: &Path, reference: &str) -> Option<String> {
    let common = std::fs::read_to_string(dir.join("commondir"))
        .ok()
        .map(|c| dir.join(c.trim()))
        .unwrap_or_else(|| dir.to_path_buf());
    for base in [dir, common.as_path()] {
        if let Ok(text) = std::fs::read_to_string(base.join(reference)) {
            let sha = text.trim();
            if sha.len() >= 40 {
                return Some(sha.to_string());
            }
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (sha, name) = line.split_once(' ')?;
        (name.trim() == reference).then(|| sha.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_branch_and_commit_from_loose_and_packed_refs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).expect("dirs");
        std::fs::write(git.join("HEAD"), "ref: refs/heads/001-feature\n").expect("head");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack\n{sha} refs/heads/001-feature\n"),
        )
        .expect("packed");
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("sub");
        let found = info(&sub);
        assert_eq!(found.branch.as_deref(), Some("001-feature"));
        assert_eq!(found.commit.as_deref(), Some(sha));
        assert_eq!(
            info(&std::env::temp_dir().join("definitely/not/a/repo")),
            GitInfo::default()
        );
    }
}
