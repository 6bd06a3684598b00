//! The board's live stream (contract section 8), read over a plain TCP
//! connection: `wp` messages with resumable ids, `Last-Event-ID`, the
//! keep-alive comment, slow and stalled watchers, and `reload`.
//! Runs on SQLite, and on PostgreSQL with `SPEC_KITTY_TEST_BACKEND=postgres`.

use crate::common;

use std::collections::HashSet;

use common::{
    SseClient, SseMessage, TestServer, new_project, sse_connect, sse_open, wp_created, wp_status,
};
use serde_json::{Value, json};

fn acme() -> (TestServer, String) {
    let t = TestServer::start();
    t.add_team("acme");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    (t, alice)
}

/// A project with one work package on its board, so it exists.
fn project(t: &TestServer, token: &str) -> String {
    let p = new_project();
    t.post_ok(
        token,
        &[wp_status(
            &p,
            Some("000-seed"),
            "WP01",
            "planned",
            1,
            "seed",
        )],
    );
    p
}

fn stream_path(project: &str) -> String {
    format!("/api/v1/projects/{project}/stream/")
}

/// The stream of `project`: live from now, or resumed after
/// `last_event_id`.
fn watch(t: &TestServer, token: &str, project: &str, last_event_id: Option<&str>) -> SseClient {
    match last_event_id {
        Some(id) => sse_connect(
            &t.addr(),
            &stream_path(project),
            token,
            &[("Last-Event-ID", id)],
        ),
        None => sse_connect(&t.addr(), &stream_path(project), token, &[]),
    }
}

/// The board's cursor now.
fn board_cursor(t: &TestServer, token: &str, project: &str) -> String {
    t.board(token, project)["cursor"]
        .as_str()
        .expect("cursor")
        .to_string()
}

/// The number inside a `c1.N` id (the tests read it only to check order).
fn seq_of(id: &str) -> u64 {
    id.strip_prefix("c1.")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an id like c1.N: {id}"))
}

/// A `wp` message: its id and card.
fn wp(message: &SseMessage) -> (String, Value) {
    assert_eq!(message.event.as_deref(), Some("wp"), "{message:?}");
    let id = message.id.clone().expect("a wp message has an id");
    seq_of(&id);
    (id, message.json())
}

/// The card of `feature/wp_id` on the board, with its `feature_slug`, as
/// the stream must send it.
fn board_card(t: &TestServer, token: &str, project: &str, feature: Value, wp_id: &str) -> Value {
    let board = t.board(token, project);
    let mut card = board["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["feature_slug"] == feature)
        .and_then(|f| {
            f["work_packages"]
                .as_array()
                .expect("cards")
                .iter()
                .find(|c| c["wp_id"] == wp_id)
                .cloned()
        })
        .unwrap_or_else(|| panic!("{feature}/{wp_id} on the board: {board}"));
    card["feature_slug"] = feature;
    card
}

#[test]
fn a_change_posted_after_connecting_arrives_as_a_wp_message() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let other = project(&t, &alice);
    let mut stream = watch(&t, &alice, &p, None);

    let moved = wp_status(&p, Some("001-x"), "WP07", "blocked", 10, "n1");
    t.post_ok(&alice, std::slice::from_ref(&moved));
    let (first_id, data) = wp(&stream.expect_message());
    assert_eq!(
        data,
        board_card(&t, &alice, &p, json!("001-x"), "WP07"),
        "the card as on the board, plus feature_slug"
    );
    assert_eq!(data["lane"], "doing");
    assert_eq!(data["raw_lane"], "blocked");
    assert_eq!(data["last_event_id"], moved["event_id"]);
    assert_eq!(data["actor"], moved["payload"]["actor"]);

    // A losing event changes no card, another project's change is not
    // this stream's: the next message is the next change of this board.
    t.post_ok(
        &alice,
        &[wp_status(&p, Some("001-x"), "WP07", "done", 9, "n1")],
    );
    t.post_ok(
        &alice,
        &[wp_status(&other, Some("001-x"), "WP07", "done", 99, "n1")],
    );
    t.post_ok(
        &alice,
        &[wp_created(&p, None, "WP08", "Nameless", &["WP07"], 1, "n1")],
    );
    let (second_id, data) = wp(&stream.expect_message());
    assert_eq!(data, board_card(&t, &alice, &p, Value::Null, "WP08"));
    assert!(data["feature_slug"].is_null(), "{data}");
    assert_eq!(data["lane"], "planned");
    assert_eq!(data["title"], "Nameless");
    assert_eq!(data["dependencies"], json!(["WP07"]));
    assert!(seq_of(&second_id) > seq_of(&first_id), "ids grow");

    // A batch touching two cards: one message per card.
    t.post_ok(
        &alice,
        &[
            wp_status(&p, Some("001-x"), "WP07", "for_review", 11, "n1"),
            wp_status(&p, Some("001-x"), "WP07", "done", 12, "n1"),
            wp_status(&p, Some("002-y"), "WP01", "approved", 1, "n1"),
        ],
    );
    let messages = stream.messages(2);
    let cards: Vec<Value> = messages.iter().map(|m| wp(m).1).collect();
    let mut ids: Vec<(Value, Value)> = cards
        .iter()
        .map(|c| (c["feature_slug"].clone(), c["wp_id"].clone()))
        .collect();
    ids.sort_by_key(|(f, w)| format!("{f}{w}"));
    assert_eq!(
        ids,
        vec![
            (json!("001-x"), json!("WP07")),
            (json!("002-y"), json!("WP01")),
        ]
    );
    for card in &cards {
        let feature = card["feature_slug"].clone();
        let wp_id = card["wp_id"].as_str().expect("wp_id");
        assert_eq!(card, &board_card(&t, &alice, &p, feature, wp_id));
    }
    assert!(
        seq_of(messages[0].id.as_deref().unwrap_or_default())
            < seq_of(messages[1].id.as_deref().unwrap_or_default()),
        "ids grow within a batch too"
    );
}

