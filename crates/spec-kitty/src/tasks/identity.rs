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

use super::project::{Project, ProjectError};
use super::yaml_line;

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

/// The `project:` block of the file as found: where it starts, the keys it
/// has, the indentation of its children and where new keys go.
struct Block {
    start: Option<usize>,
    uuid: Option<String>,
    slug: Option<String>,
    node_id: Option<String>,
    indent: String,
    insert_at: usize,
}

/// Finds the `project:` block among `lines` and reads its three keys.
fn find_block(lines: &[&str]) -> Block {
    let start = lines.iter().position(|line| {
        let bare = line.trim_end();
        bare == "project:" || bare.starts_with("project: #") || bare.starts_with("project:  #")
    });
    let mut block = Block {
        start,
        uuid: None,
        slug: None,
        node_id: None,
        indent: "  ".to_string(),
        insert_at: lines.len(),
    };
    let Some(start) = start else {
        return block;
    };
    block.insert_at = start + 1;
    let mut child_indent: Option<String> = None;
    for (offset, line) in lines[start + 1..].iter().enumerate() {
        let bare = yaml_line::bare(line);
        if bare.trim().is_empty() || bare.trim_start().starts_with('#') {
            continue;
        }
        let leading: String = bare.chars().take_while(|c| *c == ' ').collect();
        if leading.is_empty() {
            break;
        }
        let level = child_indent.get_or_insert_with(|| leading.clone());
        block.insert_at = start + 1 + offset + 1;
        if leading != *level {
            continue;
        }
        if let Some((key, value)) = bare.trim_start().split_once(':') {
            let value = Some(yaml_line::value_after_colon(value));
            match key.trim() {
                "uuid" => block.uuid = value,
                "slug" => block.slug = value,
                "node_id" => block.node_id = value,
                _ => {}
            }
        }
    }
    if let Some(level) = child_indent {
        block.indent = level;
    }
    block
}

/// The `key: "value"` lines for what the block lacks. Quoted: a node id
/// like `123456789012` or `1e5...` would otherwise read back as a number in
/// YAML (and in the Python client).
fn additions(block: &Block, identity: &Identity, newline: &str) -> String {
    let indent = &block.indent;
    let mut additions = String::new();
    for (found, key, value) in [
        (&block.uuid, "uuid", &identity.uuid),
        (&block.slug, "slug", &identity.slug),
        (&block.node_id, "node_id", &identity.node_id),
    ] {
        if found.is_none() {
            additions.push_str(&format!(
                "{indent}{key}: {}{newline}",
                yaml_line::quote(value)
            ));
        }
    }
    additions
}

/// `text` with `additions` inserted into (or appended as) the block.
fn splice(text: &str, lines: &[&str], block: &Block, additions: &str, newline: &str) -> String {
    let mut out = String::with_capacity(text.len() + additions.len() + 16);
    if block.start.is_none() {
        out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push_str(newline);
        }
        out.push_str("project:");
        out.push_str(newline);
        out.push_str(additions);
        return out;
    }
    for (index, line) in lines.iter().enumerate() {
        if index == block.insert_at {
            out.push_str(additions);
        }
        out.push_str(line);
        if index + 1 == block.insert_at && !line.ends_with('\n') {
            out.push_str(newline);
        }
    }
    if block.insert_at >= lines.len() {
        out.push_str(additions);
    }
    out
}

/// The project uuid, if the project has one; never writes the file
/// (`spec-kitty board` only reads: a project that was never published has
/// nothing on the server to show).
pub fn existing_uuid(project: &Project) -> Result<Option<String>, ProjectError> {
    let path = project.config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ProjectError::Read { path, source }),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match find_block(&lines).uuid.filter(|u| !u.is_empty()) {
        Some(bad) if uuid::Uuid::try_parse(&bad).is_err() => Err(ProjectError::InvalidConfig {
            path,
            reason: format!("project.uuid is not a UUID: '{bad}'"),
        }),
        found => Ok(found),
    }
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
    let block = find_block(&lines);
    if let Some(bad) = block
        .uuid
        .as_ref()
        .filter(|u| uuid::Uuid::try_parse(u).is_err())
    {
        return Err(ProjectError::InvalidConfig {
            path,
            reason: format!("project.uuid is not a UUID: '{bad}'"),
        });
    }
    let identity = Identity {
        uuid: block
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        slug: block
            .slug
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| project.default_slug()),
        node_id: block
            .node_id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(local_node_id),
    };
    let additions = additions(&block, &identity, newline);
    if additions.is_empty() {
        return Ok(identity);
    }
    write(&path, &splice(&text, &lines, &block, &additions, newline))?;
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
    fn the_uuid_is_read_without_creating_anything() {
        let (_dir, none) = project(None);
        assert_eq!(existing_uuid(&none).expect("reads"), None);
        assert!(!none.config_path().exists(), "nothing written");
        let (_dir, some) = project(Some(
            "project:\n  uuid: \"550e8400-e29b-41d4-a716-446655440000\"\n",
        ));
        assert_eq!(
            existing_uuid(&some).expect("reads").as_deref(),
            Some("550e8400-e29b-41d4-a716-446655440000")
        );
        let (_dir, bad) = project(Some("project:\n  uuid: nope\n"));
        assert!(existing_uuid(&bad).is_err());
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
