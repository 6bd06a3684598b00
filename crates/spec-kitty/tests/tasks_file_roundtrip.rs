//! `move-task` edits a hand-written file: only the `lane:` value changes
//! (quoting and comment kept), one `history` entry and one Activity Log
//! line are appended, and every other byte stays (contract section 7).

use crate::tasks_support;

use std::os::unix::fs::PermissionsExt;

use tasks_support::{
    Expected, FEATURE, Project, assert_moved, code, collapse, describe, read, stdout, wp_lane_line,
    wp_text,
};

/// The lines joined with LF, with a final LF.
fn lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Moves WP01 of a one-file project and checks the round trip.
fn round_trip(original: &str, to: &str, expected: Expected<'_>) -> (Project, String) {
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-round-trip.md", original);
    project.move_ok(
        "WP01",
        to,
        &["--agent", expected.agent, "--note", "Taken up"],
    );
    let after = read(&path);
    assert_moved(original, &after, &expected);
    let event = project.only_event();
    assert_eq!(event["payload"]["wp_id"], "WP01");
    (project, after)
}

/// What a move of a [`wp_text`] file (lane `planned`) from `old` to `new`
/// (its `lane:` lines) is expected to have done.
fn wp_expected<'a>(
    old: &'a str,
    new: &'a str,
    lane: &'a str,
    agent: &'a str,
    action: Option<&'a str>,
) -> Expected<'a> {
    Expected {
        old_lane_line: old,
        new_lane_line: new,
        history_after: Some("    action: \"Prompt generated for WP01\""),
        item_prefix: "  - ",
        log_after: "- 2026-01-05T08:00:00Z – system – lane=planned – Prompt created.",
        lane,
        agent,
        action,
    }
}

#[test]
fn double_quoted_lane_with_comment_keeps_quotes_and_comment() {
    let original = wp_text("WP01", "Round trip", "planned");
    let old = wp_lane_line("WP01", "planned");
    let new = wp_lane_line("WP01", "claimed");
    round_trip(
        &original,
        "claimed",
        wp_expected(&old, &new, "claimed", "alice-bot", Some("Taken up")),
    );
}

/// A compact file, `lane` formatted as `lane_line`.
fn compact(lane_line: &str, nl: &str) -> String {
    [
        "---",
        "work_package_id: \"WP01\"",
        "title: \"Compact file\"",
        lane_line,
        "assignee: \"\"",
        "history:",
        "  - timestamp: \"2026-01-05T08:00:00Z\"",
        "    lane: \"planned\"",
        "    agent: \"system\"",
        "    shell_pid: \"\"",
        "    action: \"Created by hand\"",
        "---",
        "",
        "# Compact",
        "",
        "## Activity Log",
        "",
        "- 2026-01-05T08:00:00Z – system – lane=planned – Created.",
        "",
    ]
    .join(nl)
}

fn compact_expected<'a>(old: &'a str, new: &'a str, lane: &'a str) -> Expected<'a> {
    Expected {
        old_lane_line: old,
        new_lane_line: new,
        history_after: Some("    action: \"Created by hand\""),
        item_prefix: "  - ",
        log_after: "- 2026-01-05T08:00:00Z – system – lane=planned – Created.",
        lane,
        agent: "alice-bot",
        action: Some("Taken up"),
    }
}

/// Moves WP01 of a [`compact`] LF file from `old` (its `lane:` line) to
/// `lane`, whose line is then `new`, and checks the round trip.
fn compact_round_trip(old: &str, new: &str, lane: &str) {
    round_trip(&compact(old, "\n"), lane, compact_expected(old, new, lane));
}

#[test]
fn single_quoted_lane_stays_single_quoted() {
    compact_round_trip("lane: 'planned'", "lane: 'for_review'", "for_review");
}

#[test]
fn single_quoted_lane_with_comment() {
    compact_round_trip(
        "lane: 'planned'    # hands off",
        "lane: 'blocked'    # hands off",
        "blocked",
    );
}

#[test]
fn unquoted_lane_stays_unquoted_and_keeps_its_comment() {
    compact_round_trip(
        "lane: planned   # keep me, exactly",
        "lane: in_progress   # keep me, exactly",
        "in_progress",
    );
}

#[test]
fn unquoted_lane_without_comment() {
    compact_round_trip("lane: planned", "lane: done", "done");
}

