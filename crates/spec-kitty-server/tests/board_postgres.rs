//! The board with two server instances on one PostgreSQL database (contract
//! section 8): a change ingested by either instance reaches watchers of both,
//! the feed stays exact while both ingest, and both serve one board.
//!
//! These tests need `SPEC_KITTY_TEST_DATABASE_URL`; without it they say so
//! and return.

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{PASSWORD, agent, get, login_ok, new_project, post_batch, sse_connect, wp_status};
use serde_json::Value;
use spec_kitty_server::{BackgroundServer, ServerConfig, admin};

struct Pair {
    a: BackgroundServer,
    b: BackgroundServer,
    token: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _db: common::SharedPostgres,
}

fn pair() -> Option<Pair> {
    let Some(db) = common::shared_postgres() else {
        eprintln!(
            "skipped: set {} to run the PostgreSQL tests",
            common::PG_ENV
        );
        return None;
    };
    let start = |dir: &tempfile::TempDir| {
        let mut config = ServerConfig::for_data_dir(dir.path());
        config.storage.database_url = db.url.clone();
        BackgroundServer::start(&config).expect("instance starts")
    };
    let (da, dbb) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start(&da);
    let b = start(&dbb);
    a.block_on(admin::add_team(&a.store, "acme")).expect("team");
    a.block_on(admin::add_user(&a.store, "alice", PASSWORD, "acme"))
        .expect("user");
    let (token, _) = login_ok(&agent(), &a.url, "alice", PASSWORD);
    Some(Pair {
        a,
        b,
        token,
        _dirs: (da, dbb),
        _db: db,
    })
}

fn post_ok(server: &BackgroundServer, token: &str, events: &[Value]) {
    let reply = post_batch(&agent(), &server.url, token, events);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.statuses().iter().all(|s| s == "success"),
        "{}",
        reply.text
    );
}

fn board(server: &BackgroundServer, token: &str, project: &str) -> Value {
    let reply = get(
        &agent(),
        &format!("{}/api/v1/projects/{project}/board/", server.url),
        Some(token),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

#[test]
fn a_watcher_on_one_instance_gets_changes_ingested_through_the_other() {
    let Some(p) = pair() else { return };
    let project = new_project();
    post_ok(
        &p.a,
        &p.token,
        &[wp_status(&project, None, "WP01", "planned", 1, "n1")],
    );
    let path = format!("/api/v1/projects/{project}/stream/");
    let mut on_a = sse_connect(&common::host_port(&p.a.url), &path, &p.token, &[]);
    let mut on_b = sse_connect(&common::host_port(&p.b.url), &path, &p.token, &[]);

    post_ok(
        &p.b,
        &p.token,
        &[wp_status(&project, Some("001-x"), "WP02", "doing", 1, "n1")],
    );
    for (name, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        let message = stream.expect_message();
        assert_eq!(message.event.as_deref(), Some("wp"), "{name}: {message:?}");
        let card = message.json();
        assert_eq!(card["wp_id"], "WP02", "{name}: {card}");
        assert_eq!(card["feature_slug"], "001-x");
        assert_eq!(card["lane"], "doing");
    }
    // And the other way round.
    post_ok(
        &p.a,
        &p.token,
        &[wp_status(&project, Some("001-x"), "WP03", "done", 1, "n1")],
    );
    for (name, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        let card = stream.expect_message().json();
        assert_eq!(card["wp_id"], "WP03", "{name}: {card}");
    }
}

#[test]
fn four_senders_on_two_instances_and_a_concurrent_reader_see_every_event_once() {
    let Some(p) = pair() else { return };
    let project = new_project();
    const SENDERS: usize = 4;
    const BATCHES: usize = 15;
    const PER_BATCH: usize = 20;
    let done = AtomicUsize::new(0);
    let servers = [&p.a, &p.b];
    let (sent, seen) = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let (token, project, done) = (&p.token, &project, &done);
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for b in 0..BATCHES {
                        let events: Vec<Value> = (0..PER_BATCH)
                            .map(|i| {
                                let wp = format!("WP{:02}", 10 + (s * 11 + b + i) % 30);
                                wp_status(
                                    project,
                                    Some("001-x"),
                                    &wp,
                                    "doing",
                                    (b * PER_BATCH + i) as i64,
                                    &format!("sender-{s}"),
                                )
                            })
                            .collect();
                        // Alternate instances within and across senders.
                        post_ok(servers[(s + b) % 2], token, &events);
                        ids.extend(
                            events
                                .iter()
                                .map(|e| e["event_id"].as_str().expect("id").to_string()),
                        );
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    ids
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let agent = agent();
            let mut cursor: Option<String> = None;
            let mut seen: Vec<String> = Vec::new();
            let mut page = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst) == SENDERS;
                let base = &servers[page % 2].url;
                page += 1;
                let url = match &cursor {
                    Some(c) => {
                        format!("{base}/api/v1/projects/{project}/events/?after={c}&limit=3")
                    }
                    None => format!("{base}/api/v1/projects/{project}/events/?limit=3"),
                };
                let reply = get(&agent, &url, Some(&p.token));
                if reply.status == 404 && cursor.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue; // not created yet
                }
                assert_eq!(reply.status, 200, "{}", reply.text);
                let body = reply.json();
                let events = body["events"].as_array().expect("events").clone();
                if events.is_empty() {
                    if finished {
                        return seen;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                seen.extend(
                    events
                        .iter()
                        .map(|e| e["event_id"].as_str().expect("id").to_string()),
                );
                cursor = Some(body["next"].as_str().expect("next").to_string());
            }
        });
        let sent: Vec<Vec<String>> = senders
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect();
        (sent, reader.join().expect("reader"))
    });
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event handed out twice");
    let all: HashSet<&String> = sent.iter().flatten().collect();
    assert_eq!(all.len(), SENDERS * BATCHES * PER_BATCH);
    let missing = all.difference(&unique).count();
    assert_eq!(missing, 0, "no event skipped ({missing} missing)");
    assert_eq!(unique, all);
    for ids in &sent {
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| seen.iter().position(|s| s == id).expect("seen"))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "each sender's events in the order it stored them"
        );
    }

    // Both instances serve one board, equal to one rebuilt from the log.
    let from_a = board(&p.a, &p.token, &project);
    assert_eq!(from_a, board(&p.b, &p.token, &project));
    let report =
        p.a.block_on(p.a.store.rebuild_board(None, true))
            .expect("rebuild check");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_eq!(report.events, (SENDERS * BATCHES * PER_BATCH) as u64);
}
