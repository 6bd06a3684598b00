//! `spec-kitty agent tasks list-tasks`: lane, title, assignee and last
//! change of every work package, as a table or JSON, filtered by lane.

use crate::tasks_support;

use serde_json::Value;
use tasks_support::{FEATURE, Project, code, describe, stderr, stdout, wp_text};

/// WP01 planned (no assignee), WP02 in_progress (bob), WP10 done (carol),
/// WP03 claimed: listed in id order.
fn project() -> Project {
    let project = Project::with_feature();
    project.write_wp(
        FEATURE,
        "WP01-plan.md",
        &wp_text("WP01", "Plan the work", "planned"),
    );
    project.write_wp(
        FEATURE,
        "WP02-build.md",
        &wp_text("WP02", "Build the thing", "in_progress")
            .replace("assignee: \"\"", "assignee: \"bob\""),
    );
    project.write_wp(
        FEATURE,
        "WP10-ship.md",
        &wp_text("WP10", "Ship it", "done").replace("assignee: \"\"", "assignee: carol"),
    );
    project.write_wp(
        FEATURE,
        "WP03-claim.md",
        &wp_text("WP03", "Claimed one", "claimed"),
    );
    // Not work packages: ignored.
    project.write_wp(FEATURE, "README.md", "# tasks\n");
    project.write_wp(
        FEATURE,
        "WP4-short.md",
        &wp_text("WP04", "Bad name", "planned"),
    );
    project
}

fn list_json(project: &Project, extra: &[&str]) -> Value {
    let mut args = vec!["agent", "tasks", "list-tasks", "--json"];
    args.extend_from_slice(extra);
    let out = project.run(&args);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn ids(listing: &Value) -> Vec<String> {
    listing["work_packages"]
        .as_array()
        .expect("work_packages list")
        .iter()
        .map(|wp| wp["wp_id"].as_str().expect("wp_id").to_string())
        .collect()
}

#[test]
fn json_lists_every_work_package_with_its_fields() {
    let project = project();
    let listing = list_json(&project, &[]);
    assert_eq!(listing["feature"], FEATURE);
    assert_eq!(ids(&listing), ["WP01", "WP02", "WP03", "WP10"]);
    let wps = listing["work_packages"].as_array().expect("list");
    assert_eq!(wps[0]["lane"], "planned");
    assert_eq!(wps[0]["title"], "Plan the work");
    assert_eq!(wps[0]["assignee"], Value::Null, "empty assignee is none");
    assert_eq!(wps[0]["last_change"], "2026-01-05T08:00:00Z");
    assert_eq!(wps[1]["lane"], "in_progress");
    assert_eq!(wps[1]["assignee"], "bob");
    assert_eq!(wps[3]["title"], "Ship it");
    assert_eq!(wps[3]["assignee"], "carol", "unquoted values too");
    assert!(
        wps[3]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("WP10-ship.md")),
        "{listing:#}"
    );
}

#[test]
fn last_change_follows_a_move() {
    let project = project();
    project.move_ok("WP01", "claimed", &["--agent", "dana"]);
    let listing = list_json(&project, &[]);
    let wp01 = &listing["work_packages"][0];
    assert_eq!(wp01["lane"], "claimed");
    let history_stamp = {
        let text = std::fs::read_to_string(
            project
                .root
                .join("kitty-specs")
                .join(FEATURE)
                .join("tasks/WP01-plan.md"),
        )
        .expect("read");
        let front = tasks_support::front_matter(&text);
        let history = front["history"].as_vec().expect("history").clone();
        history
            .last()
            .and_then(|h| h["timestamp"].as_str().map(str::to_string))
            .expect("stamp")
    };
    assert_eq!(wp01["last_change"], history_stamp.as_str());
    assert_ne!(history_stamp, "2026-01-05T08:00:00Z");
}

