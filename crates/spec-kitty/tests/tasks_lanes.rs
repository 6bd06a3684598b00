//! Every lane, the `doing` alias, and the moves `move-task` must refuse:
//! an unknown lane, an unknown work package, and a backwards move out of
//! `done` without `--force` and a reason (issue 5; contract section 3).

use crate::tasks_support;

use serde_json::Value;
use tasks_support::{
    COLLAPSE, FEATURE, Project, assert_nothing_queued, code, collapse, describe, front_matter,
    read, stderr, stdout, text, wp_text,
};

#[test]
fn every_canonical_lane_and_the_alias_collapse_to_the_four_sync_lanes() {
    // (wp, lane in the file, --to, lane the file gets)
    let cases = [
        ("WP01", "for_review", "planned", "planned"),
        ("WP02", "planned", "claimed", "claimed"),
        ("WP03", "claimed", "in_progress", "in_progress"),
        ("WP04", "in_progress", "for_review", "for_review"),
        ("WP05", "for_review", "done", "done"),
        ("WP06", "claimed", "blocked", "blocked"),
        ("WP07", "blocked", "canceled", "canceled"),
        ("WP08", "planned", "doing", "in_progress"),
    ];
    let project = Project::with_feature();
    for (wp, from, _, _) in cases {
        project.write_wp(
            FEATURE,
            &format!("{wp}-lane-{from}.md"),
            &wp_text(wp, &format!("Lane test {wp}"), from),
        );
    }
    let mut last_clock = 0;
    for (index, (wp, from, to, file_lane)) in cases.into_iter().enumerate() {
        let out = project.move_ok(wp, to, &["--agent", "lane-bot", "--json"]);
        let printed: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
        assert_eq!(printed["wp_id"], wp);
        assert_eq!(printed["feature"], FEATURE);
        assert_eq!(printed["from_lane"], from, "{printed:#}");
        assert_eq!(printed["to_lane"], file_lane, "{printed:#}");
        assert_eq!(printed["sync_lane"], collapse(to), "{printed:#}");

        let path = project
            .root
            .join("kitty-specs")
            .join(FEATURE)
            .join("tasks")
            .join(format!("{wp}-lane-{from}.md"));
        let front = front_matter(&read(&path));
        assert_eq!(front["lane"].as_str(), Some(file_lane), "{wp} file lane");

        let events = project.events();
        assert_eq!(events.len(), index + 1, "one event per move");
        let event = &events[index];
        assert_eq!(event["event_type"], "WPStatusChanged");
        assert_eq!(event["event_id"], printed["event_id"]);
        assert_eq!(event["aggregate_id"], format!("{FEATURE}/{wp}"));
        assert_eq!(event["aggregate_type"], "WorkPackage");
        let payload = &event["payload"];
        assert_eq!(payload["wp_id"], wp);
        assert_eq!(payload["feature_slug"], FEATURE);
        assert_eq!(
            payload["to_lane"],
            collapse(to),
            "{wp}: to {to} collapses to {}",
            collapse(to)
        );
        assert_eq!(
            payload["from_lane"],
            collapse(from),
            "{wp}: from {from} collapses to {}",
            collapse(from)
        );
        assert_eq!(payload["actor"], "lane-bot");
        assert_eq!(payload["force"], false);
        assert_eq!(payload["reason"], Value::Null);
        let errors = spec_kitty_protocol::validate_event(event);
        assert!(errors.is_empty(), "{wp}: {errors:?}");
        let clock = event["lamport_clock"].as_u64().expect("lamport_clock");
        assert!(clock > last_clock, "the Lamport clock moves forward");
        assert_eq!(printed["lamport_clock"], clock);
        last_clock = clock;
    }
}