#[test]
fn crlf_file_stays_crlf_on_every_line() {
    let original = wp_text("WP01", "Windows file", "planned").replace('\n', "\r\n");
    let old = wp_lane_line("WP01", "planned");
    let new = wp_lane_line("WP01", "for_review");
    let (_project, after) = round_trip(
        &original,
        "for_review",
        wp_expected(&old, &new, "for_review", "alice-bot", Some("Taken up")),
    );
    assert!(
        !after.replace("\r\n", "").contains('\n'),
        "a bare LF crept in: {after:?}"
    );
}

#[test]
fn crlf_unquoted_and_single_quoted() {
    for (old, new, lane) in [
        ("lane: planned # c", "lane: claimed # c", "claimed"),
        ("lane: 'planned'", "lane: 'canceled'", "canceled"),
    ] {
        let (_project, after) = round_trip(
            &compact(old, "\r\n"),
            lane,
            compact_expected(old, new, lane),
        );
        assert!(!after.replace("\r\n", "").contains('\n'), "{after:?}");
    }
}

#[test]
fn body_full_of_dashes_and_front_matter_comments() {
    // `---` lines right after the front matter, inside the body, in a code
    // block and inside the Activity Log section; comment lines in the front
    // matter and inside the history list; a section after the log.
    let original = &lines(&[
        "---",
        "# front-matter comment: keep",
        "work_package_id: WP01",
        "title: Dashes everywhere",
        "lane: \"planned\" # DO NOT EDIT",
        "history:",
        "  # older entries were pruned",
        "  - timestamp: \"2026-01-05T08:00:00Z\"",
        "    lane: \"planned\"",
        "    agent: \"system\"",
        "    shell_pid: \"\"",
        "    action: \"Generated\"",
        "# trailing comment before the end of the front matter",
        "dependencies: []",
        "---",
        "---",
        "",
        "# WP01",
        "",
        "---",
        "",
        "```yaml",
        "---",
        "lane: \"not this one\"",
        "---",
        "```",
        "",
        "## Activity Log",
        "",
        "- 2026-01-05T08:00:00Z – system – lane=planned – Generated.",
        "- 2026-01-06T08:00:00Z – bob – lane=planned – Looked at it.",
        "",
        "---",
        "",
        "## Appendix",
        "",
        "Nothing else.",
    ]);
    let (_project, after) = round_trip(
        original,
        "claimed",
        Expected {
            old_lane_line: "lane: \"planned\" # DO NOT EDIT",
            new_lane_line: "lane: \"claimed\" # DO NOT EDIT",
            history_after: Some("    action: \"Generated\""),
            item_prefix: "  - ",
            log_after: "- 2026-01-06T08:00:00Z – bob – lane=planned – Looked at it.",
            lane: "claimed",
            agent: "alice-bot",
            action: Some("Taken up"),
        },
    );
    assert!(after.contains("lane: \"not this one\"\n"), "{after}");
}

#[test]
fn history_at_column_zero_and_not_the_last_key() {
    let original = &lines(&[
        "---",
        "work_package_id: \"WP01\"",
        "lane: planned",
        "history:",
        "- timestamp: \"2026-01-05T08:00:00Z\"",
        "  lane: \"planned\"",
        "  agent: \"system\"",
        "  shell_pid: \"\"",
        "  action: \"Zero indent\"",
        "subtasks:",
        "  - \"T001\"",
        "---",
        "",
        "## Activity Log",
        "",
        "- 2026-01-05T08:00:00Z – system – lane=planned – Zero indent.",
    ]);
    round_trip(
        original,
        "done",
        Expected {
            old_lane_line: "lane: planned",
            new_lane_line: "lane: done",
            history_after: Some("  action: \"Zero indent\""),
            item_prefix: "- ",
            log_after: "- 2026-01-05T08:00:00Z – system – lane=planned – Zero indent.",
            lane: "done",
            agent: "alice-bot",
            action: Some("Taken up"),
        },
    );
}

#[test]
fn deeper_history_indentation_is_followed() {
    let original = &lines(&[
        "---",
        "lane: \"for_review\"",
        "history:",
        "    -   timestamp: \"2026-01-05T08:00:00Z\"",
        "        lane: \"for_review\"",
        "        agent: \"system\"",
        "        shell_pid: \"\"",
        "        action: \"Four spaces\"",
        "---",
        "## Activity Log",
        "- 2026-01-05T08:00:00Z – system – lane=for_review – Four spaces.",
    ]);
    // The existing entries put their keys 8 columns in: the new entry's
    // keys must line up with them (and with its own first key) to stay
    // one YAML list of mappings.
    round_trip(
        original,
        "done",
        Expected {
            old_lane_line: "lane: \"for_review\"",
            new_lane_line: "lane: \"done\"",
            history_after: Some("        action: \"Four spaces\""),
            item_prefix: "    -   ",
            log_after: "- 2026-01-05T08:00:00Z – system – lane=for_review – Four spaces.",
            lane: "done",
            agent: "alice-bot",
            action: Some("Taken up"),
        },
    );
}

