//! Helpers for the black-box tests of `spec-kitty agent tasks move-task`
//! and `list-tasks` (issue 5).
//!
//! Every test builds its own project in a temp dir (`<tmp>/myproj/`, with
//! `kitty-specs/NNN-slug/tasks/WPnn-title.md` files written here in the
//! format of contract section 7), runs the real binary with the working
//! directory inside that project and `HOME` pointed at a separate temp dir,
//! and reads the queued events straight from `HOME/.spec-kitty/events.db`.
#![allow(dead_code)]

use crate::support;
#[allow(unused_imports)]
pub use support::*;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use yaml_rust2::{Yaml, YamlLoader};

/// Turns a hang into a failure; far longer than any command takes (this is
/// not a timing assertion).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// The seven canonical lanes and their four-lane sync value (contract
/// section 3), written out here rather than taken from the code under test.
pub const COLLAPSE: [(&str, &str); 7] = [
    ("planned", "planned"),
    ("claimed", "doing"),
    ("in_progress", "doing"),
    ("for_review", "for_review"),
    ("done", "done"),
    ("blocked", "doing"),
    ("canceled", "done"),
];

/// The contract's collapse of a canonical lane (or the `doing` alias).
pub fn collapse(lane: &str) -> &'static str {
    if lane == "doing" {
        return "doing";
    }
    COLLAPSE
        .iter()
        .find(|(canonical, _)| *canonical == lane)
        .map(|(_, sync)| *sync)
        .unwrap_or_else(|| panic!("not a canonical lane: {lane}"))
}

/// A project folder `<tmp>/myproj` and a separate `HOME`.
pub struct Project {
    pub dir: TempDir,
    pub home: TempDir,
    pub root: PathBuf,
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

impl Project {
    /// An empty project: `myproj/kitty-specs/` and nothing else.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp project dir");
        let home = tempfile::tempdir().expect("temp HOME");
        let root = dir.path().join("myproj");
        std::fs::create_dir_all(root.join("kitty-specs")).expect("create kitty-specs");
        Project { dir, home, root }
    }

    /// A project with one feature, `001-some-feature`.
    pub fn with_feature() -> Project {
        let project = Project::new();
        project.feature(FEATURE);
        project
    }

    /// Creates `kitty-specs/<slug>/tasks/` and returns the feature folder.
    pub fn feature(&self, slug: &str) -> PathBuf {
        let dir = self.root.join("kitty-specs").join(slug);
        std::fs::create_dir_all(dir.join("tasks")).expect("create tasks dir");
        dir
    }

    /// Writes `kitty-specs/<feature>/tasks/<file_name>` and returns its path.
    pub fn write_wp(&self, feature: &str, file_name: &str, text: &str) -> PathBuf {
        let path = self.feature(feature).join("tasks").join(file_name);
        std::fs::write(&path, text).expect("write work-package file");
        path
    }

    /// `$HOME/.spec-kitty`.
    pub fn client_dir(&self) -> PathBuf {
        self.home.path().join(".spec-kitty")
    }