/// Reads `n` wp messages and returns (id, feature/wp, card) for each.
fn read_cards(stream: &mut SseClient, n: usize) -> Vec<(String, String, Value)> {
    stream
        .messages(n)
        .iter()
        .map(|m| {
            let (id, card) = wp(m);
            let name = format!(
                "{}/{}",
                card["feature_slug"].as_str().unwrap_or("-"),
                card["wp_id"].as_str().unwrap_or_default()
            );
            (id, name, card)
        })
        .collect()
}

#[test]
fn reconnecting_with_last_event_id_first_gets_every_change_after_it() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let f = Some("001-x");
    let mut stream = watch(&t, &alice, &p, None);
    for wp_id in ["WP02", "WP03", "WP04"] {
        t.post_ok(&alice, &[wp_status(&p, f, wp_id, "doing", 1, "n1")]);
    }
    let seen = read_cards(&mut stream, 3);
    let names: Vec<&str> = seen.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["001-x/WP02", "001-x/WP03", "001-x/WP04"]);
    drop(stream);

    // While nobody watches: WP05 appears, WP03 moves on.
    t.post_ok(&alice, &[wp_status(&p, f, "WP05", "doing", 1, "n1")]);
    t.post_ok(&alice, &[wp_status(&p, f, "WP03", "done", 2, "n1")]);

    let first = seen[0].0.clone();
    for (header, query) in [(true, ""), (false, "?after=")] {
        let mut stream = if header {
            watch(&t, &alice, &p, Some(&first))
        } else {
            sse_connect(
                &t.addr(),
                &format!("{}{query}{first}", stream_path(&p)),
                &alice,
                &[],
            )
        };
        // The second time round, WP06 (posted live the first time) too.
        let mut want = HashSet::from(["001-x/WP03", "001-x/WP04", "001-x/WP05"]);
        if !header {
            want.insert("001-x/WP06");
        }
        let caught_up = read_cards(&mut stream, want.len());
        let names: HashSet<&str> = caught_up.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(
            names, want,
            "every card changed after {first}, each once (header {header})"
        );
        let seqs: Vec<u64> = caught_up.iter().map(|(id, _, _)| seq_of(id)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert!(seqs[0] > seq_of(&first));
        let wp03 = &caught_up
            .iter()
            .find(|(_, n, _)| n == "001-x/WP03")
            .expect("WP03")
            .2;
        assert_eq!(wp03["lane"], "done", "the card as it is now");
        // Then it goes on live.
        let wp_id = if header { "WP06" } else { "WP07" };
        t.post_ok(&alice, &[wp_status(&p, f, wp_id, "done", 1, "n1")]);
        let live = read_cards(&mut stream, 1);
        assert_eq!(live[0].1, format!("001-x/{wp_id}"));
    }

    // The board's cursor resumes the stream right after what the board shows.
    let cursor = board_cursor(&t, &alice, &p);
    t.post_ok(&alice, &[wp_status(&p, f, "WP08", "doing", 1, "n1")]);
    let mut stream = watch(&t, &alice, &p, Some(&cursor));
    let next = read_cards(&mut stream, 1);
    assert_eq!(next[0].1, "001-x/WP08", "only what came after the board");
    // And a cursor from the stream is as good as the board's.
    t.post_ok(&alice, &[wp_status(&p, f, "WP09", "doing", 1, "n1")]);
    drop(stream);
    let mut stream = watch(&t, &alice, &p, Some(&next[0].0));
    assert_eq!(read_cards(&mut stream, 1)[0].1, "001-x/WP09");
}

