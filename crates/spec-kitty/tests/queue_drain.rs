//! `spec-kitty sync now` against the real server (and, where a real server
//! cannot be made to answer that way, a fake batch endpoint): what is
//! delivered, what stays, retry counts, exit codes, `--json` and `--report`.

use crate::queue_support;

use std::collections::HashMap;

use queue_support::{
    FakeBatch, Home, Server, all_success, code, describe, events, id_of, one_json_object, project,
    status_event, stderr, stdout,
};
use serde_json::{Value, json};

/// An event the client would never queue itself but an older or broken
/// client might have: its lane is a typo, so the server rejects it.
fn queue_bad_lane(home: &Home, project: &str) -> String {
    let bad = status_event(project, 99, "doingg", time::Duration::seconds(30));
    let id = id_of(&bad);
    home.insert_raw(&id, "WPStatusChanged", &bad.to_string());
    id
}

#[test]
fn mixed_drain_delivers_the_good_and_keeps_the_rejected_with_its_reason() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    let good = events(&project, 5);
    home.import(&good);
    let bad = queue_bad_lane(&home, &project);
    assert_eq!(home.depth(), 6);

    let report = home.file("report.json");
    let out = home.run(&["sync", "now", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(
        code(&out),
        1,
        "a failed event fails the run: {}",
        describe(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("Synced: 5, Duplicates: 0, Failed: 1"),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains("sync diagnose"),
        "advice for schema failures: {text}"
    );
    assert!(text.contains(&bad), "the failed event is named: {text}");

    assert_eq!(server.event_count(), 5, "the good events were delivered");
    let rows = home.rows();
    assert_eq!(rows.len(), 1, "only the rejected event stays: {rows:?}");
    let row = &rows[0];
    assert_eq!(row.event_id, bad);
    assert_eq!(row.retry_count, 1);
    assert_eq!(row.state, "rejected");
    let reason = row.last_error.as_deref().expect("a reason is kept");
    assert!(
        reason.contains("payload.to_lane") && reason.contains("doingg"),
        "the server's reason is kept: {reason}"
    );

    // --report: every failure with its id, category and reason.
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    assert_eq!(report["synced"], 5, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let failures = report["failures"].as_array().expect("failures list");
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["event_id"], bad.as_str(), "{report}");
    assert_eq!(failures[0]["category"], "schema", "{report}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("doingg")),
        "{report}"
    );

    // --no-strict: same work, exit 0; the retry is counted again.
    let out = home.run(&["sync", "now", "--no-strict"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Synced: 0, Duplicates: 0, Failed: 1"),
        "{}",
        describe(&out)
    );
    let row = home.row(&bad).expect("still queued");
    assert_eq!(row.retry_count, 2);
    assert_eq!(server.event_count(), 5);
}

#[test]
fn json_prints_exactly_one_object_with_the_counts() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    let batch = events(&project, 4);
    home.import(&batch);
    let bad = queue_bad_lane(&home, &project);

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 4, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
    assert_eq!(json["failed"], 1, "{json}");
    assert_eq!(json["remaining"], 1, "{json}");
    let categories = json["categories"].as_object().expect("categories object");
    assert_eq!(categories["schema"], 1, "{json}");
    for key in ["auth", "server", "unknown"] {
        assert_eq!(categories[key], 0, "{key}: {json}");
    }
    // The failed event itself, as the text output lists it.
    let failures = json["failures"].as_array().expect("failures listed");
    assert_eq!(failures.len(), 1, "{json}");
    assert_eq!(failures[0]["event_id"], bad.as_str(), "{json}");
    assert_eq!(failures[0]["category"], "schema", "{json}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{json}"
    );

    // The same events again: the server already has them, so they count as
    // duplicates and leave the queue.
    home.import(&batch);
    let out = home.run(&["sync", "now", "--json", "--no-strict"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 0, "{json}");
    assert_eq!(json["duplicates"], 4, "{json}");
    assert_eq!(json["failed"], 1, "{json}");
    assert_eq!(json["remaining"], 1, "{json}");
    assert_eq!(server.event_count(), 4);
    assert_eq!(
        home.rows()
            .iter()
            .map(|r| r.event_id.clone())
            .collect::<Vec<_>>(),
        vec![bad]
    );

    // An empty queue is still one object.
    home.run(&["sync", "discard", "--all-rejected", "--yes"]);
    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 0, "{json}");
    assert_eq!(json["remaining"], 0, "{json}");
}

#[test]
fn offline_keeps_everything_and_counts_no_retry() {
    let mut server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    home.import(&events(&project, 3));
    let bad = queue_bad_lane(&home, &project);
    // One real attempt first, so a retry count and a reason exist.
    let out = home.run(&["sync", "now", "--no-strict"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    home.import(&events(&project, 7));
    let before = home.rows();
    assert_eq!(before.len(), 8);

    server.stop();
    for args in [
        &["sync", "now"][..],
        &["sync", "now", "--json"][..],
        &["sync", "now", "--no-strict"][..],
    ] {
        let out = home.run(args);
        let expected = if args.contains(&"--no-strict") { 0 } else { 7 };
        assert_eq!(code(&out), expected, "{args:?}: {}", describe(&out));
        let all = format!("{}{}", stdout(&out), queue_support::stderr(&out));
        if args.contains(&"--json") {
            let json = one_json_object(&out);
            assert_eq!(json["remaining"], 8, "{json}");
            assert_eq!(json["synced"], 0, "{json}");
            assert_eq!(json["stopped"]["category"], "server", "{json}");
            assert_eq!(json["stopped"]["outcome"], "unreachable", "{json}");
            assert!(
                json["stopped"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("kept")),
                "{json}"
            );
        } else {
            assert!(all.contains("events kept"), "{args:?}: {}", describe(&out));
        }
        assert_eq!(home.rows(), before, "nothing changed in the queue");
    }
    assert_eq!(home.row(&bad).expect("queued").retry_count, 1);
}

#[test]
fn a_refused_access_token_is_refreshed_once_and_the_drain_completes() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    // More than one batch (1000 events per batch).
    let all = events(&project, 2500);
    home.import(&all);
    home.spoil_access_token();

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 2500, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["remaining"], 0, "{json}");
    assert_eq!(server.event_count(), 2500);
    assert_eq!(home.depth(), 0);
    let access = home.access_token();
    assert_ne!(
        access, "garbage-not-a-jwt",
        "the refreshed token was stored"
    );
}

#[test]
fn permission_denied_stops_and_deletes_nothing() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    home.import(&events(&project, 5));
    let before = home.rows();
    server.remove_alice();

    let report = home.file("report.json");
    let out = home.run(&["sync", "now", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    assert!(
        stderr(&out).contains("Check team membership"),
        "{}",
        describe(&out)
    );
    assert_eq!(server.event_count(), 0);
    assert_eq!(home.rows(), before, "nothing deleted, no retry counted");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    assert_eq!(report["remaining"], 5, "{report}");
    assert_eq!(
        report["stopped"]["outcome"], "permission_denied",
        "{report}"
    );

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["categories"]["auth"], 0, "{json}");
    assert_eq!(json["remaining"], 5, "{json}");
    assert_eq!(home.rows(), before);
}

/// A real server answers per event and never refuses a whole batch that
/// parses, so a fake endpoint stands in: it answers the whole batch 400
/// whenever the poisoned event is in it, and success for every event
/// otherwise.
#[test]
fn a_poisoned_batch_is_bisected_and_only_the_poison_is_parked() {
    let home = Home::new();
    let project = project();
    let all = events(&project, 10);
    let poison = id_of(&all[6]);
    let marker = poison.clone();
    let fake = FakeBatch::start(move |ids| {
        if ids.contains(&marker) {
            (
                400,
                json!({"error": "Malformed JSON", "details": "poison inside"}).to_string(),
            )
        } else {
            (200, all_success(ids))
        }
    });
    home.fake_login(&fake.url);
    home.import(&all);

    let report = home.file("report.json");
    let out = home.run(&["sync", "now", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Synced: 9, Duplicates: 0, Failed: 1"),
        "{}",
        describe(&out)
    );

    // Every good event was accepted exactly once; the poison never was.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for batch in fake.batches() {
        if !batch.contains(&poison) {
            for id in batch {
                *accepted.entry(id).or_default() += 1;
            }
        }
    }
    for event in &all {
        let id = id_of(event);
        let expected = usize::from(id != poison);
        assert_eq!(accepted.get(&id).copied().unwrap_or(0), expected, "{id}");
    }

    let rows = home.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].event_id, poison);
    assert_eq!(rows[0].state, "parked");
    let reason = rows[0].last_error.as_deref().expect("reason kept");
    assert!(
        reason.contains("400") && reason.contains("poison inside"),
        "{reason}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["event_id"], poison.as_str(), "{report}");
    assert_eq!(failures[0]["category"], "schema", "{report}");
    assert_eq!(failures[0]["parked"], true, "{report}");
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("poison inside")),
        "{report}"
    );

    // `sync status` shows the parked event and why.
    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("Parked:     1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&poison) && l.contains("poison inside")),
        "{text}"
    );
    let out = home.run(&["sync", "status", "--json"]);
    let json = one_json_object(&out);
    let parked = json["queue"]["parked"].as_array().expect("parked list");
    assert_eq!(parked.len(), 1, "{json}");
    assert_eq!(parked[0]["event_id"], poison.as_str(), "{json}");
    assert!(
        parked[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("poison inside")),
        "{json}"
    );

    // A parked event is not sent again: the next run has nothing to send.
    let sent = fake.batches().len();
    let out = home.run(&["sync", "now", "--no-strict"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(fake.batches().len(), sent, "nothing was sent");
    assert_eq!(home.rows().len(), 1);
}

/// A real server always answers every event; only a fake can leave some
/// without a result.
#[test]
fn events_without_a_result_stay_queued_and_the_run_ends() {
    let home = Home::new();
    let project = project();
    let all = events(&project, 6);
    let fake = FakeBatch::start(|ids| {
        let half: Vec<String> = ids.iter().take(3).cloned().collect();
        (200, all_success(&half))
    });
    home.fake_login(&fake.url);
    home.import(&all);

    let report = home.file("report.json");
    let out = home.run(&["sync", "now", "--report", report.to_str().expect("utf-8")]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Synced: 3, Duplicates: 0, Failed: 3"),
        "{}",
        describe(&out)
    );
    let rows = home.rows();
    let left: Vec<String> = rows.iter().map(|r| r.event_id.clone()).collect();
    let expected: Vec<String> = all[3..].iter().map(id_of).collect();
    assert_eq!(left, expected, "the unanswered events stay");
    assert!(
        rows.iter()
            .all(|r| r.retry_count == 0 && r.state == "pending"),
        "no retry counted for events without an answer: {rows:?}"
    );
    assert_eq!(fake.batches().len(), 1, "the batch was sent once");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    let failures = report["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 3, "{report}");
    for failure in failures {
        assert_eq!(failure["category"], "server", "{report}");
        assert!(failure["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(expected.iter().any(|id| failure["event_id"] == id.as_str()));
    }
}

/// Only a fake answers 200 with an empty result list to a non-empty batch.
#[test]
fn an_empty_result_list_keeps_everything_and_never_loops() {
    let home = Home::new();
    let project = project();
    // Three batches' worth: the run must stop after the first empty answer.
    let all = events(&project, 2100);
    let fake = FakeBatch::start(|_| (200, r#"{"results": []}"#.to_string()));
    home.fake_login(&fake.url);
    home.import(&all);
    let before = home.rows();

    let out = home.run(&["sync", "now", "--json"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 0, "{json}");
    assert_eq!(json["remaining"], 2100, "{json}");
    assert!(
        json["stopped"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kept")),
        "{json}"
    );
    assert_eq!(home.rows(), before, "nothing deleted, no retry counted");
    // The batches already on the wire when the first empty answer came
    // back were answered too; none was sent twice.
    assert_sent_at_most_once(&fake);
}

/// No event went to the fake twice: the drain never loops, and the
/// batches on the wire when it stopped are all it sent after the stop.
fn assert_sent_at_most_once(fake: &FakeBatch) {
    let mut seen = std::collections::HashSet::new();
    for id in fake.batches().into_iter().flatten() {
        assert!(seen.insert(id.clone()), "{id} was sent twice");
    }
}

/// A real server cannot be made to fail with a 500 on demand; a fake does.
#[test]
fn a_server_error_stops_the_drain_and_keeps_everything() {
    let home = Home::new();
    let all = events(&project(), 1500);
    let fake = FakeBatch::start(|_| {
        (
            500,
            json!({"error": "database is on fire", "details": "try later"}).to_string(),
        )
    });
    home.fake_login(&fake.url);
    home.import(&all);
    let before = home.rows();

    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 9, "{}", describe(&out));
    let text = stderr(&out);
    assert!(text.contains("Stopped: Server error (HTTP 500"), "{text}");
    assert!(text.contains("events kept"), "{text}");
    assert!(!stdout(&out).contains("Stopped"), "errors go to stderr");
    assert!(
        stdout(&out).contains("Remaining in queue: 1500"),
        "results to stdout"
    );
    assert_eq!(home.rows(), before, "nothing deleted, no retry counted");
    assert_sent_at_most_once(&fake);
}

#[test]
fn no_session_stops_before_sending_and_touches_nothing() {
    let server = Server::start();
    let home = Home::new();
    home.import(&events(&project(), 3));
    let before = home.rows();

    // Never logged in.
    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("auth login"), "{}", describe(&out));
    assert_eq!(home.rows(), before);

    // Logged in, but the access token expired and the refresh token is
    // refused by the server: the session is over.
    home.login(server.url());
    let text = std::fs::read_to_string(home.credentials_path()).expect("credentials");
    let mut doc = text.parse::<toml_edit::DocumentMut>().expect("TOML");
    doc["tokens"]["access_expires_at"] = toml_edit::value("2020-01-01T00:00:00+00:00");
    doc["tokens"]["refresh"] = toml_edit::value("not-a-refresh-token");
    std::fs::write(home.credentials_path(), doc.to_string()).expect("write credentials");
    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["stopped"]["outcome"], "session_expired", "{json}");
    assert_eq!(json["remaining"], 3, "{json}");
    assert_eq!(home.rows(), before);
    assert_eq!(server.event_count(), 0);
}

/// A real server with a small body limit answers 413 to a full batch: the
/// client splits it until the pieces fit, and parks only the one event
/// that is too large on its own.
#[test]
fn too_large_batches_are_split_and_an_oversized_event_is_parked() {
    let server = Server::start_with(|config| {
        config.limits.max_decompressed_bytes = 200_000;
    });
    let home = Home::new();
    home.login(server.url());
    let project = project();
    let all = events(&project, 1200);
    let mut huge = status_event(&project, 5000, "done", time::Duration::seconds(30));
    huge["payload"]["evidence"] = json!("x".repeat(300_000));
    let huge_id = id_of(&huge);
    let mut queued = all.clone();
    queued.insert(600, huge);
    home.import(&queued);

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], 1200, "{json}");
    assert_eq!(json["failed"], 1, "{json}");
    assert_eq!(server.event_count(), 1200);
    let rows = home.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    queue_support::assert_parked_as_too_large(&rows, &huge_id);
}

/// An event naming team `beta`, which the user (of `acme`) is not in,
/// made `age` ago and queued in that place. `sync import` refuses such an
/// event now, so it goes into the queue the way an older client would
/// have put it there.
fn queue_other_team(home: &Home, project: &str, age: time::Duration) -> String {
    let mut other = status_event(project, 50, "doing", age);
    other["team_slug"] = json!("beta");
    let id = id_of(&other);
    home.insert_raw(&id, "WPStatusChanged", &other.to_string());
    let at = queue_support::micros(time::OffsetDateTime::now_utc() - age);
    home.queue_db()
        .execute(
            "UPDATE events SET ts_micros = ?1 WHERE event_id = ?2",
            rusqlite::params![at, id],
        )
        .expect("place the event in the queue");
    id
}

/// Issue #15: one event for a team the user is not in made the server
/// refuse every batch it was in (403), and the drain stopped there with
/// every valid event behind it. It is now found, parked with the
/// server's reason, and the rest delivered.
#[test]
fn an_event_for_another_team_is_parked_and_the_rest_delivered() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    home.import(&events(&project, 3));
    let other = queue_other_team(&home, &project, time::Duration::seconds(30));
    // Younger than the one above, so they are queued behind it.
    let later: Vec<Value> = (0..3)
        .map(|i| status_event(&project, 60 + i, "for_review", time::Duration::seconds(10)))
        .collect();
    home.import(&later);
    assert_eq!(home.depth(), 7);

    let report = home.file("report.json");
    let out = home.run(&["sync", "now", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 1, "some failed: {}", describe(&out));
    assert!(
        stdout(&out).contains("Synced: 6, Duplicates: 0, Failed: 1"),
        "{}",
        describe(&out)
    );
    assert_eq!(server.event_count(), 6, "the valid events were delivered");

    let rows = home.rows();
    assert_eq!(rows.len(), 1, "only the other team's event stays: {rows:?}");
    assert_eq!(rows[0].event_id, other);
    assert_eq!(rows[0].state, "parked");
    let reason = rows[0].last_error.as_deref().expect("a reason is kept");
    assert!(
        reason.contains("403") && reason.contains("beta"),
        "the server's reason is kept: {reason}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON");
    assert_eq!(
        report["failures"][0]["event_id"],
        other.as_str(),
        "{report}"
    );
    assert_eq!(report["failures"][0]["parked"], true, "{report}");
    assert!(
        report["stopped"].is_null(),
        "the drain did not stop: {report}"
    );

    let out = home.run(&["sync", "status"]);
    let text = stdout(&out);
    assert!(text.contains("Parked:     1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&other) && l.contains("beta")),
        "{text}"
    );
    let out = home.run(&["sync", "diagnose", "--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["invalid"], 1, "{json}");
    assert_eq!(json["events"][0]["event_id"], other.as_str(), "{json}");
    assert_eq!(
        json["events"][0]["errors"][0]["path"], "team_slug",
        "{json}"
    );
    assert_eq!(json["events"][0]["errors"][0]["found"], "beta", "{json}");
}

/// A user removed from their team is refused as a whole: the drain stops
/// as before (exit 6), even with another team's event first in the queue,
/// and parks nothing (the user's own events are tried before another
/// team's event is blamed).
#[test]
fn a_user_removed_from_the_team_still_stops_and_parks_nothing() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let project = project();
    home.import(&events(&project, 3));
    let other = queue_other_team(&home, &project, time::Duration::minutes(2));
    assert_eq!(home.rows()[0].event_id, other, "first in the queue");
    let before = home.rows();
    server.remove_alice();

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["stopped"]["outcome"], "permission_denied", "{json}");
    assert_eq!(json["remaining"], 4, "{json}");
    assert_eq!(server.event_count(), 0);
    assert_eq!(home.rows(), before, "nothing parked, no retry counted");
}

/// With the server down and the access token due for a refresh, the news
/// is the server, not the refresh: the same headline as `sync status
/// --check`.
#[test]
fn a_refresh_against_a_stopped_server_is_server_unreachable() {
    let mut server = Server::start();
    let home = Home::new();
    home.login(server.url());
    home.import(&events(&project(), 2));
    let text = std::fs::read_to_string(home.credentials_path()).expect("credentials");
    let mut doc = text.parse::<toml_edit::DocumentMut>().expect("TOML");
    doc["tokens"]["access_expires_at"] = toml_edit::value("2020-01-01T00:00:00+00:00");
    std::fs::write(home.credentials_path(), doc.to_string()).expect("write credentials");
    server.stop();

    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert!(
        stderr(&out).starts_with("Stopped: Server unreachable: could not refresh the session"),
        "{}",
        describe(&out)
    );
}