#[test]
fn bare_dash_history_items_still_give_one_yaml_list() {
    let original = &lines(&[
        "---",
        "lane: planned",
        "history:",
        "  -",
        "    timestamp: \"2026-01-05T08:00:00Z\"",
        "    lane: \"planned\"",
        "    agent: \"system\"",
        "    shell_pid: \"\"",
        "    action: \"Bare dash\"",
        "---",
        "## Activity Log",
        "- 2026-01-05T08:00:00Z – system – lane=planned – Bare dash.",
    ]);
    round_trip(
        original,
        "claimed",
        Expected {
            old_lane_line: "lane: planned",
            new_lane_line: "lane: claimed",
            history_after: Some("    action: \"Bare dash\""),
            item_prefix: "  - ",
            log_after: "- 2026-01-05T08:00:00Z – system – lane=planned – Bare dash.",
            lane: "claimed",
            agent: "alice-bot",
            action: Some("Taken up"),
        },
    );
}

#[test]
fn empty_inline_history_becomes_a_list_with_one_entry() {
    let original = "---\nwork_package_id: \"WP01\"\nlane: \"planned\"\nhistory: []  # none yet\ndependencies: []\n---\n\nBody.\n\n## Activity Log\n\n- 2026-01-05T08:00:00Z – system – lane=planned – Created.\n";
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-empty-history.md", original);
    project.move_ok(
        "WP01",
        "claimed",
        &["--agent", "alice-bot", "--note", "Mine"],
    );
    let after = read(&path);
    let (front, body) = after
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .expect("front matter");
    assert!(
        front.starts_with(
            "work_package_id: \"WP01\"\nlane: \"claimed\"\nhistory:  # none yet\n  - timestamp: \""
        ),
        "{after}"
    );
    assert!(
        front.contains("\n    lane: \"claimed\"\n    agent: \"alice-bot\"\n"),
        "{after}"
    );
    assert!(
        front.ends_with("    action: \"Mine\"\ndependencies: []"),
        "{after}"
    );
    assert!(body.starts_with("\nBody.\n\n## Activity Log\n\n- 2026-01-05T08:00:00Z – system – lane=planned – Created.\n- "), "{after}");
    assert!(
        body.ends_with(" – alice-bot – lane=claimed – Mine\n"),
        "{after}"
    );
}

#[test]
fn no_activity_log_section_gets_one() {
    let original = "---\nlane: planned\nhistory:\n  - timestamp: \"2026-01-05T08:00:00Z\"\n    lane: \"planned\"\n    agent: \"system\"\n    shell_pid: \"\"\n    action: \"Made\"\n---\n\n# Only a title\n";
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-no-log.md", original);
    project.move_ok("WP01", "claimed", &["--agent", "bob", "--note", "Go"]);
    let after = read(&path);
    let head = original.replace("lane: planned\n", "lane: claimed\n");
    let (expected_front, expected_body) = head.split_once("---\n\n# Only").expect("split");
    assert!(after.starts_with(expected_front), "{after}");
    assert!(
        after.contains(&format!(
            "---\n\n# Only{expected_body}\n## Activity Log\n\n- "
        )),
        "{after}"
    );
    assert!(after.ends_with(" – bob – lane=claimed – Go\n"), "{after}");
}

#[test]
fn second_move_appends_after_the_first() {
    let original = wp_text("WP01", "Two moves", "planned");
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-two-moves.md", &original);
    project.move_ok("WP01", "claimed", &["--agent", "ann", "--note", "First"]);
    let middle = read(&path);
    project.move_ok(
        "WP01",
        "in_progress",
        &["--agent", "ann", "--note", "Second"],
    );
    let after = read(&path);
    let old = wp_lane_line("WP01", "claimed");
    let new = wp_lane_line("WP01", "in_progress");
    let first_log = middle
        .lines()
        .find(|l| l.ends_with(" – ann – lane=claimed – First"))
        .expect("first log line")
        .to_string();
    assert_moved(
        &middle,
        &after,
        &Expected {
            old_lane_line: &old,
            new_lane_line: &new,
            history_after: Some("    action: \"First\""),
            item_prefix: "  - ",
            log_after: &first_log,
            lane: "in_progress",
            agent: "ann",
            action: Some("Second"),
        },
    );
    let events = project.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["payload"]["from_lane"], "doing");
}