/// Watchers of one project share one reader of its changes; a watcher
/// that resumed from an older cursor must still get what came before, and
/// none may get a change twice or miss one.
#[test]
fn watchers_at_different_cursors_each_get_every_change_once() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let f = Some("001-x");
    let old = board_cursor(&t, &alice, &p);
    for wp_id in ["WP02", "WP03"] {
        t.post_ok(&alice, &[wp_status(&p, f, wp_id, "doing", 1, "n1")]);
    }
    let mut live: Vec<SseClient> = (0..3).map(|_| watch(&t, &alice, &p, None)).collect();
    let mut resumed = watch(&t, &alice, &p, Some(&old));
    let names = |cards: Vec<(String, String, Value)>| -> Vec<String> {
        cards.into_iter().map(|(_, n, _)| n).collect()
    };
    assert_eq!(
        names(read_cards(&mut resumed, 2)),
        ["001-x/WP02", "001-x/WP03"]
    );
    t.post_ok(&alice, &[wp_status(&p, f, "WP04", "doing", 1, "n1")]);
    t.post_ok(
        &alice,
        &[
            wp_status(&p, f, "WP05", "doing", 1, "n1"),
            wp_status(&p, f, "WP02", "done", 2, "n1"),
        ],
    );
    t.post_ok(&alice, &[wp_status(&p, f, "WP06", "for_review", 1, "n1")]);
    let want = ["001-x/WP04", "001-x/WP05", "001-x/WP02", "001-x/WP06"];
    for stream in live.iter_mut().chain(std::iter::once(&mut resumed)) {
        let cards = read_cards(stream, 4);
        let seqs: Vec<u64> = cards.iter().map(|(id, _, _)| seq_of(id)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert_eq!(names(cards), want, "each change once, in order");
    }
}

#[test]
fn a_bad_last_event_id_or_after_is_400_and_a_foreign_stream_404() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_team("beta");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    let (bob, _) = t.user_with_tokens("bob", "beta");
    let p = project(&t, &alice);
    let open = sse_open(
        &t.addr(),
        &stream_path(&p),
        Some(&alice),
        &[("Last-Event-ID", "garbage")],
    );
    assert_eq!(open.status, 400);
    let body = open.error_body();
    assert!(
        body["details"]
            .as_str()
            .is_some_and(|d| d.contains("Last-Event-ID")),
        "{body}"
    );
    let open = sse_open(
        &t.addr(),
        &format!("{}?after=42", stream_path(&p)),
        Some(&alice),
        &[],
    );
    assert_eq!(open.status, 400);
    let body = open.error_body();
    assert!(
        body["details"]
            .as_str()
            .is_some_and(|d| d.contains("after")),
        "{body}"
    );
    assert_eq!(
        sse_open(&t.addr(), &stream_path(&p), Some(&bob), &[]).status,
        404
    );
    assert_eq!(sse_open(&t.addr(), &stream_path(&p), None, &[]).status, 401);
}

#[test]
fn an_idle_stream_gets_a_keep_alive_comment() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let mut stream = watch(&t, &alice, &p, None);
    // Nothing changes: the first line to come is a comment (the server
    // sends one every 10 s; the read gives up after 40 s).
    loop {
        let line = stream.line().expect("the stream stays open");
        if line.starts_with(':') {
            break;
        }
        assert!(
            line.is_empty() || line.starts_with("retry:"),
            "nothing but a comment on an idle stream, found {line:?}"
        );
    }
    // The stream still works after it.
    t.post_ok(&alice, &[wp_status(&p, None, "WP02", "doing", 1, "n1")]);
    let (_, card) = wp(&stream.expect_message());
    assert_eq!(card["wp_id"], "WP02");
}

/// `WPCreated` events for `count` distinct work packages from `first`, with
/// long titles so that an unread connection fills its buffers.
fn many_cards(project: &str, first: usize, count: usize, title_len: usize) -> Vec<Value> {
    (first..first + count)
        .map(|i| {
            let title = format!("{i:05} {}", "x".repeat(title_len));
            wp_created(
                project,
                Some("001-bulk"),
                &format!("WP{i:04}"),
                &title,
                &[],
                1,
                "n1",
            )
        })
        .collect()
}

