//! The queue by hand: `sync status` (queue health, no side effects),
//! `sync diagnose`, `sync import` (JSON Lines; the Python client's queues
//! are in `queue_python.rs`) and `sync discard`, through the real binary.

use crate::queue_support;

use queue_support::{
    Home, Server, code, describe, events, id_of, one_json_object, other_event, project,
    status_event, stderr, stdout,
};
use rusqlite::params;
use serde_json::{Value, json};

#[test]
fn status_shows_the_queue_health_and_json_carries_it() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();

    // Never synced, nothing queued.
    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Queue:        0 event(s)"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains("Last sync:  never"),
        "{}",
        describe(&out)
    );

    // A rejected event tried four times (retries 4+), then fresh events.
    let bad = status_event(&project, 1, "doingg", time::Duration::hours(2));
    let bad_id = id_of(&bad);
    home.create_queue();
    home.insert_raw(&bad_id, "WPStatusChanged", &bad.to_string());
    // Give the hand-made row its real (two hours old) timestamp.
    home.queue_db()
        .execute(
            "UPDATE events SET ts_micros = ?1 WHERE event_id = ?2",
            params![
                queue_support::micros(time::OffsetDateTime::now_utc() - time::Duration::hours(2)),
                bad_id
            ],
        )
        .expect("age the row");
    home.import(&events(&project, 2));
    for _ in 0..4 {
        let out = home.run(&["sync", "now", "--no-strict"]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
    }
    assert_eq!(home.row(&bad_id).expect("queued").retry_count, 4);
    // WPCreated payloads are checked (contract section 8): a valid one each.
    let created: Vec<Value> = (0..3)
        .map(|i| {
            let mut event = other_event(&project, "WPCreated", 10 + i);
            event["payload"] = json!({"wp_id": format!("WP{}", 10 + i), "title": "Something",
                "feature_slug": "039-cli-2x-readiness", "dependencies": []});
            event
        })
        .collect();
    home.import(&created);
    let mut pending = events(&project, 1);
    pending[0]["event_type"] = json!("FeatureCreated");
    pending[0]["payload"] = json!({"feature_slug": "039-cli-2x-readiness"});
    home.import(&pending);
    let uploaded = server.event_count();
    assert_eq!(uploaded, 2);

    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("Queue:        5 event(s)"), "{text}");
    assert!(text.contains("events.db"), "{text}");
    let oldest = text
        .lines()
        .find(|l| l.trim_start().starts_with("Oldest:"))
        .expect("an Oldest line");
    assert!(oldest.contains("2h"), "two hours old: {oldest}");
    assert!(text.contains("Retries:    0: 4, 1-3: 0, 4+: 1"), "{text}");
    assert!(
        text.contains("Top types:  WPCreated 3, FeatureCreated 1, WPStatusChanged 1"),
        "{text}"
    );
    assert!(text.contains("Rejected:   1"), "{text}");
    let last_sync = text
        .lines()
        .find(|l| l.trim_start().starts_with("Last sync:"))
        .expect("a Last sync line");
    assert!(!last_sync.contains("never"), "{last_sync}");
    // The age, then the moment to the second (no microseconds).
    assert!(
        (last_sync.contains("just now (") || last_sync.contains("m ago ("))
            && last_sync.ends_with(" UTC)"),
        "{last_sync}"
    );
    assert!(!last_sync.contains('.'), "{last_sync}");

    let out = home.run(&["sync", "status", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    let queue = &json["queue"];
    assert_eq!(queue["depth"], 5, "{json}");
    let age = queue["oldest_event_age_secs"].as_i64().expect("age");
    assert!((7000..8000).contains(&age), "about two hours: {json}");
    assert!(queue["oldest_event_at"].is_string(), "{json}");
    assert_eq!(
        queue["retries"],
        json!({"0": 4, "1-3": 0, "4+": 1}),
        "{json}"
    );
    assert_eq!(
        queue["top_event_types"],
        json!([
            ["WPCreated", 3],
            ["FeatureCreated", 1],
            ["WPStatusChanged", 1]
        ]),
        "{json}"
    );
    assert_eq!(queue["rejected"], 1, "{json}");
    assert_eq!(queue["parked"], json!([]), "{json}");
    let last = queue["last_sync_at"].as_str().expect("last sync time");
    let last = spec_kitty_protocol::timestamp::parse(last).expect("a timestamp");
    let since = time::OffsetDateTime::now_utc() - last;
    assert!(
        since >= time::Duration::ZERO && since < time::Duration::hours(1),
        "{json}"
    );

    // Status neither uploads nor changes the queue.
    let rows = home.rows();
    home.run(&["sync", "status"]);
    home.run(&["sync", "status", "--json"]);
    assert_eq!(server.event_count(), uploaded, "status uploaded nothing");
    assert_eq!(home.rows(), rows, "status changed nothing");
}

#[test]
fn status_creates_nothing_when_there_is_no_queue() {
    let home = Home::new();
    for args in [&["sync", "status"][..], &["sync", "status", "--json"][..]] {
        let out = home.run(args);
        assert_eq!(code(&out), 0, "{}", describe(&out));
    }
    let json = one_json_object(&home.run(&["sync", "status", "--json"]));
    assert_eq!(json["queue"]["depth"], 0, "{json}");
    assert!(json["queue"]["last_sync_at"].is_null(), "{json}");
    assert!(!home.queue_path().exists(), "events.db was not created");
    assert!(!home.dir().exists(), "~/.spec-kitty was not created");

    // `sync diagnose` on no queue is read-only too.
    let out = home.run(&["sync", "diagnose", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(one_json_object(&out)["total"], 0);
    assert!(!home.queue_path().exists(), "events.db was not created");
}

#[test]
fn diagnose_lists_every_bad_field_of_hand_broken_events() {
    let home = Home::new();
    let project = project();
    home.create_queue();
    let good = events(&project, 1);
    home.import(&good);

    let bad_lane = status_event(&project, 2, "doingg", time::Duration::minutes(1));
    let bad_lane_id = id_of(&bad_lane);
    home.insert_raw(&bad_lane_id, "WPStatusChanged", &bad_lane.to_string());

    let mut no_node = status_event(&project, 3, "done", time::Duration::minutes(1));
    no_node
        .as_object_mut()
        .expect("an object")
        .remove("node_id");
    let no_node_id = id_of(&no_node);
    home.insert_raw(&no_node_id, "WPStatusChanged", &no_node.to_string());

    let not_json_id = ulid::Ulid::new().to_string();
    home.insert_raw(&not_json_id, "WPStatusChanged", "{\"event_id\": \"trunc");

    let out = home.run(&["sync", "diagnose"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("4 queued event(s), 3 invalid."), "{text}");
    assert!(
        text.contains("payload.to_lane: expected a lane")
            && text.contains("found unknown lane 'doingg'"),
        "{text}"
    );
    assert!(
        text.contains("node_id: expected a non-empty string, found nothing (the field is missing)"),
        "{text}"
    );
    assert!(text.contains("(event): expected JSON, found"), "{text}");
    for id in [&bad_lane_id, &no_node_id, &not_json_id] {
        assert!(text.contains(id.as_str()), "{id} named: {text}");
    }
    assert!(
        !text.contains(&id_of(&good[0])),
        "the valid event is not listed"
    );
    assert!(
        text.contains("sync discard"),
        "says how to drop one: {text}"
    );

    let out = home.run(&["sync", "diagnose", "--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["total"], 4, "{json}");
    assert_eq!(json["invalid"], 3, "{json}");
    let findings = json["events"].as_array().expect("events");
    assert_eq!(findings.len(), 3, "{json}");
    let errors_of = |id: &str| -> Vec<Value> {
        findings
            .iter()
            .find(|f| f["event_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {json}"))["errors"]
            .as_array()
            .expect("errors list")
            .clone()
    };
    let lane = errors_of(&bad_lane_id);
    assert_eq!(lane.len(), 1, "{lane:?}");
    assert_eq!(lane[0]["path"], "payload.to_lane");
    assert!(
        lane[0]["expected"]
            .as_str()
            .is_some_and(|e| e.contains("planned"))
    );
    assert_eq!(lane[0]["found"], "unknown lane 'doingg'");
    let node = errors_of(&no_node_id);
    assert_eq!(
        node,
        vec![json!({"path": "node_id", "expected": "a non-empty string",
            "found": "nothing (the field is missing)"})]
    );
    let body = errors_of(&not_json_id);
    assert_eq!(body.len(), 1, "{body:?}");
    assert_eq!(body[0]["path"], "(event)");
    assert_eq!(body[0]["expected"], "JSON");
    assert!(body[0]["found"].as_str().is_some_and(|f| !f.is_empty()));
    for finding in findings {
        assert_eq!(finding["valid"], false, "{finding}");
    }

    // Diagnose is read-only.
    assert_eq!(home.depth(), 4);
    // Without the broken events, it passes.
    let out = home
        .cmd()
        .args([
            "sync",
            "discard",
            "--yes",
            &bad_lane_id,
            &no_node_id,
            &not_json_id,
        ])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = home.run(&["sync", "diagnose", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["invalid"], 0, "{json}");
    assert_eq!(json["events"], json!([]), "{json}");
}

#[test]
fn import_reports_the_bad_line_by_number_and_queues_the_rest() {
    let home = Home::new();
    let project = project();
    let all = events(&project, 4);
    let mut bad = status_event(&project, 9, "done", time::Duration::minutes(1));
    bad["project_uuid"] = json!("not-a-uuid");
    let path = home.file("events.jsonl");
    // Line 1, 2, (blank) 3, bad 4, 5, 6.
    let text = format!(
        "{}\n{}\n\n{}\n{}\n{}\n",
        all[0], all[1], bad, all[2], all[3]
    );
    std::fs::write(&path, text).expect("write");

    let out = home.run(&["sync", "import", path.to_str().expect("utf-8")]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("line 4:"), "{}", describe(&out));
    assert!(err.contains("project_uuid"), "{}", describe(&out));
    assert!(
        !err.contains("line 3:") && !err.contains("line 5:"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("Queued 4 event(s)"),
        "{}",
        describe(&out)
    );
    let queued: Vec<String> = home.rows().into_iter().map(|r| r.event_id).collect();
    let expected: Vec<String> = all.iter().map(id_of).collect();
    assert_eq!(queued, expected);

    // A line that is not JSON at all, from standard input.
    let more = events(&project, 2);
    let out = home.import_stdin(format!("{}\nnot json\n{}\n", more[0], more[1]));
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("line 2: not JSON"),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 6);

    // Importing the same file again adds nothing twice.
    let out = home.run(&["sync", "import", path.to_str().expect("utf-8")]);
    assert_ne!(code(&out), 0, "still one bad line: {}", describe(&out));
    assert!(
        stdout(&out).contains("Queued 0 event(s) (4 were already queued)"),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 6);
}

#[test]
fn discard_asks_first_and_needs_yes_without_a_terminal() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    let good = events(&project, 3);
    let bad = status_event(&project, 7, "doingg", time::Duration::minutes(1));
    let bad_id = id_of(&bad);
    home.create_queue();
    home.insert_raw(&bad_id, "WPStatusChanged", &bad.to_string());
    let out = home.run(&["sync", "now", "--no-strict"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(home.row(&bad_id).expect("rejected").state, "rejected");
    home.import(&good);
    let ids: Vec<String> = good.iter().map(id_of).collect();

    // No terminal: refused without --yes, even with "y" piped in.
    let out = home.run(&["sync", "discard", &ids[0]]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stderr(&out).contains("--yes"), "{}", describe(&out));
    let out = home
        .cmd()
        .args(["sync", "discard", "--all-rejected"])
        .write_stdin("y\n")
        .output()
        .expect("runs");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert_eq!(home.depth(), 4, "nothing discarded");

    // With --yes: exactly the named events.
    let out = home.run(&["sync", "discard", "--yes", &ids[0]]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Discarded 1 event(s)."),
        "{}",
        describe(&out)
    );
    assert!(home.row(&ids[0]).is_none());
    assert_eq!(home.depth(), 3);

    // An id that is not queued is named before any question, and nothing
    // is discarded, with or without --yes.
    let unknown = ulid::Ulid::new().to_string();
    for args in [
        &["sync", "discard", &unknown, &ids[1]][..],
        &["sync", "discard", "--yes", &unknown, &ids[1]],
    ] {
        let out = home.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains(&format!("not in the queue: {unknown};")),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(!stderr(&out).contains("--yes"), "{}", describe(&out));
        assert_eq!(home.depth(), 3, "nothing discarded");
    }
    let out = home.run(&["sync", "discard", "--yes", &ids[1]]);
    assert_eq!(code(&out), 0, "{}", describe(&out));

    // --all-rejected --yes drops the rejected event only.
    let out = home.run(&["sync", "discard", "--all-rejected", "--yes"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Discarded 1 event(s)."),
        "{}",
        describe(&out)
    );
    let left: Vec<String> = home.rows().into_iter().map(|r| r.event_id).collect();
    assert_eq!(left, vec![ids[2].clone()]);
    let out = home.run(&["sync", "discard", "--all-rejected"]);
    assert_eq!(code(&out), 0, "nothing to ask about: {}", describe(&out));
    assert!(
        stdout(&out).contains("Nothing to discard."),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 1);

    // The discarded events never reach the server.
    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(server.event_count(), 1);
}

#[test]
fn passing_max_queue_size_warns_loudly_and_drops_nothing() {
    let home = Home::new();
    std::fs::create_dir_all(home.dir()).expect("create ~/.spec-kitty");
    std::fs::write(
        home.dir().join("config.toml"),
        "[sync]\nmax_queue_size = 3\n",
    )
    .expect("write config");
    let project = project();

    let out = home.import_stdin_events(&events(&project, 3));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        !stderr(&out).contains("WARNING"),
        "at the limit, not past it: {}",
        describe(&out)
    );

    let out = home.import_stdin_events(&events(&project, 2));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("WARNING") && err.contains("max_queue_size") && err.contains("(3)"),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 5, "nothing dropped");

    let out = home.run(&["sync", "status"]);
    assert!(
        stdout(&out).contains("WARNING: the queue holds more than max_queue_size (3)"),
        "{}",
        describe(&out)
    );
    let json = one_json_object(&home.run(&["sync", "status", "--json"]));
    assert_eq!(json["max_queue_size"], 3, "{json}");
    assert_eq!(json["queue"]["depth"], 5, "{json}");
}

/// Issue #15: an event for a team the user is not in is refused where it
/// enters, with the reason, and the other lines are queued.
#[test]
fn import_refuses_an_event_for_another_team_and_queues_the_rest() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    let all = events(&project, 3);
    let mut other = status_event(&project, 9, "done", time::Duration::minutes(1));
    other["team_slug"] = json!("beta");
    let mut own = status_event(&project, 10, "done", time::Duration::minutes(1));
    own["team_slug"] = json!("acme");
    let mut local = status_event(&project, 11, "done", time::Duration::minutes(1));
    local["team_slug"] = json!("local");
    let path = home.file("events.jsonl");
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        all[0], other, all[1], own, local, all[2]
    );
    std::fs::write(&path, text).expect("write");

    let out = home.run(&["sync", "import", path.to_str().expect("utf-8")]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("line 2:") && l.contains("beta") && l.contains("acme")),
        "the line and the reason are named: {}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains("Queued 5 event(s)"),
        "{}",
        describe(&out)
    );
    let queued: Vec<String> = home.rows().into_iter().map(|r| r.event_id).collect();
    assert!(!queued.contains(&id_of(&other)), "{queued:?}");
    assert_eq!(queued.len(), 5, "{queued:?}");

    // Not logged in: the user's team is unknown, so the event is accepted
    // as before and the server decides.
    let anonymous = Home::new();
    let out = anonymous.run(&["sync", "import", path.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(anonymous.depth(), 6);
}
