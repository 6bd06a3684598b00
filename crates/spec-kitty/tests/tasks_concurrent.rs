//! Many `move-task` processes at once: every event queued, no two with the
//! same Lamport time, every file edited correctly, no update lost (issue 5).

use crate::tasks_support;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};

use tasks_support::{
    Expected, FEATURE, Project, assert_moved, collapse, front_matter, read, wp_lane_line, wp_text,
};

const TARGETS: [&str; 6] = [
    "claimed",
    "in_progress",
    "for_review",
    "done",
    "blocked",
    "canceled",
];

fn spawn_move(project: &Project, wp: &str, to: &str, agent: &str) -> Child {
    project
        .std_cmd()
        .args([
            "agent",
            "tasks",
            "move-task",
            wp,
            "--to",
            to,
            "--agent",
            agent,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn move-task")
}

fn wait_ok(children: Vec<(String, Child)>) {
    for (what, child) in children {
        let out = child.wait_with_output().expect("wait for move-task");
        assert!(
            out.status.success(),
            "{what} failed: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn twenty_processes_on_twenty_work_packages() {
    // A fresh machine and project: the queue and the project identity are
    // created by whichever process gets there first, under the race.
    let project = Project::with_feature();
    let mut originals = Vec::new();
    for n in 1..=20 {
        let wp = format!("WP{n:02}");
        let text = wp_text(&wp, &format!("Parallel task {n}"), "planned");
        let path = project.write_wp(FEATURE, &format!("{wp}-parallel-{n}.md"), &text);
        originals.push((wp, path, text, TARGETS[n % TARGETS.len()]));
    }

    let children: Vec<(String, Child)> = originals
        .iter()
        .map(|(wp, _, _, to)| {
            let agent = format!("agent-{wp}");
            (
                format!("move-task {wp} --to {to}"),
                spawn_move(&project, wp, to, &agent),
            )
        })
        .collect();
    wait_ok(children);

    let events = project.events();
    assert_eq!(events.len(), 20, "twenty events queued");
    let clocks: BTreeSet<u64> = events
        .iter()
        .map(|e| e["lamport_clock"].as_u64().expect("lamport_clock"))
        .collect();
    assert_eq!(
        clocks.len(),
        20,
        "twenty distinct Lamport values: {clocks:?}"
    );
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id"))
        .collect();
    assert_eq!(ids.len(), 20, "twenty distinct event ids");
    let uuids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["project_uuid"].as_str().expect("project_uuid"))
        .collect();
    assert_eq!(uuids.len(), 1, "one project identity, made once: {uuids:?}");

    for (wp, path, original, to) in &originals {
        let event = events
            .iter()
            .find(|e| e["payload"]["wp_id"] == wp.as_str())
            .unwrap_or_else(|| panic!("no event for {wp}"));
        assert_eq!(event["payload"]["from_lane"], "planned");
        assert_eq!(event["payload"]["to_lane"], collapse(to), "{wp}");
        assert!(spec_kitty_protocol::validate_event(event).is_empty());

        let old = wp_lane_line(wp, "planned");
        let new = wp_lane_line(wp, to);
        let agent = format!("agent-{wp}");
        let history_after = format!("    action: \"Prompt generated for {wp}\"");
        assert_moved(
            original,
            &read(path),
            &Expected {
                old_lane_line: &old,
                new_lane_line: &new,
                history_after: Some(&history_after),
                item_prefix: "  - ",
                log_after: "- 2026-01-05T08:00:00Z – system – lane=planned – Prompt created.",
                lane: to,
                agent: &agent,
                action: None,
            },
        );
    }
}

#[test]
fn concurrent_moves_of_one_work_package_lose_no_update() {
    // Ten processes move the same file. Each must see the file as the one
    // before it left it: the events, read in Lamport order, form one chain
    // (each from_lane is the previous to_lane) that matches the history.
    let project = Project::with_feature();
    let path = project.write_wp(
        FEATURE,
        "WP01-contended.md",
        &wp_text("WP01", "Contended", "planned"),
    );
    let lanes = ["claimed", "for_review", "planned", "blocked", "for_review"];
    let children: Vec<(String, Child)> = (0..10)
        .map(|i| {
            let to = lanes[i % lanes.len()];
            (
                format!("move #{i} to {to}"),
                spawn_move(&project, "WP01", to, &format!("racer-{i}")),
            )
        })
        .collect();
    wait_ok(children);

    let mut events = project.events();
    events.sort_by_key(|e| e["lamport_clock"].as_u64().expect("lamport"));
    assert!(!events.is_empty());
    let text = read(&path);
    let front = front_matter(&text);
    let history = front["history"].as_vec().expect("history");
    assert_eq!(
        history.len(),
        events.len() + 1,
        "one history entry per queued event:\n{text}"
    );
    let log_lines = text.lines().filter(|l| l.contains(" – racer-")).count();
    assert_eq!(log_lines, events.len(), "one log line per event:\n{text}");

    let mut previous = "planned".to_string();
    for (event, entry) in events.iter().zip(&history[1..]) {
        let lane = entry["lane"].as_str().expect("history lane");
        assert_eq!(event["payload"]["from_lane"], collapse(&previous), "{text}");
        assert_eq!(event["payload"]["to_lane"], collapse(lane), "{text}");
        assert_eq!(
            event["payload"]["actor"],
            entry["agent"].as_str().expect("agent")
        );
        assert_ne!(lane, previous, "a no-op move queues nothing");
        previous = lane.to_string();
    }
    assert_eq!(front["lane"].as_str(), Some(previous.as_str()));
    let clocks: BTreeSet<u64> = events
        .iter()
        .map(|e| e["lamport_clock"].as_u64().expect("lamport"))
        .collect();
    assert_eq!(clocks.len(), events.len());
}
