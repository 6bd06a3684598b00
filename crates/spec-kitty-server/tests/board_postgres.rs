//! The board with two server instances on one PostgreSQL database (contract
//! section 8): a change ingested by either instance reaches watchers of both,
//! the feed stays exact while both ingest, and both serve one board.
//!
//! These tests need `SPEC_KITTY_TEST_DATABASE_URL`; without it they say so
//! and return.

use crate::common;

use std::collections::HashSet;

use common::{PASSWORD, agent, get, login_ok, new_project, post_batch, sse_connect, wp_status};
use serde_json::Value;
use spec_kitty_server::BackgroundServer;

/// Two instances on one database, and alice's access token.
fn pair() -> Option<(common::PgPair, String)> {
    let p = common::pg_pair(|_| {})?;
    let (token, _) = login_ok(&agent(), &p.a.url, "alice", PASSWORD);
    Some((p, token))
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
    let Some((p, token)) = pair() else {
        return;
    };
    let project = new_project();
    post_ok(
        &p.a,
        &token,
        &[wp_status(&project, None, "WP01", "planned", 1, "n1")],
    );
    let path = format!("/api/v1/projects/{project}/stream/");
    let mut on_a = sse_connect(&common::host_port(&p.a.url), &path, &token, &[]);
    let mut on_b = sse_connect(&common::host_port(&p.b.url), &path, &token, &[]);

    post_ok(
        &p.b,
        &token,
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
        &token,
        &[wp_status(&project, Some("001-x"), "WP03", "done", 1, "n1")],
    );
    for (name, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        let card = stream.expect_message().json();
        assert_eq!(card["wp_id"], "WP03", "{name}: {card}");
    }
}

#[test]
fn four_senders_on_two_instances_and_a_concurrent_reader_see_every_event_once() {
    let Some((p, token)) = pair() else {
        return;
    };
    let project = new_project();
    const SENDERS: usize = 4;
    const BATCHES: usize = 15;
    const PER_BATCH: usize = 20;
    let servers = [&p.a, &p.b];
    let (sent, seen) = common::feed_race(
        SENDERS,
        BATCHES,
        3,
        |s, b| {
            let events: Vec<Value> = (0..PER_BATCH)
                .map(|i| {
                    let wp = format!("WP{:02}", 10 + (s * 11 + b + i) % 30);
                    wp_status(
                        &project,
                        Some("001-x"),
                        &wp,
                        "doing",
                        (b * PER_BATCH + i) as i64,
                        &format!("sender-{s}"),
                    )
                })
                .collect();
            // Alternate instances within and across senders.
            post_ok(servers[(s + b) % 2], &token, &events);
            events
        },
        |page, query| {
            let base = &servers[page % 2].url;
            get(
                &agent(),
                &format!("{base}/api/v1/projects/{project}/events/{query}"),
                Some(&token),
            )
        },
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event handed out twice");
    let all: HashSet<&String> = sent.iter().flatten().collect();
    assert_eq!(all.len(), SENDERS * BATCHES * PER_BATCH);
    let missing = all.difference(&unique).count();
    assert_eq!(missing, 0, "no event skipped ({missing} missing)");
    assert_eq!(unique, all);
    common::assert_each_sender_in_order(
        &sent,
        &seen,
        "each sender's events in the order it stored them",
    );

    // Both instances serve one board, equal to one rebuilt from the log.
    let from_a = board(&p.a, &token, &project);
    assert_eq!(from_a, board(&p.b, &token, &project));
    let report =
        p.a.block_on(p.a.store.rebuild_board(None, true))
            .expect("rebuild check");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_eq!(report.events, (SENDERS * BATCHES * PER_BATCH) as u64);
}
