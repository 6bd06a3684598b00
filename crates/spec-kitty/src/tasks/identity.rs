//! The project identity in `.kittify/config.yaml` (contract section 6):
//!
//! ```yaml
//! project:
//!   uuid: 550e8400-e29b-41d4-a716-446655440000
//!   slug: my-project
//!   node_id: 3f2a9c1b7d4e
//! ```
//!
//! The file is the user's (and the Python client's), so it is edited by
//! lines, not re-serialized: missing keys are added to the `project:` block
//! and every other byte stays as it was.

use std::path::Path;

use crate::tasks::project::{Project, ProjectError};

/// Who and where an event comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uuid: String,
    pub slug: String,
    pub node_id: String,
}

/// A stable 12-hex-character id for this machine and user: the same every
/// run, different for another user or machine.
pub fn local_node_id() -> String {
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"))
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    // FNV-1a: tiny, stable across versions and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in machine
        .trim()
        .bytes()
        .chain([0])
        .chain(user.bytes())
        .chain([0])
        .chain(home.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

fn unquote(raw: &str) -> String {
    let without_comment = match raw.find(" #") {
        Some(at) => &raw[..at],
        None => raw,
    };
    let value = without_comment.trim();
    let stripped = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
    stripped.unwrap_or(value).to_string()
}

/// Reads the identity, adding what is missing (and writing the file
/// atomically if anything was added).
pub fn load_or_create(project: &Project) -> Result<Identity, ProjectError> {
    let path = project.config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ProjectError::Read { path, source }),
    };
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let block_start = lines.iter().position(|line| {
        let bare = line.trim_end();
        bare == "project:" || bare.starts_with("project: #") || bare.starts_with("project:  #")
    });
    let mut found = (None, None, None);
    let mut indent = "  ".to_string();
    let mut insert_at = lines.len();
    if let Some(start) = block_start {
        insert_at = start + 1;
        let mut child_indent: Option<String> = None;
        for (offset, line) in lines[start + 1..].iter().enumerate() {
            let bare = line.trim_end_matches(['\n', '\r']);
            if bare.trim().is_empty() || bare.trim_start().starts_with('#') {
                continue;
            }
            let leading: String = bare.chars().take_while(|c| *c == ' ').collect();
            if leading.is_empty() {
                break;
            }
            let level = child_indent.get_or_insert_with(|| leading.clone());
            insert_at = start + 1 + offset + 1;
            if leading != *level {
                continue;
            }
            if let Some((key, value)) = bare.trim_start().split_once(':') {
                match key.trim() {
                    "uuid" => found.0 = Some(unquote(value)),
                    "slug" => found.1 = Some(unquote(value)),
                    "node_id" => found.2 = Some(unquote(value)),
                    _ => {}
                }
            }
        }
        if let Some(level) = child_indent {
            indent = level;
        }
    }
    if let Some(bad) = found
        .0
        .as_ref()
        .filter(|u| uuid::Uuid::try_parse(u).is_err())
    {
        return Err(ProjectError::InvalidConfig {
            path,
            reason: format!("project.uuid is not a UUID: '{bad}'"),
        });
    }
    let identity = Identity {
        uuid: found
            .0
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        slug: found
            .1
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| project.default_slug()),
        node_id: found
            .2
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(local_node_id),
    };
    let mut additions = String::new();
    if found.0.is_none() {
        // Quoted: a node id like `123456789012` or `1e5...` would otherwise
        // read back as a number in YAML (and in the Python client).
        additions.push_str(&format!("{indent}uuid: \"{}\"{newline}", identity.uuid));
    }
    if found.1.is_none() {
        additions.push_str(&format!("{indent}slug: \"{}\"{newline}", identity.slug));
    }
    if found.2.is_none() {
        additions.push_str(&format!(
            "{indent}node_id: \"{}\"{newline}",
            identity.node_id
        ));
    }
    if additions.is_empty() {
        return Ok(identity);
    }
    let mut out = String::with_capacity(text.len() + additions.len() + 16);
    if block_start.is_none() {
        out.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push_str(newline);
        }
        out.push_str("project:");
        out.push_str(newline);
        out.push_str(&additions);
    } else {
        for (index, line) in lines.iter().enumerate() {
            if index == insert_at {
                out.push_str(&additions);
            }
            out.push_str(line);
            if index + 1 == insert_at && !line.ends_with('\n') {
                out.push_str(newline);
            }
        }
        if insert_at >= lines.len() {
            out.push_str(&additions);
        }
    }
    write(&path, &out)?;
    Ok(identity)
}

fn write(path: &Path, text: &str) -> Result<(), ProjectError> {
    let fail = |source| ProjectError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    crate::home::atomic::write(path, text.as_bytes(), 0o644).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(config: Option<&str>) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("My Repo");
        std::fs::create_dir_all(root.join(".kittify")).expect("dirs");
        if let Some(text) = config {
            std::fs::write(root.join(".kittify/config.yaml"), text).expect("write");
        }
        (dir, Project { root })
    }

    #[test]
    fn created_once_then_stable() {
        let (_dir, project) = project(None);
        let first = load_or_create(&project).expect("created");
        assert_eq!(first.slug, "my-repo");
        assert_eq!(first.node_id.len(), 12);
        assert_eq!(load_or_create(&project).expect("read"), first);
        let text = std::fs::read_to_string(project.config_path()).expect("read");
        assert!(text.starts_with("project:\n  uuid: \""), "{text}");
    }

    #[test]
    fn other_keys_and_comments_are_kept_and_missing_keys_added_in_the_block() {
        let original =
            "# settings\nagents:\n  - claude\nproject:\n    slug: 'kept-slug'  # mine\nvcs: git\n";
        let (_dir, project) = project(Some(original));
        let identity = load_or_create(&project).expect("read");
        assert_eq!(identity.slug, "kept-slug");
        let text = std::fs::read_to_string(project.config_path()).expect("read");
        assert!(text.starts_with("# settings\nagents:\n  - claude\nproject:\n    slug: 'kept-slug'  # mine\n    uuid: "), "{text}");
        assert!(text.ends_with("vcs: git\n"), "{text}");
        assert!(text.contains(&format!("    node_id: \"{}\"\n", identity.node_id)));
        assert_eq!(load_or_create(&project).expect("again"), identity);
    }

    #[test]
    fn existing_identity_is_read_not_rewritten() {
        let original = "project:\n  uuid: \"550e8400-e29b-41d4-a716-446655440000\"\n  slug: p\n  node_id: 3f2a9c1b7d4e\n";
        let (_dir, project) = project(Some(original));
        let identity = load_or_create(&project).expect("read");
        assert_eq!(identity.uuid, "550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(identity.node_id, "3f2a9c1b7d4e");
        assert_eq!(
            std::fs::read_to_string(project.config_path()).expect("read"),
            original
        );
    }
}