#[test]
fn default_history_action_and_log_text_name_the_lane() {
    let original = wp_text("WP01", "Default note", "planned");
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-default.md", &original);
    project.move_ok("WP01", "for_review", &["--agent", "carol"]);
    let after = read(&path);
    let old = wp_lane_line("WP01", "planned");
    let new = wp_lane_line("WP01", "for_review");
    assert_moved(
        &original,
        &after,
        &wp_expected(&old, &new, "for_review", "carol", None),
    );
    assert!(after.contains("for_review"), "{after}");
}

#[test]
fn file_mode_is_kept_and_no_temp_files_are_left() {
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-mode.md", &wp_text("WP01", "Mode", "planned"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    project.move_ok("WP01", "claimed", &[]);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode kept");
    let names: Vec<String> = std::fs::read_dir(path.parent().expect("tasks dir"))
        .expect("list tasks")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["WP01-mode.md"], "no temp files left behind");
}

#[test]
fn moving_to_the_current_lane_changes_nothing() {
    let original = wp_text("WP01", "Already there", "claimed");
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-same.md", &original);
    let out = project.move_task("WP01", "claimed", &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains("already"), "{}", describe(&out));
    assert_eq!(read(&path), original, "file unchanged");
    tasks_support::assert_nothing_queued(&project);
}

#[test]
fn log_entry_with_a_continuation_line_and_a_trailing_note() {
    let original = &lines(&[
        "---",
        "lane: \"planned\"",
        "history:",
        "  - timestamp: \"2026-01-05T08:00:00Z\"",
        "    lane: \"planned\"",
        "    agent: \"system\"",
        "    shell_pid: \"\"",
        "    action: \"Long one\"",
        "---",
        "## Activity Log",
        "",
        "- 2026-01-05T08:00:00Z – system – lane=planned – A long entry",
        "  that goes on over a second line.",
        "",
        "Entries above are written by spec-kitty.",
    ]);
    round_trip(
        original,
        "claimed",
        Expected {
            old_lane_line: "lane: \"planned\"",
            new_lane_line: "lane: \"claimed\"",
            history_after: Some("    action: \"Long one\""),
            item_prefix: "  - ",
            log_after: "  that goes on over a second line.",
            lane: "claimed",
            agent: "alice-bot",
            action: Some("Taken up"),
        },
    );
}

#[test]
fn notes_and_agents_with_line_breaks_and_quotes_stay_one_log_line() {
    let original = wp_text("WP01", "Odd text", "planned");
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-odd.md", &original);
    project.move_ok(
        "WP01",
        "claimed",
        &[
            "--agent",
            "o\"brien \\ co",
            "--note",
            "first line\nsecond line\r\nthird: \"quoted\" # not a comment",
        ],
    );
    let after = read(&path);
    let old = wp_lane_line("WP01", "planned");
    let new = wp_lane_line("WP01", "claimed");
    // assert_moved checks the line count (one log line) and that a YAML
    // reader gets the agent back exactly.
    assert_moved(
        &original,
        &after,
        &wp_expected(&old, &new, "claimed", "o\"brien \\ co", None),
    );
    let front = tasks_support::front_matter(&after);
    let history = front["history"].as_vec().expect("history");
    let action = history[1]["action"].as_str().expect("action");
    assert!(
        action.contains("first line") && action.contains("third: \"quoted\" # not a comment"),
        "{action:?}"
    );
    assert!(!action.contains('\n'), "{action:?}");
}

#[test]
fn a_symlinked_work_package_file_stays_a_link_and_its_target_gets_the_edit() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Linked", "planned");
    let link = project.write_wp(FEATURE, "WP01-linked.md", &original);
    // The real file lives elsewhere (another checkout, a shared folder).
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let real = elsewhere.path().join("WP01-real.md");
    std::fs::write(&real, &original).expect("real file");
    std::fs::remove_file(&link).expect("remove");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");

    project.move_ok("WP01", "doing", &[]);
    let meta = std::fs::symlink_metadata(&link).expect("link");
    assert!(meta.file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read_link(&link).expect("read link"), real);
    let after = read(&real);
    assert!(
        after.contains(&wp_lane_line("WP01", "in_progress")),
        "the target has the new lane:\n{after}"
    );
    assert_eq!(
        project.only_event()["payload"]["to_lane"],
        collapse("doing")
    );
}