    /// `.kittify/config.yaml` of the project.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(".kittify").join("config.yaml")
    }

    /// `spec-kitty` run in the project root with this `HOME`.
    pub fn cmd(&self) -> assert_cmd::Command {
        self.cmd_in(&self.root)
    }

    /// `spec-kitty` run in `dir` with this `HOME`.
    pub fn cmd_in(&self, dir: &Path) -> assert_cmd::Command {
        let mut cmd = support::cmd(self.home.path(), HANG_GUARD);
        cmd.current_dir(dir);
        cmd
    }

    /// The same as a plain `std::process::Command`, to spawn many at once.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = support::std_cmd(self.home.path());
        cmd.current_dir(&self.root);
        cmd
    }

    /// `spec-kitty ARGS` in the project root, empty stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spec-kitty runs")
    }

    /// `spec-kitty agent tasks move-task WP --to LANE EXTRA...`.
    pub fn move_task(&self, wp: &str, to: &str, extra: &[&str]) -> Output {
        let mut args = vec!["agent", "tasks", "move-task", wp, "--to", to];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Like [`Project::move_task`], and asserts exit 0.
    pub fn move_ok(&self, wp: &str, to: &str, extra: &[&str]) -> Output {
        let out = self.move_task(wp, to, extra);
        assert_eq!(
            code(&out),
            0,
            "move-task {wp} --to {to} {extra:?} failed: {}",
            describe(&out)
        );
        out
    }

    /// The events the moves queued, in queue order: every queued event but
    /// those a first `move-task` of a feature queues to publish it
    /// (`FeatureCreated`, `WPCreated` and first lane changes, whose reason
    /// says so). The tests of `move-task` are about the moves.
    pub fn events(&self) -> Vec<Value> {
        self.all_events()
            .into_iter()
            .filter(|e| !is_publish_event(e))
            .collect()
    }

    /// Every queued event body, in queue order (empty when there is no
    /// queue file at all).
    pub fn all_events(&self) -> Vec<Value> {
        let path = self.client_dir().join("events.db");
        if !path.exists() {
            return Vec::new();
        }
        let conn = rusqlite::Connection::open(&path).expect("open events.db");
        let mut stmt = conn
            .prepare("SELECT event_id, event_type, ts_micros, body FROM events ORDER BY id")
            .expect("query events");
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .expect("read events");
        rows.map(|row| {
            let (event_id, event_type, _ts, body) = row.expect("event row");
            let value: Value = serde_json::from_str(&body).expect("body is JSON");
            assert_eq!(value["event_id"], event_id.as_str(), "event_id column");
            assert_eq!(
                value["event_type"],
                event_type.as_str(),
                "event_type column"
            );
            value
        })
        .collect()
    }

    /// The only queued event.
    pub fn only_event(&self) -> Value {
        let events = self.events();
        assert_eq!(events.len(), 1, "expected one queued event: {events:#?}");
        events.into_iter().next().expect("one event")
    }

    /// Writes `~/.spec-kitty/credentials` by hand, in the contract's format,
    /// as a logged-in client would have (tokens valid for an hour). The
    /// server URL points at a closed loopback port: nothing may contact it.
    pub fn write_credentials(&self, team_slug: Option<&str>) {
        let now = time::OffsetDateTime::now_utc();
        let stamp = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("format timestamp")
        };
        let team = team_slug
            .map(|t| format!("team_slug = \"{t}\"\n"))
            .unwrap_or_default();
        let text = format!(
            "[tokens]\naccess = \"hand-written-access\"\nrefresh = \"hand-written-refresh\"\naccess_expires_at = \"{}\"\nrefresh_expires_at = \"{}\"\n\n[user]\nusername = \"alice\"\n{team}\n[server]\nurl = \"http://127.0.0.1:9\"\n",
            stamp(now + time::Duration::hours(1)),
            stamp(now + time::Duration::days(7)),
        );
        std::fs::create_dir_all(self.client_dir()).expect("create ~/.spec-kitty");
        std::fs::write(self.client_dir().join("credentials"), text).expect("write credentials");
    }

    /// Makes the project a git repository on `branch` at `sha` (only the
    /// files the client reads: `.git/HEAD` and the loose ref).
    pub fn git_branch(&self, branch: &str, sha: &str) {
        let git = self.root.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).expect("create .git");
        std::fs::write(git.join("HEAD"), format!("ref: refs/heads/{branch}\n")).expect("HEAD");
        let reference = git.join("refs/heads").join(branch);
        std::fs::create_dir_all(reference.parent().expect("ref dir")).expect("ref dir");
        std::fs::write(reference, format!("{sha}\n")).expect("write ref");
    }
}

/// The `reason` of the first lane changes `publish` queues (contract
/// section 8: a lane read from the file, no move), written out here.
pub const FIRST_STATUS_REASON: &str = "Published: lane read from the work-package file";

/// An event queued to publish a feature rather than by a move.
pub fn is_publish_event(event: &Value) -> bool {
    match event["event_type"].as_str() {
        Some("FeatureCreated" | "WPCreated") => true,
        Some("WPStatusChanged") => event["payload"]["reason"] == FIRST_STATUS_REASON,
        _ => false,
    }
}

/// The feature most tests use.
pub const FEATURE: &str = "001-some-feature";

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read file")
}