#[test]
fn lanes_written_by_other_clients_are_read() {
    // `doing` (the alias, as older files hold it) and `approved` (Python
    // 2.x, shown as for_review) in the file, upper case on the command line.
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-doing.md", &wp_text("WP01", "Doing", "doing"));
    project.write_wp(
        FEATURE,
        "WP02-approved.md",
        &wp_text("WP02", "Approved", "approved"),
    );
    project.move_ok("WP01", "FOR_REVIEW", &[]);
    project.move_ok("WP02", "done", &[]);
    let events = project.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["payload"]["from_lane"], "doing");
    assert_eq!(events[0]["payload"]["to_lane"], "for_review");
    assert_eq!(events[1]["payload"]["from_lane"], "for_review");
    assert_eq!(events[1]["payload"]["to_lane"], "done");
}

#[test]
fn a_first_transition_has_a_null_from_lane() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "No lane yet", "planned").replace(
        "lane: \"planned\"  # DO NOT EDIT",
        "lane: \"\"  # DO NOT EDIT",
    );
    let path = project.write_wp(FEATURE, "WP01-new.md", &original);
    project.move_ok("WP01", "planned", &[]);
    let event = project.only_event();
    assert_eq!(event["payload"]["from_lane"], Value::Null);
    assert_eq!(event["payload"]["to_lane"], "planned");
    assert!(spec_kitty_protocol::validate_event(&event).is_empty());
    assert!(read(&path).contains("lane: \"planned\"  # DO NOT EDIT"));
}

#[test]
fn unknown_lane_is_refused_with_the_valid_lanes() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Typo", "planned");
    let path = project.write_wp(FEATURE, "WP01-typo.md", &original);
    for bad in ["doingg", "approved", "in progress", ""] {
        let out = project.move_task("WP01", bad, &[]);
        assert_eq!(code(&out), 2, "--to {bad:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("'{bad}'")), "names the value: {err}");
        // Every canonical lane and the `doing` alias.
        let valid = COLLAPSE.iter().map(|(lane, _)| *lane).chain(["doing"]);
        for lane in valid {
            assert!(err.contains(lane), "lists {lane}: {err}");
        }
        assert_eq!(read(&path), original, "file unchanged");
        assert_nothing_queued(&project);
    }
    assert!(
        !project.config_path().exists(),
        "a refused move creates no identity either"
    );
}

#[test]
fn unknown_work_package_is_refused_with_the_list() {
    let project = Project::with_feature();
    let one = wp_text("WP01", "One", "planned");
    let two = wp_text("WP02", "Two", "planned");
    let p1 = project.write_wp(FEATURE, "WP01-one.md", &one);
    let p2 = project.write_wp(FEATURE, "WP02-two.md", &two);
    for wanted in ["WP07", "WP1", "nope"] {
        let out = project.move_task(wanted, "claimed", &[]);
        assert_ne!(code(&out), 0, "{wanted}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains(wanted), "names what was asked: {err}");
        assert!(err.contains("WP01") && err.contains("WP02"), "lists: {err}");
        assert!(err.contains(FEATURE), "names the feature: {err}");
    }
    assert_eq!(read(&p1), one);
    assert_eq!(read(&p2), two);
    assert_nothing_queued(&project);
}

#[test]
fn work_package_ids_are_matched_loosely() {
    let project = Project::with_feature();
    project.write_wp(
        FEATURE,
        "WP03-loose.md",
        &wp_text("WP03", "Loose", "planned"),
    );
    project.move_ok("wp03", "claimed", &[]);
    project.move_ok("03", "in_progress", &[]);
    let events = project.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["payload"]["wp_id"] == "WP03"));
}