#[test]
fn table_shows_lane_title_assignee_and_last_change() {
    let project = project();
    let out = project.run(&["agent", "tasks", "list-tasks"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains(FEATURE), "{text}");
    let row = |wp: &str| {
        text.lines()
            .find(|l| l.starts_with(wp))
            .unwrap_or_else(|| panic!("no row for {wp}:\n{text}"))
            .to_string()
    };
    let wp02 = row("WP02");
    for cell in [
        "in_progress",
        "Build the thing",
        "bob",
        "2026-01-05T08:00:00Z",
    ] {
        assert!(wp02.contains(cell), "{cell} in {wp02:?}");
    }
    let wp10 = row("WP10");
    for cell in ["done", "Ship it", "carol"] {
        assert!(wp10.contains(cell), "{cell} in {wp10:?}");
    }
    assert!(row("WP01").contains("Plan the work"));
    assert!(!text.contains("README"), "{text}");
    assert!(!text.contains("Bad name"), "{text}");
}

#[test]
fn lane_filter_with_the_alias() {
    let project = project();
    assert_eq!(ids(&list_json(&project, &["--lane", "planned"])), ["WP01"]);
    assert_eq!(ids(&list_json(&project, &["--lane", "done"])), ["WP10"]);
    assert_eq!(ids(&list_json(&project, &["--lane", "claimed"])), ["WP03"]);
    assert_eq!(
        ids(&list_json(&project, &["--lane", "doing"])),
        ["WP02"],
        "doing is in_progress"
    );
    assert_eq!(
        ids(&list_json(&project, &["--lane", "in_progress"])),
        ["WP02"]
    );
    assert!(ids(&list_json(&project, &["--lane", "blocked"])).is_empty());

    let out = project.run(&["agent", "tasks", "list-tasks", "--lane", "doing"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("WP02")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("WP01")), "{text}");
}

#[test]
fn unknown_lane_filter_is_refused() {
    let project = project();
    let out = project.run(&["agent", "tasks", "list-tasks", "--lane", "wip"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("'wip'") && err.contains("for_review"), "{err}");
}

#[test]
fn feature_selection_applies_to_listing() {
    let project = Project::new();
    project.write_wp(
        "001-alpha",
        "WP01-a.md",
        &wp_text("WP01", "Alpha", "planned"),
    );
    project.write_wp("002-beta", "WP01-b.md", &wp_text("WP01", "Beta", "done"));
    let out = project.run(&["agent", "tasks", "list-tasks"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("001-alpha, 002-beta"),
        "{}",
        describe(&out)
    );
    let beta = list_json(&project, &["--feature", "002"]);
    assert_eq!(beta["feature"], "002-beta");
    assert_eq!(beta["work_packages"][0]["title"], "Beta");
    project.git_branch("001-alpha", "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    let alpha = list_json(&project, &[]);
    assert_eq!(alpha["feature"], "001-alpha");
}

#[test]
fn unreadable_files_are_shown_not_fatal_and_listing_queues_nothing() {
    let project = project();
    project.write_wp(FEATURE, "WP05-broken.md", "no front matter here\n");
    let listing = list_json(&project, &[]);
    let broken = listing["work_packages"]
        .as_array()
        .expect("list")
        .iter()
        .find(|wp| wp["wp_id"] == "WP05")
        .expect("WP05 listed")
        .clone();
    assert!(broken["error"].as_str().is_some(), "{broken:#}");
    let out = project.run(&["agent", "tasks", "list-tasks"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains("WP05"), "{}", describe(&out));
    tasks_support::assert_nothing_queued(&project);
    assert!(!project.config_path().exists(), "listing writes nothing");
}

#[test]
fn an_empty_feature_says_so() {
    let project = Project::with_feature();
    let out = project.run(&["agent", "tasks", "list-tasks"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("No work packages"),
        "{}",
        describe(&out)
    );
    let listing = list_json(&project, &[]);
    assert_eq!(ids(&listing), Vec::<String>::new());
}
