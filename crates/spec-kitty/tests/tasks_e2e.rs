//! End to end against the real server (started in-process on loopback):
//! log in, move work packages, `sync now`, and the server has stored the
//! events with the collapsed lanes (issue 5).

use crate::tasks_support;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tasks_support::{FEATURE, Project, TestServer, code, describe, password_login, wp_text};

const PASSWORD: &str = "password123";

#[test]
fn moved_work_packages_reach_the_server_with_collapsed_lanes() {
    let server = TestServer::start();
    assert!(server.server.addr.ip().is_loopback(), "loopback only");
    server.add_team("acme");
    server.add_user_with_password("alice", PASSWORD, "acme");

    let project = Project::with_feature();
    for (wp, lane) in [
        ("WP01", "planned"),
        ("WP02", "blocked"),
        ("WP03", "in_progress"),
    ] {
        project.write_wp(
            FEATURE,
            &format!("{wp}-e2e.md"),
            &wp_text(wp, &format!("End to end {wp}"), lane),
        );
    }

    let login = password_login(&mut project.cmd(), server.url(), "alice", PASSWORD, &[]);
    assert_eq!(code(&login), 0, "log-in: {}", describe(&login));

    project.move_ok("WP01", "claimed", &[]);
    project.move_ok("WP02", "canceled", &[]);
    project.move_ok("WP03", "for_review", &[]);
    let queued = project.events();
    assert_eq!(queued.len(), 3);
    // The first move published the feature too (FeatureCreated, three
    // WPCreated, first lane changes for WP02 and WP03).
    let all = project.all_events();
    assert_eq!(all.len(), 3 + 1 + 3 + 2, "{all:#?}");
    assert!(all.iter().all(|e| e["team_slug"] == "acme"));

    let sync = project.run(&["sync", "now"]);
    assert_eq!(code(&sync), 0, "sync now: {}", describe(&sync));
    assert!(
        project.events().is_empty(),
        "delivered events leave the queue"
    );

    let db = Connection::open_with_flags(
        server.dir.path().join("data").join("spec-kitty.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the server's database read-only");
    let mut stmt = db
        .prepare("SELECT event_id, lane, body FROM events ORDER BY seq")
        .expect("query server events");
    let stored: Vec<(String, Option<String>, Value)> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .expect("read server events")
        .map(|row| {
            let (id, lane, body) = row.expect("row");
            (id, lane, serde_json::from_str(&body).expect("body JSON"))
        })
        .collect();
    assert_eq!(stored.len(), all.len(), "{stored:#?}");

    for (wp, lane) in [("WP01", "doing"), ("WP02", "done"), ("WP03", "for_review")] {
        let sent = queued
            .iter()
            .find(|e| e["payload"]["wp_id"] == wp)
            .unwrap_or_else(|| panic!("queued event for {wp}"));
        let (_, stored_lane, body) = stored
            .iter()
            .find(|(id, _, _)| Some(id.as_str()) == sent["event_id"].as_str())
            .unwrap_or_else(|| panic!("the server has {wp}'s event"));
        assert_eq!(stored_lane.as_deref(), Some(lane), "{wp} lane column");
        assert_eq!(body["payload"]["to_lane"], lane, "{wp} payload");
        assert_eq!(body["payload"]["wp_id"], wp);
        assert_eq!(body["aggregate_id"], format!("{FEATURE}/{wp}"));
        assert_eq!(body["project_uuid"], sent["project_uuid"]);
        assert_eq!(body["lamport_clock"], sent["lamport_clock"]);
    }
}