/// A work-package file in the format of contract section 7 (our own
/// content): quoted `lane` with the usual "do not edit" comment, one history
/// entry, and a body with `---` rules and an Activity Log.
pub fn wp_text(wp_id: &str, title: &str, lane: &str) -> String {
    format!(
        r#"---
work_package_id: "{wp_id}"
subtasks:
  - "T001"
  - "T002"
title: "{title}"
phase: "Phase 1 - Groundwork"
lane: "{lane}"  # DO NOT EDIT - use: spec-kitty agent tasks move-task {wp_id} --to <lane>
assignee: ""
agent: ""
shell_pid: ""
review_status: ""
reviewed_by: ""
dependencies: []
history:
  - timestamp: "2026-01-05T08:00:00Z"
    lane: "{lane}"
    agent: "system"
    shell_pid: ""
    action: "Prompt generated for {wp_id}"
---

# Work Package Prompt: {wp_id} – {title}

## Objectives

- Make the thing work.

---

## Notes

Text with a rule below.

---

## Activity Log

- 2026-01-05T08:00:00Z – system – lane={lane} – Prompt created.
"#
    )
}

/// The `lane:` line of [`wp_text`] for `lane`.
pub fn wp_lane_line(wp_id: &str, lane: &str) -> String {
    format!(
        "lane: \"{lane}\"  # DO NOT EDIT - use: spec-kitty agent tasks move-task {wp_id} --to <lane>"
    )
}

/// What a move is expected to have done to a file.
pub struct Expected<'a> {
    /// The `lane:` line before (without line ending); must occur once.
    pub old_lane_line: &'a str,
    /// The `lane:` line after.
    pub new_lane_line: &'a str,
    /// The original line (without ending, unique in the file) after which
    /// the history entry is appended; `None` when the file had no
    /// `history` at all (then a `history:` key and entry are added before
    /// the closing `---`).
    pub history_after: Option<&'a str>,
    /// How the new entry's first line starts, up to `timestamp` (that of
    /// the existing entries, e.g. `"  - "`); its other keys line up with it.
    pub item_prefix: &'a str,
    /// The original line (unique) after which the Activity Log line goes.
    pub log_after: &'a str,
    /// Canonical lane written to the history entry and log line.
    pub lane: &'a str,
    pub agent: &'a str,
    /// The history action / log text, when the test chose it (`--note`).
    pub action: Option<&'a str>,
}

fn bare(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn unique_index(lines: &[&str], wanted: &str, what: &str) -> usize {
    let found: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| bare(l) == wanted)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "fixture error: {what} line {wanted:?} must occur exactly once"
    );
    found[0]
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_file_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The value of `PREFIX"..."`, with YAML's `\"` and `\\` escapes undone.
fn quoted_value(line: &str, prefix: &str) -> String {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}…, found {line:?}"));
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or_else(|| panic!("expected a double-quoted value in {line:?}"));
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let next = chars.next().expect("escape at the end");
            assert!(matches!(next, '"' | '\\'), "unexpected escape in {line:?}");
            value.push(next);
        } else {
            assert_ne!(c, '"', "unescaped quote in {line:?}");
            value.push(c);
        }
    }
    value
}