#[test]
fn backwards_out_of_done_needs_force_and_reason() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Finished", "done");
    let path = project.write_wp(FEATURE, "WP01-finished.md", &original);

    // Without --force: refused, saying what would allow it.
    for to in ["in_progress", "planned", "for_review", "doing"] {
        let out = project.move_task("WP01", to, &[]);
        assert_ne!(code(&out), 0, "{to}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("--force") && err.contains("--reason"),
            "{to}: {err}"
        );
        assert!(err.contains("WP01"), "{err}");
        assert_eq!(read(&path), original, "unchanged after {to}");
    }
    // --force without --reason, or with an empty one: refused too.
    for extra in [
        &["--force"][..],
        &["--force", "--reason", ""],
        &["--force", "--reason", "  "],
    ] {
        let out = project.move_task("WP01", "in_progress", extra);
        assert_ne!(code(&out), 0, "{extra:?}: {}", describe(&out));
        assert!(stderr(&out).contains("--reason"), "{}", describe(&out));
        assert_eq!(read(&path), original, "unchanged after {extra:?}");
    }
    assert_nothing_queued(&project);

    // With both: allowed, and the event says so.
    let out = project.move_task(
        "WP01",
        "in_progress",
        &[
            "--force",
            "--reason",
            "Regression found in review",
            "--agent",
            "rev",
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let event = project.only_event();
    let payload = &event["payload"];
    assert_eq!(payload["force"], true);
    assert_eq!(text(payload, "/reason"), "Regression found in review");
    assert_eq!(payload["from_lane"], "done");
    assert_eq!(payload["to_lane"], "doing");
    assert!(spec_kitty_protocol::validate_event(&event).is_empty());
    let after = read(&path);
    let front = front_matter(&after);
    assert_eq!(front["lane"].as_str(), Some("in_progress"));
    let history = front["history"].as_vec().expect("history");
    assert_eq!(history.len(), 2);
    let action = history[1]["action"].as_str().expect("action");
    assert!(
        action.contains("Regression found in review"),
        "the history says why: {action}"
    );
}

#[test]
fn force_is_not_needed_for_forward_moves_and_is_recorded_when_given() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-f.md", &wp_text("WP01", "F", "for_review"));
    project.move_ok("WP01", "done", &["--force", "--reason", "Approved offline"]);
    let event = project.only_event();
    assert_eq!(event["payload"]["force"], true);
    assert_eq!(event["payload"]["reason"], "Approved offline");
    assert!(spec_kitty_protocol::validate_event(&event).is_empty());
}

#[test]
fn moving_to_the_current_lane_queues_nothing() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Same", "in_progress");
    let path = project.write_wp(FEATURE, "WP01-same.md", &original);
    let out = project.move_task("WP01", "doing", &["--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["unchanged"], true, "{}", stdout(&out));
    assert_eq!(read(&path), original);
    assert_nothing_queued(&project);
}

#[test]
fn a_file_with_an_unknown_lane_is_reported_not_guessed() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Bad lane", "wip");
    let path = project.write_wp(FEATURE, "WP01-bad.md", &original);
    let out = project.move_task("WP01", "done", &[]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("'wip'") && err.contains("WP01-bad.md"),
        "{err}"
    );
    assert_eq!(read(&path), original);
    assert_nothing_queued(&project);
}

#[test]
fn typos_get_a_suggestion_and_exit_2() {
    let project = Project::with_feature();
    let original = wp_text("WP01", "Typo", "planned");
    let path = project.write_wp(FEATURE, "WP01-typo.md", &original);
    let out = project.move_task("WP01", "doign", &[]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("Did you mean 'doing'?"),
        "{}",
        describe(&out)
    );
    let out = project.move_task("WP1", "claimed", &[]);
    assert_eq!(code(&out), 2, "unknown work package: {}", describe(&out));
    assert!(
        stderr(&out).contains("Did you mean 'WP01'?"),
        "{}",
        describe(&out)
    );
    assert_eq!(read(&path), original, "file unchanged");
    assert_nothing_queued(&project);
}

#[test]
fn the_move_names_each_lane_once() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-a.md", &wp_text("WP01", "A", "planned"));
    project.write_wp(FEATURE, "WP02-b.md", &wp_text("WP02", "B", "planned"));
    let out = project.move_task("WP01", "doing", &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("Moved"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("Moved WP01 from planned to in_progress; event queued."),
        "{line}"
    );
    assert!(!line.contains("doing"), "one name for in_progress: {line}");
    let out = project.move_task("WP02", "claimed", &[]);
    assert!(
        stdout(&out).contains("to claimed (the team board shows claimed as doing);"),
        "{}",
        describe(&out)
    );
}