#[test]
fn a_watcher_that_never_reads_blocks_neither_ingest_nor_other_watchers() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    // Opened and answered, then never read again.
    let stalled = sse_open(&t.addr(), &stream_path(&p), Some(&alice), &[]).expect_stream();
    let mut reader = watch(&t, &alice, &p, None);

    const BATCHES: usize = 30;
    const PER_BATCH: usize = 100;
    for b in 0..BATCHES {
        // ~5 KB per card: 3000 cards are far more than socket buffers hold.
        let events = many_cards(&p, b * PER_BATCH + 1, PER_BATCH, 5000);
        t.post_ok(&alice, &events);
        let got = read_cards(&mut reader, PER_BATCH);
        let names: Vec<String> = got.iter().map(|(_, n, _)| n.clone()).collect();
        let want: Vec<String> = (b * PER_BATCH + 1..(b + 1) * PER_BATCH + 1)
            .map(|i| format!("001-bulk/WP{i:04}"))
            .collect();
        assert_eq!(
            names, want,
            "batch {b}: the reading watcher gets every change"
        );
    }
    // Ingest went on, and the board holds every card (the project list
    // says so; the board itself is a large document by now).
    let reply = t.get("/api/v1/projects/", Some(&alice));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let list = reply.json();
    let summary = list["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|s| s["project_uuid"] == p.as_str())
        .expect("the project is listed");
    assert_eq!(summary["counts"]["planned"], BATCHES * PER_BATCH + 1);

    // The stalled watcher, read at last, starts where it was and skips
    // nothing: its cards in order, until it either has them all or says
    // "reload" because it fell too far behind.
    let mut stalled = stalled;
    let mut expected = 1;
    loop {
        let message = stalled.expect_message();
        if message.event.as_deref() == Some("reload") {
            break;
        }
        let (_, card) = wp(&message);
        assert_eq!(card["wp_id"], format!("WP{expected:04}"), "no card skipped");
        expected += 1;
        if expected > BATCHES * PER_BATCH {
            break;
        }
    }
}

#[test]
fn a_watcher_more_than_500_changes_behind_gets_reload() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let before = board_cursor(&t, &alice, &p);
    let mut live = watch(&t, &alice, &p, None);
    t.post_ok(&alice, &many_cards(&p, 1, 501, 10));
    let reload = live.expect_message();
    assert_eq!(reload.event.as_deref(), Some("reload"), "{reload:?}");
    let reload_id = reload.id.clone().expect("a reload carries the cursor");
    assert!(seq_of(&reload_id) > seq_of(&before));

    // The stream goes on after a reload.
    t.post_ok(&alice, &[wp_status(&p, None, "WP02", "done", 1, "n1")]);
    let (_, card) = wp(&live.expect_message());
    assert_eq!(card["wp_id"], "WP02");
    drop(live);

    // Resuming from the reload's cursor gets only what came after it.
    let mut resumed = watch(&t, &alice, &p, Some(&reload_id));
    let (_, card) = wp(&resumed.expect_message());
    assert_eq!(card["wp_id"], "WP02", "{card}");
    drop(resumed);

    // Resuming from a cursor more than 500 changes back: reload first.
    let mut behind = watch(&t, &alice, &p, Some(&before));
    let message = behind.expect_message();
    assert_eq!(message.event.as_deref(), Some("reload"), "{message:?}");
}

#[test]
fn exactly_500_changes_behind_are_sent_one_by_one() {
    let (t, alice) = acme();
    let p = project(&t, &alice);
    let before = board_cursor(&t, &alice, &p);
    let mut live = watch(&t, &alice, &p, None);
    t.post_ok(&alice, &many_cards(&p, 1, 500, 10));
    let expect_all = |stream: &mut SseClient| {
        let got = read_cards(stream, 500);
        let names: Vec<String> = got.iter().map(|(_, n, _)| n.clone()).collect();
        let want: Vec<String> = (1..=500).map(|i| format!("001-bulk/WP{i:04}")).collect();
        assert_eq!(names, want);
        let seqs: Vec<u64> = got.iter().map(|(id, _, _)| seq_of(id)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids grow");
    };
    expect_all(&mut live);
    drop(live);
    let mut resumed = watch(&t, &alice, &p, Some(&before));
    expect_all(&mut resumed);
}