/// Asserts that `after` is `before` with only the lane value changed, one
/// history entry appended and one Activity Log line appended, every line
/// (old and new) ending as the original's first line does. Returns the
/// timestamp written.
pub fn assert_moved(before: &str, after: &str, expected: &Expected<'_>) -> String {
    let nl = if before.starts_with("---\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let added = if expected.history_after.is_some() {
        6
    } else {
        7
    };
    assert_eq!(
        new.len(),
        old.len() + added,
        "expected {added} more lines.\n--- before\n{before}\n--- after\n{after}"
    );

    let lane_at = unique_index(&old, expected.old_lane_line, "lane");
    let log_at = unique_index(&old, expected.log_after, "log anchor");
    let history_at = match expected.history_after {
        Some(anchor) => unique_index(&old, anchor, "history anchor"),
        None => {
            // Before the closing `---` of the front matter.
            old.iter()
                .enumerate()
                .skip(1)
                .find(|(_, l)| bare(l) == "---")
                .map(|(i, _)| i - 1)
                .expect("front matter closes")
        }
    };
    assert!(history_at < log_at, "fixture: history comes before the log");

    // Walk both files in step: every original line must come back
    // byte-for-byte (the lane line with only its value changed), and the
    // new lines must be exactly at the two insertion points.
    let mut j = 0;
    let mut stamp: Option<String> = None;
    let mut action_seen: Option<String> = None;
    for (i, line) in old.iter().enumerate() {
        if i == lane_at {
            let ending = &line[bare(line).len()..];
            assert_eq!(
                new[j],
                format!("{}{ending}", expected.new_lane_line),
                "lane line"
            );
        } else {
            assert_eq!(new[j], *line, "original line {} changed", i + 1);
        }
        j += 1;
        if i == history_at {
            if expected.history_after.is_none() {
                assert_eq!(new[j], format!("history:{nl}"), "added history key");
                j += 1;
            }
            let dash = expected.item_prefix;
            let keys = " ".repeat(dash.len());
            for (k, l) in new[j..j + 5].iter().enumerate() {
                assert!(l.ends_with(nl), "history line {k} ends with {nl:?}: {l:?}");
                assert!(!bare(l).contains('\r'), "no stray carriage return in {l:?}");
            }
            let ts = quoted_value(bare(new[j]), &format!("{dash}timestamp: "));
            assert!(is_file_timestamp(&ts), "history timestamp {ts:?}");
            assert_eq!(
                quoted_value(bare(new[j + 1]), &format!("{keys}lane: ")),
                expected.lane
            );
            assert_eq!(
                quoted_value(bare(new[j + 2]), &format!("{keys}agent: ")),
                expected.agent
            );
            let pid = quoted_value(bare(new[j + 3]), &format!("{keys}shell_pid: "));
            assert!(
                !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
                "shell_pid {pid:?}"
            );
            let action = quoted_value(bare(new[j + 4]), &format!("{keys}action: "));
            if let Some(want) = expected.action {
                assert_eq!(action, want, "history action");
            }
            assert!(!action.is_empty(), "history action is empty");
            stamp = Some(ts);
            action_seen = Some(action);
            j += 5;
        }
        if i == log_at {
            let ts = stamp.as_deref().expect("history before log");
            let action = action_seen.as_deref().expect("history before log");
            assert_eq!(
                new[j],
                format!(
                    "- {ts} – {} – lane={} – {action}{nl}",
                    expected.agent, expected.lane
                ),
                "Activity Log line"
            );
            j += 1;
        }
    }
    assert_eq!(j, new.len(), "nothing else was added");
    if nl == "\r\n" {
        assert!(
            new.iter().all(|l| l.ends_with("\r\n")),
            "every line still ends in CRLF: {after:?}"
        );
    }
    let stamp = stamp.expect("a history entry was checked");

    // And a YAML reader (as the Python client uses) sees the same thing:
    // the new lane, and a history list one entry longer ending in ours.
    let old_history = history_len(&front_matter(before));
    let front = front_matter(after);
    assert_eq!(front["lane"].as_str(), Some(expected.lane), "YAML lane");
    let history = front["history"].as_vec().expect("history is a YAML list");
    assert_eq!(history.len(), old_history + 1, "one history entry added");
    let last = history.last().expect("an entry");
    assert_eq!(last["timestamp"].as_str(), Some(stamp.as_str()));
    assert_eq!(last["lane"].as_str(), Some(expected.lane));
    assert_eq!(last["agent"].as_str(), Some(expected.agent));
    assert_eq!(last["action"].as_str(), action_seen.as_deref());
    stamp
}

/// The front matter of a work-package file, parsed as YAML (panics, with
/// the parser's message, if it is not valid YAML).
pub fn front_matter(text: &str) -> Yaml {
    let text = text.replace("\r\n", "\n");
    let rest = text.strip_prefix("---\n").expect("starts with ---");
    let end = rest.find("\n---\n").expect("front matter closes");
    let yaml = &rest[..end + 1];
    let mut docs = YamlLoader::load_from_str(yaml)
        .unwrap_or_else(|e| panic!("front matter is not valid YAML ({e}):\n{yaml}"));
    assert_eq!(docs.len(), 1, "one YAML document");
    let doc = docs.remove(0);
    assert!(
        doc.as_hash().is_some(),
        "front matter is a mapping:\n{yaml}"
    );
    doc
}

/// How many `history` entries the front matter holds (0 when none).
pub fn history_len(front: &Yaml) -> usize {
    front["history"].as_vec().map_or(0, Vec::len)
}

/// Asserts that nothing was queued: no queue file, or an empty one.
pub fn assert_nothing_queued(project: &Project) {
    let events = project.events();
    assert!(events.is_empty(), "nothing may be queued: {events:#?}");
}

/// The value at `key` in a JSON object as a string.
pub fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {value:#}"))
}
