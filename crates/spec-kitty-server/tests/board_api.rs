//! The team board's read API (contract section 8), black-box through HTTP:
//! scoping, the board document, the winner rule and its convergence, the
//! `WPCreated`/`FeatureCreated` payload checks, the event feed, and rebuild.
//! Runs on SQLite, and on PostgreSQL with `SPEC_KITTY_TEST_BACKEND=postgres`.

use crate::common;

use std::collections::{BTreeMap, HashSet};

use common::{
    TestServer, assert_each_sender_in_order, board_event, feature_created, feed_race, ids_of,
    new_project, sse_open, wp_created, wp_status,
};
use serde_json::{Value, json};

fn two_teams() -> (TestServer, String, String) {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_team("beta");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    let (bob, _) = t.user_with_tokens("bob", "beta");
    (t, alice, bob)
}

fn acme() -> (TestServer, String) {
    let t = TestServer::start();
    t.add_team("acme");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    (t, alice)
}

/// The three read paths of one project.
fn read_paths(project: &str) -> [String; 3] {
    [
        format!("/api/v1/projects/{project}/board/"),
        format!("/api/v1/projects/{project}/events/"),
        format!("/api/v1/projects/{project}/stream/"),
    ]
}

/// Status and JSON body of a GET; the stream is read only up to its head,
/// so a stream that wrongly answers 200 cannot hang the test.
fn get_status(t: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    if path.ends_with("/stream/") {
        let open = sse_open(&t.addr(), path, token, &[]);
        if open.status == 200 {
            return (200, Value::Null);
        }
        let status = open.status;
        return (status, open.error_body());
    }
    let reply = t.get(path, token);
    let body = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
    (reply.status, body)
}

fn assert_400_naming(t: &TestServer, path: &str, token: &str, name: &str) {
    let (status, body) = get_status(t, path, Some(token));
    assert_eq!(status, 400, "{path}: {body}");
    assert!(body["error"].is_string(), "{path}: error present: {body}");
    let details = body["details"].as_str().unwrap_or_default();
    assert!(
        details.contains(name),
        "{path}: details name {name}: {body}"
    );
}

// ---------------------------------------------------------------------------
// 1. Scoping

#[test]
fn another_teams_project_is_404_never_403_and_looks_like_a_missing_one() {
    let (t, alice, bob) = two_teams();
    let acme_project = new_project();
    t.post_ok(
        &alice,
        &[wp_status(
            &acme_project,
            Some("001-a"),
            "WP01",
            "doing",
            1,
            "n1",
        )],
    );
    let bobs_project = new_project();
    t.post_ok(
        &bob,
        &[wp_status(
            &bobs_project,
            Some("001-b"),
            "WP01",
            "done",
            1,
            "n2",
        )],
    );
    let missing = new_project();

    for (foreign, absent) in read_paths(&acme_project).iter().zip(read_paths(&missing)) {
        let (status, foreign_body) = get_status(&t, foreign, Some(&bob));
        assert_eq!(status, 404, "bob reads {foreign}: {foreign_body}");
        let (status, absent_body) = get_status(&t, &absent, Some(&bob));
        assert_eq!(status, 404, "bob reads {absent}: {absent_body}");
        // Existence is not leaked: the two answers differ only by the uuid.
        assert_eq!(
            foreign_body.to_string().replace(&acme_project, "UUID"),
            absent_body.to_string().replace(&missing, "UUID"),
            "another team's project answers like a missing one"
        );
        let (status, body) = get_status(&t, &absent, Some(&alice));
        assert_eq!(
            status, 404,
            "alice reads a missing project {absent}: {body}"
        );
    }
    // The owners still read their own projects.
    for path in read_paths(&acme_project) {
        assert_eq!(get_status(&t, &path, Some(&alice)).0, 200, "alice {path}");
    }
    for path in read_paths(&bobs_project) {
        assert_eq!(get_status(&t, &path, Some(&bob)).0, 200, "bob {path}");
        assert_eq!(get_status(&t, &path, Some(&alice)).0, 404, "alice {path}");
    }
}

#[test]
fn a_malformed_project_uuid_is_400_naming_project_uuid() {
    let (t, alice) = acme();
    for bad in ["not-a-uuid", "1234", "0f0e6f5e-9b1a-4c1e-8f3e-zzzzzzzzzzzz"] {
        for path in read_paths(bad) {
            assert_400_naming(&t, &path, &alice, "project_uuid");
        }
    }
}

#[test]
fn the_project_list_holds_only_the_callers_team_with_counts() {
    let (t, alice, bob) = two_teams();
    let (p1, p2, q) = (new_project(), new_project(), new_project());
    t.post_ok(
        &alice,
        &[
            feature_created(&p1, "002-empty", 1),
            wp_status(&p1, Some("001-a"), "WP01", "doing", 1, "n1"),
            wp_created(&p1, Some("001-a"), "WP02", "Second", &[], 1, "n1"),
            wp_status(&p1, None, "WP03", "done", 1, "n1"),
            wp_status(&p1, Some("001-a"), "WP04", "approved", 1, "n1"),
            wp_status(&p1, Some("001-a"), "WP05", "canceled", 1, "n1"),
        ],
    );
    t.post_ok(
        &alice,
        &[board_event(
            &p2,
            "HistoryAdded",
            json!({"note": "x"}),
            1,
            "n1",
        )],
    );
    t.post_ok(
        &bob,
        &[wp_status(&q, Some("001-b"), "WP01", "done", 1, "n2")],
    );

    let list = |token: &str| -> BTreeMap<String, Value> {
        let reply = t.get("/api/v1/projects/", Some(token));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["projects"]
            .as_array()
            .expect("projects list")
            .iter()
            .map(|p| {
                (
                    p["project_uuid"].as_str().expect("uuid").to_string(),
                    p.clone(),
                )
            })
            .collect()
    };
    let alices = list(&alice);
    assert_eq!(
        alices.keys().cloned().collect::<HashSet<_>>(),
        HashSet::from([p1.clone(), p2.clone()]),
        "alice sees acme's projects only"
    );
    let bobs = list(&bob);
    assert_eq!(
        bobs.keys().cloned().collect::<Vec<_>>(),
        vec![q.clone()],
        "bob sees beta's project only"
    );

    let one = &alices[&p1];
    assert_eq!(one["project_slug"], "board-project");
    // 001-a, 002-empty and the "(no feature)" feature.
    assert_eq!(one["features"], 3, "{one}");
    assert_eq!(one["work_packages"], 5, "{one}");
    assert_eq!(
        one["counts"],
        json!({"planned": 1, "doing": 1, "for_review": 1, "done": 2}),
        "{one}"
    );
    let at = one["last_event_at"].as_str().expect("last_event_at is set");
    assert!(
        at.len() >= 19
            && at.as_bytes()[10] == b'T'
            && (at[10..].contains('+') || at.ends_with('Z')),
        "a timestamp with an offset: {at}"
    );
    let board = t.board(&alice, &p1);
    assert_eq!(one["counts"], board["counts"], "list and board agree");
    assert_eq!(
        one["features"].as_u64(),
        Some(board["features"].as_array().expect("features").len() as u64)
    );

    let two = &alices[&p2];
    assert_eq!(two["features"], 0, "{two}");
    assert_eq!(two["work_packages"], 0, "{two}");
    assert_eq!(
        two["counts"],
        json!({"planned": 0, "doing": 0, "for_review": 0, "done": 0})
    );
    assert!(two["last_event_at"].is_string(), "{two}");
    assert_eq!(bobs[&q]["work_packages"], 1);
}

#[test]
fn no_token_is_401_and_a_member_removed_from_the_team_is_403() {
    let (t, alice) = acme();
    let project = new_project();
    t.post_ok(
        &alice,
        &[wp_status(&project, None, "WP01", "doing", 1, "n1")],
    );
    let mut paths = read_paths(&project).to_vec();
    paths.push("/api/v1/projects/".to_string());
    for path in &paths {
        assert_eq!(get_status(&t, path, None).0, 401, "no token: {path}");
        assert_eq!(
            get_status(&t, path, Some("not-a-jwt")).0,
            401,
            "garbage token: {path}"
        );
        assert_eq!(get_status(&t, path, Some(&alice)).0, 200, "member: {path}");
    }
    t.server
        .block_on(t.server.store.remove_member("acme", "alice"))
        .expect("alice removed from acme");
    for path in &paths {
        let (status, body) = get_status(&t, path, Some(&alice));
        assert_eq!(status, 403, "removed member: {path}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

// ---------------------------------------------------------------------------
// 2. The board document

fn card<'a>(board: &'a Value, feature: Option<&str>, wp: &str) -> &'a Value {
    let feature_json = feature.map_or(Value::Null, |f| json!(f));
    board["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["feature_slug"] == feature_json)
        .unwrap_or_else(|| panic!("feature {feature:?} on the board: {board}"))["work_packages"]
        .as_array()
        .expect("work packages")
        .iter()
        .find(|c| c["wp_id"] == wp)
        .unwrap_or_else(|| panic!("{feature:?}/{wp} on the board: {board}"))
}

fn with_timestamp(mut event: Value, ts: &str) -> Value {
    event["timestamp"] = json!(ts);
    event
}

#[test]
fn the_board_document_has_features_by_slug_cards_by_id_and_lanes() {
    let (t, alice) = acme();
    let p = new_project();
    let f = Some("039-x");
    let older = with_timestamp(
        wp_status(&p, f, "WP01", "doing", 5, "n1"),
        "2026-01-01T08:00:00+00:00",
    );
    let newer_but_losing = with_timestamp(
        wp_status(&p, f, "WP01", "done", 4, "n1"),
        "2026-06-01T08:00:00+00:00",
    );
    let mut no_slug = wp_status(&p, None, "WP02", "for_review", 1, "n1");
    no_slug["payload"]
        .as_object_mut()
        .expect("payload")
        .remove("feature_slug");
    let created_only = wp_created(&p, f, "WP04", "Write the docs", &["WP01", "WP02"], 1, "n1");
    let created_too = wp_created(&p, f, "WP03", "Lanes", &[], 1, "n1");
    let events = vec![
        with_timestamp(
            wp_status(&p, Some("100-z"), "WP01", "planned", 1, "n1"),
            "2026-02-01T00:00:00+00:00",
        ),
        wp_status(&p, f, "WP10", "claimed", 1, "n1"),
        wp_status(&p, f, "WP03", "blocked", 1, "n1"),
        created_only.clone(),
        created_too.clone(),
        wp_status(&p, f, "WP05", "approved", 1, "n1"),
        wp_status(&p, f, "WP06", "canceled", 1, "n1"),
        wp_status(&p, f, "WP07", "in_progress", 1, "n1"),
        wp_status(&p, f, "WP08", "for_review", 1, "n1"),
        wp_status(&p, f, "WP09", "done", 1, "n1"),
        older.clone(),
        newer_but_losing,
        wp_status(&p, Some("007-y"), "WP01", "doing", 1, "n1"),
        wp_status(&p, None, "WP01", "done", 1, "n1"),
        no_slug.clone(),
        wp_status(&p, Some("010-a"), "WP01", "planned", 1, "n1"),
        feature_created(&p, "002-empty", 1),
        board_event(&p, "HistoryAdded", json!({"wp_id": "WP01"}), 9, "n1"),
    ];
    t.post_ok(&alice, &events);
    let board = t.board(&alice, &p);

    assert_eq!(board["project_uuid"], p.as_str());
    assert_eq!(board["project_slug"], "board-project");
    assert!(
        board["cursor"].as_str().is_some_and(|c| !c.is_empty()),
        "{board}"
    );

    // Features: the named ones by slug (bytewise), the null one once.
    let slugs: Vec<Value> = board["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["feature_slug"].clone())
        .collect();
    let named: Vec<&str> = slugs.iter().filter_map(Value::as_str).collect();
    assert_eq!(
        named,
        ["002-empty", "007-y", "010-a", "039-x", "100-z"],
        "features by slug: {slugs:?}"
    );
    assert_eq!(
        slugs.iter().filter(|s| s.is_null()).count(),
        1,
        "null and absent feature_slug are one feature: {slugs:?}"
    );
    let empty = &board["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["feature_slug"] == "002-empty")
        .expect("FeatureCreated feature")["work_packages"];
    assert_eq!(empty, &json!([]), "a feature with no work packages yet");

    // Work packages by wp_id.
    for feature in board["features"].as_array().expect("features") {
        let ids: Vec<&str> = feature["work_packages"]
            .as_array()
            .expect("work packages")
            .iter()
            .map(|c| c["wp_id"].as_str().expect("wp_id"))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "work packages by wp_id in {feature}");
    }
    let x_ids: Vec<&str> = board["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["feature_slug"] == "039-x")
        .expect("039-x")["work_packages"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| c["wp_id"].as_str().expect("wp_id"))
        .collect();
    assert_eq!(
        x_ids,
        [
            "WP01", "WP03", "WP04", "WP05", "WP06", "WP07", "WP08", "WP09", "WP10"
        ]
    );

    // Lanes: four sync lanes; raw_lane as sent.
    for (wp, lane, raw) in [
        ("WP03", "doing", "blocked"),
        ("WP05", "for_review", "approved"),
        ("WP06", "done", "canceled"),
        ("WP07", "doing", "in_progress"),
        ("WP08", "for_review", "for_review"),
        ("WP09", "done", "done"),
        ("WP10", "doing", "claimed"),
    ] {
        let c = card(&board, f, wp);
        assert_eq!(c["lane"], lane, "{wp}: {c}");
        assert_eq!(c["raw_lane"], raw, "{wp}: {c}");
    }

    // Known only from WPCreated: planned, raw_lane null, title, deps.
    let c = card(&board, f, "WP04");
    assert_eq!(c["lane"], "planned", "{c}");
    assert!(c["raw_lane"].is_null(), "{c}");
    assert!(c["actor"].is_null(), "{c}");
    assert!(c["updated_at"].is_null(), "{c}");
    assert_eq!(c["title"], "Write the docs");
    assert_eq!(c["dependencies"], json!(["WP01", "WP02"]));
    assert_eq!(c["last_event_id"], created_only["event_id"]);

    // Created and moved: the title from WPCreated, the lane from the status.
    let c = card(&board, f, "WP03");
    assert_eq!(c["title"], "Lanes");
    assert_eq!(c["dependencies"], json!([]));

    // The winning status: greatest lamport, not the newest timestamp.
    let c = card(&board, f, "WP01");
    assert_eq!(c["lane"], "doing", "{c}");
    assert_eq!(c["raw_lane"], "doing");
    assert_eq!(c["actor"], older["payload"]["actor"]);
    assert_eq!(c["updated_at"], "2026-01-01T08:00:00+00:00");
    assert_eq!(c["last_event_id"], older["event_id"]);
    assert!(c["title"].is_null(), "{c}");
    assert_eq!(c["dependencies"], json!([]));

    // Same wp_id in other features: separate cards.
    assert_eq!(card(&board, Some("007-y"), "WP01")["lane"], "doing");
    assert_eq!(card(&board, Some("010-a"), "WP01")["lane"], "planned");
    assert_eq!(card(&board, Some("100-z"), "WP01")["lane"], "planned");
    assert_eq!(card(&board, None, "WP01")["lane"], "done");
    let c = card(&board, None, "WP02");
    assert_eq!(c["lane"], "for_review");
    assert_eq!(c["last_event_id"], no_slug["event_id"]);

    // Counts: planned WP04 + 010-a + 100-z; doing WP01 WP03 WP07 WP10 + 007-y;
    // for_review WP05 WP08 + (none)/WP02; done WP06 WP09 + (none)/WP01.
    assert_eq!(
        board["counts"],
        json!({"planned": 3, "doing": 5, "for_review": 3, "done": 3}),
        "{board}"
    );
    let mut counted = BTreeMap::<String, u64>::new();
    for feature in board["features"].as_array().expect("features") {
        for c in feature["work_packages"].as_array().expect("cards") {
            *counted
                .entry(c["lane"].as_str().expect("lane").to_string())
                .or_default() += 1;
        }
    }
    for lane in ["planned", "doing", "for_review", "done"] {
        assert_eq!(
            board["counts"][lane].as_u64(),
            Some(counted.get(lane).copied().unwrap_or(0)),
            "counts match the cards in {lane}"
        );
    }
}

#[test]
fn an_empty_project_board_and_a_board_without_events_of_the_board() {
    let (t, alice) = acme();
    let p = new_project();
    t.post_ok(
        &alice,
        &[board_event(
            &p,
            "ErrorLogged",
            json!({"error": "x"}),
            1,
            "n1",
        )],
    );
    let board = t.board(&alice, &p);
    assert_eq!(board["features"], json!([]), "{board}");
    assert_eq!(
        board["counts"],
        json!({"planned": 0, "doing": 0, "for_review": 0, "done": 0})
    );
}

// ---------------------------------------------------------------------------
// 3. The winner rule and convergence

/// A tiny deterministic generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One event of the convergence set: its kind, where it goes, and its
/// place in the winner rule. `suffix` orders event ids with equal clocks.
struct Spec {
    kind: &'static str,
    feature: Option<&'static str>,
    wp: &'static str,
    /// `to_lane` for a status, the title for a `WPCreated`.
    value: &'static str,
    lamport: i64,
    node: &'static str,
    suffix: &'static str,
}

const fn status(
    feature: Option<&'static str>,
    wp: &'static str,
    lane: &'static str,
    lamport: i64,
    node: &'static str,
    suffix: &'static str,
) -> Spec {
    Spec {
        kind: "WPStatusChanged",
        feature,
        wp,
        value: lane,
        lamport,
        node,
        suffix,
    }
}

const fn created(
    feature: Option<&'static str>,
    wp: &'static str,
    title: &'static str,
    lamport: i64,
    node: &'static str,
    suffix: &'static str,
) -> Spec {
    Spec {
        kind: "WPCreated",
        feature,
        wp,
        value: title,
        lamport,
        node,
        suffix,
    }
}

const A: Option<&str> = Some("001-alpha");
const B: Option<&str> = Some("002-beta");
const MAX: i64 = i64::MAX;

/// Suffixes are 16 Crockford characters; an event id is a per-run prefix
/// of 10 characters and the suffix, so ids compare as their suffixes do.
const SET: &[Spec] = &[
    // Equal lamport, different nodes: node-b > node-a; lamport 4 loses.
    status(A, "WP01", "doing", 5, "node-a", "0000000000000009"),
    status(A, "WP01", "for_review", 5, "node-b", "0000000000000001"),
    status(A, "WP01", "done", 4, "node-z", "000000000000000Z"),
    // Equal lamport and node: the greater event id wins.
    status(A, "WP02", "done", 7, "n1", "0000000000000AAA"),
    status(A, "WP02", "blocked", 7, "n1", "0000000000000AAB"),
    status(A, "WP02", "planned", 7, "n1", "00000000000009ZZ"),
    // Integers as integers: 10 > 9.
    status(A, "WP03", "approved", 10, "a", "0000000000000002"),
    status(A, "WP03", "canceled", 9, "z", "0000000000000003"),
    // Near the top of the range.
    status(A, "WP04", "done", MAX, "m", "0000000000000004"),
    status(A, "WP04", "doing", MAX - 1, "z", "0000000000000005"),
    // Bytewise: "a" (0x61) > "B" (0x42), "é" (0xC3..) > "z".
    status(B, "WP01", "done", 1, "B", "0000000000000006"),
    status(B, "WP01", "in_progress", 1, "a", "0000000000000007"),
    status(None, "WP05", "planned", 2, "z", "0000000000000008"),
    status(None, "WP05", "claimed", 2, "é", "000000000000000A"),
    // Competing WPCreated: equal clocks and nodes, greater id wins.
    created(B, "WP02", "Old title", 3, "x", "0000000000000B00"),
    created(B, "WP02", "New title", 3, "x", "0000000000000B01"),
    created(A, "WP01", "Alpha one", 2, "node-a", "0000000000000C00"),
    created(
        A,
        "WP01",
        "Alpha one (stale)",
        1,
        "node-z",
        "0000000000000C01",
    ),
    // WPCreated and status compete separately.
    created(None, "WP06", "No feature", 50, "k", "0000000000000D00"),
    status(None, "WP06", "done", 1, "k", "0000000000000D01"),
    status(None, "WP06", "doing", 0, "k", "0000000000000D02"),
];

/// The events of [`SET`] for `project`, ids prefixed with `prefix`.
fn convergence_events(project: &str, prefix: &str) -> Vec<Value> {
    let mut events: Vec<Value> = SET
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut event = match spec.kind {
                "WPStatusChanged" => wp_status(
                    project,
                    spec.feature,
                    spec.wp,
                    spec.value,
                    spec.lamport,
                    spec.node,
                ),
                _ => wp_created(
                    project,
                    spec.feature,
                    spec.wp,
                    spec.value,
                    &["WP01"],
                    spec.lamport,
                    spec.node,
                ),
            };
            event["event_id"] = json!(format!("{prefix}{}", spec.suffix));
            // Wall clocks that disagree with the winner rule.
            event["timestamp"] = json!(format!("2026-04-{:02}T12:00:00+00:00", 28 - i));
            event
        })
        .collect();
    events.push({
        let mut e = feature_created(project, "003-gamma", 1);
        e["event_id"] = json!(format!("{prefix}000000000000FEA7"));
        e
    });
    events.push({
        let mut e = board_event(project, "HistoryAdded", json!({"wp_id": "WP01"}), 99, "zz");
        e["event_id"] = json!(format!("{prefix}000000000000E000"));
        e
    });
    events
}

/// A fresh 10-character id prefix (a valid ULID start).
fn prefix(rng: &mut Rng) -> String {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut p = String::from("0");
    for _ in 0..9 {
        p.push(char::from(CROCKFORD[rng.below(CROCKFORD.len())]));
    }
    p
}

/// The board without what differs between runs: the cursor, the uuid,
/// and the id prefix.
fn normalized(board: &Value, project: &str, prefix: &str) -> Value {
    let mut board = board.clone();
    board
        .as_object_mut()
        .expect("board object")
        .remove("cursor");
    let text = board
        .to_string()
        .replace(project, "PROJECT")
        .replace(prefix, "");
    serde_json::from_str(&text).expect("normalized board")
}

/// What the contract says the cards must be, computed here independently.
fn expected_cards() -> BTreeMap<(Option<&'static str>, &'static str), Value> {
    let key = |s: &Spec| {
        (
            s.lamport,
            s.node.as_bytes().to_vec(),
            s.suffix.as_bytes().to_vec(),
        )
    };
    let mut out = BTreeMap::new();
    let mut places: Vec<(Option<&str>, &str)> = SET.iter().map(|s| (s.feature, s.wp)).collect();
    places.sort();
    places.dedup();
    for (feature, wp) in places {
        let here = |kind: &str| {
            SET.iter()
                .filter(|s| s.kind == kind && s.feature == feature && s.wp == wp)
                .max_by_key(|s| key(s))
        };
        let status = here("WPStatusChanged");
        let created = here("WPCreated");
        let lane = status.map_or("planned", |s| match s.value {
            "claimed" | "in_progress" | "blocked" | "doing" => "doing",
            "approved" | "for_review" => "for_review",
            "canceled" | "done" => "done",
            _ => "planned",
        });
        out.insert(
            (feature, wp),
            json!({
                "lane": lane,
                "raw_lane": status.map(|s| s.value),
                "actor": status.map(|s| format!("actor-{}-{}", s.node, s.lamport)),
                "title": created.map(|s| s.value),
                "dependencies": if created.is_some() { json!(["WP01"]) } else { json!([]) },
                "status_suffix": status.map(|s| s.suffix),
                "created_suffix": created.map(|s| s.suffix),
            }),
        );
    }
    out
}

#[test]
fn the_same_events_in_any_order_and_batches_give_the_same_board() {
    let (t, alice) = acme();
    let mut rng = Rng(0x5EED_B0A2D);
    let expected = expected_cards();
    let mut reference: Option<Value> = None;
    for run in 0..8 {
        let project = new_project();
        let pre = prefix(&mut rng);
        let mut events = convergence_events(&project, &pre);
        match run {
            0 => {}
            1 => events.reverse(),
            _ => rng.shuffle(&mut events),
        }
        // Batch splits: one batch, one event per batch, or random cuts.
        let mut batches: Vec<Vec<Value>> = Vec::new();
        let mut rest = events.as_slice();
        while !rest.is_empty() {
            let size = match run {
                0 | 1 => rest.len(),
                2 => 1,
                _ => 1 + rng.below(rest.len().min(6)),
            };
            batches.push(rest[..size].to_vec());
            rest = &rest[size..];
        }
        for batch in &batches {
            t.post_ok(&alice, batch);
        }
        // Re-sending some of them changes nothing.
        let again: Vec<Value> = events.iter().step_by(3).cloned().collect();
        let reply = t.post_batch(&alice, &again);
        assert!(
            reply.statuses().iter().all(|s| s == "duplicate"),
            "{}",
            reply.text
        );

        let board = t.board(&alice, &project);
        for ((feature, wp), want) in &expected {
            let got = card(&board, *feature, wp);
            for field in ["lane", "raw_lane", "actor", "title", "dependencies"] {
                assert_eq!(
                    got[field], want[field],
                    "run {run}: {feature:?}/{wp} {field}: {got}"
                );
            }
            let winning = want["status_suffix"]
                .as_str()
                .or(want["created_suffix"].as_str())
                .expect("a winner");
            let status_winner = want["status_suffix"].as_str();
            let last = got["last_event_id"].as_str().unwrap_or_default();
            match status_winner {
                Some(s) => assert!(
                    last == format!("{pre}{s}")
                        || want["created_suffix"]
                            .as_str()
                            .is_some_and(|c| last == format!("{pre}{c}")),
                    "run {run}: {feature:?}/{wp} last_event_id {last} is a winner"
                ),
                None => assert_eq!(last, format!("{pre}{winning}"), "run {run}"),
            }
            if status_winner.is_some() {
                let ts = got["updated_at"].as_str().expect("updated_at");
                let winner_index = SET
                    .iter()
                    .position(|s| Some(s.suffix) == status_winner)
                    .expect("winner in set");
                assert_eq!(
                    ts,
                    format!("2026-04-{:02}T12:00:00+00:00", 28 - winner_index),
                    "run {run}: updated_at is the winning event's timestamp"
                );
            }
        }
        let doc = normalized(&board, &project, &pre);
        match &reference {
            None => reference = Some(doc),
            Some(first) => assert_eq!(&doc, first, "run {run} gives the same board"),
        }
    }
}

// ---------------------------------------------------------------------------
// 4. WPCreated / FeatureCreated payload checks

#[test]
fn malformed_wp_created_and_feature_created_are_rejected_naming_the_field() {
    let (t, alice) = acme();
    let p = new_project();
    let mut bad_title = wp_created(&p, A, "WP09", "x", &[], 1, "n1");
    bad_title["payload"]["title"] = json!(5);
    let mut deps_not_list = wp_created(&p, A, "WP08", "x", &[], 1, "n1");
    deps_not_list["payload"]["dependencies"] = json!("WP01");
    let mut second_dep_bad = wp_created(&p, A, "WP07", "x", &[], 1, "n1");
    second_dep_bad["payload"]["dependencies"] = json!(["WP01", 3]);
    let mut number_int = feature_created(&p, "004-d", 1);
    number_int["payload"]["feature_number"] = json!(4);
    let mut number_short = feature_created(&p, "005-e", 1);
    number_short["payload"]["feature_number"] = json!("5");
    let mut count_negative = feature_created(&p, "006-f", 1);
    count_negative["payload"]["wp_count"] = json!(-1);
    let mut no_slug = feature_created(&p, "007-g", 1);
    no_slug["payload"]
        .as_object_mut()
        .expect("payload")
        .remove("feature_slug");
    let good_created = wp_created(&p, A, "WP01", "Fine", &["WP02"], 1, "n1");
    let good_feature = feature_created(&p, "003-c", 1);
    let batch = vec![
        wp_status(&p, A, "WP02", "doing", 1, "n1"),
        wp_created(&p, A, "WP03", "x", &["WP1"], 1, "n1"),
        deps_not_list,
        second_dep_bad,
        wp_created(&p, A, "X3", "x", &[], 1, "n1"),
        bad_title,
        number_int,
        number_short,
        count_negative,
        no_slug,
        good_created.clone(),
        good_feature,
    ];
    let expected: [(&str, &str); 12] = [
        ("success", ""),
        ("rejected", "payload.dependencies[0]"),
        ("rejected", "payload.dependencies"),
        ("rejected", "payload.dependencies[1]"),
        ("rejected", "payload.wp_id"),
        ("rejected", "payload.title"),
        ("rejected", "payload.feature_number"),
        ("rejected", "payload.feature_number"),
        ("rejected", "payload.wp_count"),
        ("rejected", "payload.feature_slug"),
        ("success", ""),
        ("success", ""),
    ];
    let before = t.event_count();
    let reply = t.post_batch(&alice, &batch);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.json()["results"].clone();
    let results = results.as_array().expect("results");
    assert_eq!(results.len(), expected.len());
    for (i, (result, (status, field))) in results.iter().zip(expected).enumerate() {
        assert_eq!(
            result["event_id"], batch[i]["event_id"],
            "result {i} in order"
        );
        assert_eq!(result["status"], status, "event {i}: {result}");
        if status == "rejected" {
            let error = result["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with(&format!("{field}: ")),
                "event {i} names {field}: {error}"
            );
        }
    }
    assert_eq!(t.event_count(), before + 3, "the three valid events stored");

    let board = t.board(&alice, &p);
    let features: Vec<Value> = board["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["feature_slug"].clone())
        .collect();
    assert_eq!(features, vec![json!("001-alpha"), json!("003-c")]);
    let ids: Vec<&str> = board["features"][0]["work_packages"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| c["wp_id"].as_str().expect("wp_id"))
        .collect();
    assert_eq!(ids, ["WP01", "WP02"], "no card from a rejected event");
    assert_eq!(card(&board, A, "WP01")["title"], "Fine");
    assert_eq!(card(&board, A, "WP01")["dependencies"], json!(["WP02"]));

    let feed = follow_feed(&t, &alice, &p, None, 1000);
    assert_eq!(
        ids_of(&feed),
        vec![
            batch[0]["event_id"].as_str().expect("id").to_string(),
            batch[10]["event_id"].as_str().expect("id").to_string(),
            batch[11]["event_id"].as_str().expect("id").to_string(),
        ],
        "the feed holds the stored events only"
    );
}

// ---------------------------------------------------------------------------
// 5. The feed

/// Follows the feed from `after` with `limit` until a page comes back empty.
fn follow_feed(
    t: &TestServer,
    token: &str,
    project: &str,
    after: Option<&str>,
    limit: u32,
) -> Vec<Value> {
    let mut cursor = after.map(str::to_string);
    let mut out = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/projects/{project}/events/?after={c}&limit={limit}"),
            None => format!("/api/v1/projects/{project}/events/?limit={limit}"),
        };
        let reply = t.get(&path, Some(token));
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let page = reply.json();
        let events = page["events"].as_array().expect("events list").clone();
        assert!(events.len() <= limit as usize, "a page holds at most limit");
        if events.is_empty() {
            assert!(page["next"].is_null(), "no next at the end: {page}");
            return out;
        }
        let next = page["next"]
            .as_str()
            .expect("a page with events has a next cursor")
            .to_string();
        out.extend(events);
        cursor = Some(next);
    }
}

#[test]
fn following_next_with_small_limits_returns_every_event_once_in_order() {
    let (t, alice) = acme();
    let (p, other) = (new_project(), new_project());
    let mut sent = Vec::new();
    for batch in 0..7 {
        let mut events = Vec::new();
        for i in 0..(batch + 3) {
            let e = match i % 3 {
                0 => wp_status(&p, A, &format!("WP{:02}", 10 + i), "doing", i, "n1"),
                1 => wp_created(&p, None, &format!("WP{:02}", 10 + i), "t", &[], i, "n1"),
                _ => board_event(&p, "HistoryAdded", json!({"n": i}), i, "n1"),
            };
            events.push(e);
        }
        // Another project's events in the same batches stay out of p's feed.
        events.insert(1, wp_status(&other, A, "WP01", "doing", 1, "n1"));
        t.post_ok(&alice, &events);
        sent.extend(
            events
                .into_iter()
                .filter(|e| e["project_uuid"] == p.as_str()),
        );
    }
    for limit in [1, 2, 5, 1000] {
        let got = follow_feed(&t, &alice, &p, None, limit);
        assert_eq!(
            ids_of(&got),
            ids_of(&sent),
            "limit {limit}: every event once, in order"
        );
        assert_eq!(got, sent, "limit {limit}: the envelopes as sent");
    }

    // The board's cursor is a feed position: after it come later events only.
    let cursor = t.board(&alice, &p)["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    assert!(follow_feed(&t, &alice, &p, Some(&cursor), 3).is_empty());
    let later = vec![
        wp_status(&p, A, "WP90", "done", 1, "n1"),
        wp_status(&p, A, "WP91", "done", 1, "n1"),
    ];
    t.post_ok(&alice, &later);
    assert_eq!(
        ids_of(&follow_feed(&t, &alice, &p, Some(&cursor), 1)),
        ids_of(&later)
    );
}

#[test]
fn the_feed_limit_defaults_to_100() {
    let (t, alice) = acme();
    let p = new_project();
    let events: Vec<Value> = (0..150)
        .map(|i| board_event(&p, "HistoryAdded", json!({"n": i}), i, "n1"))
        .collect();
    t.post_ok(&alice, &events);
    let reply = t.get(&format!("/api/v1/projects/{p}/events/"), Some(&alice));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let page = reply.json();
    assert_eq!(page["events"].as_array().expect("events").len(), 100);
    let next = page["next"].as_str().expect("next");
    let reply = t.get(
        &format!("/api/v1/projects/{p}/events/?after={next}"),
        Some(&alice),
    );
    assert_eq!(reply.json()["events"].as_array().expect("events").len(), 50);
}

#[test]
fn a_bad_after_or_limit_is_400_naming_the_parameter() {
    let (t, alice) = acme();
    let p = new_project();
    t.post_ok(&alice, &[wp_status(&p, A, "WP01", "doing", 1, "n1")]);
    let base = format!("/api/v1/projects/{p}/events/");
    for after in ["x", "12", "c1.-1", "c1.x", "c9.3", ""] {
        assert_400_naming(&t, &format!("{base}?after={after}"), &alice, "after");
    }
    for limit in ["0", "1001", "x", "-1", "1.5", ""] {
        assert_400_naming(&t, &format!("{base}?limit={limit}"), &alice, "limit");
    }
    for limit in ["1", "1000"] {
        let reply = t.get(&format!("{base}?limit={limit}"), Some(&alice));
        assert_eq!(reply.status, 200, "limit {limit}: {}", reply.text);
    }
}

#[test]
fn duplicates_sent_again_are_not_handed_out_twice() {
    let (t, alice) = acme();
    let p = new_project();
    let first: Vec<Value> = (0..10)
        .map(|i| wp_status(&p, A, &format!("WP{:02}", 10 + i), "doing", 1, "n1"))
        .collect();
    t.post_ok(&alice, &first);
    let reply = t.get(
        &format!("/api/v1/projects/{p}/events/?limit=1000"),
        Some(&alice),
    );
    let next = reply.json()["next"].as_str().expect("next").to_string();
    let board_before = t.board(&alice, &p);

    // Only duplicates: nothing new to hand out, the board unchanged.
    let reply = t.post_batch(&alice, &first);
    assert!(
        reply.statuses().iter().all(|s| s == "duplicate"),
        "{}",
        reply.text
    );
    assert!(follow_feed(&t, &alice, &p, Some(&next), 4).is_empty());
    let mut board_after = t.board(&alice, &p);
    board_after["cursor"] = board_before["cursor"].clone();
    assert_eq!(board_after, board_before, "duplicates change no card");

    // Duplicates mixed with new events: only the new ones come.
    let new = vec![
        wp_status(&p, A, "WP50", "done", 2, "n1"),
        wp_status(&p, A, "WP51", "done", 2, "n1"),
    ];
    let mut mixed = first[..5].to_vec();
    mixed.insert(2, new[0].clone());
    mixed.push(new[1].clone());
    let reply = t.post_batch(&alice, &mixed);
    assert_eq!(
        reply.statuses(),
        [
            "duplicate",
            "duplicate",
            "success",
            "duplicate",
            "duplicate",
            "duplicate",
            "success"
        ]
    );
    assert_eq!(
        ids_of(&follow_feed(&t, &alice, &p, Some(&next), 1)),
        ids_of(&new)
    );
    let all = ids_of(&follow_feed(&t, &alice, &p, None, 3));
    assert_eq!(all.len(), 12);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 12, "no repeats");
}

#[test]
fn the_feed_stays_exact_while_four_senders_post_concurrently() {
    let (t, alice) = acme();
    let p = new_project();
    const SENDERS: usize = 4;
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 15;
    let (sent, seen) = feed_race(
        SENDERS,
        BATCHES,
        7,
        |s, b| {
            let events: Vec<Value> = (0..PER_BATCH)
                .map(|i| {
                    let wp = format!("WP{:02}", 10 + (s * 7 + b + i) % 40);
                    wp_status(
                        &p,
                        A,
                        &wp,
                        "doing",
                        (b * PER_BATCH + i) as i64,
                        &format!("sender-{s}"),
                    )
                })
                .collect();
            t.post_ok(&alice, &events);
            events
        },
        |_, query| {
            t.get(
                &format!("/api/v1/projects/{p}/events/{query}"),
                Some(&alice),
            )
        },
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event handed out twice");
    let all: HashSet<&String> = sent.iter().flatten().collect();
    assert_eq!(unique, all, "every stored event handed out (no gaps)");
    // Each sender's events come in the order that sender stored them.
    assert_each_sender_in_order(&sent, &seen, "per-sender order");
}

// ---------------------------------------------------------------------------
// 7. Rebuild equals live

#[test]
fn rebuild_from_the_log_equals_the_live_board_and_repairs_a_corrupted_one() {
    let (t, alice) = acme();
    let mut rng = Rng(0xB0A2D_2EB1D);
    let mut projects = Vec::new();
    for _ in 0..2 {
        let project = new_project();
        let mut events = convergence_events(&project, &prefix(&mut rng));
        rng.shuffle(&mut events);
        for chunk in events.chunks(4) {
            t.post_ok(&alice, chunk);
        }
        projects.push(project);
    }
    let live: Vec<Value> = projects.iter().map(|p| t.board(&alice, p)).collect();

    let report = t
        .server
        .block_on(t.server.store.rebuild_board(None, true))
        .expect("rebuild check");
    assert!(
        report.differences.is_empty(),
        "live equals rebuilt: {:?}",
        report.differences
    );
    assert_eq!(report.projects, 2);
    assert_eq!(report.events, 2 * (SET.len() as u64 + 2));
    assert_eq!(report.cards, 2 * expected_cards().len());

    if t.server.store.backend() == "sqlite" {
        let path = t.dir.path().join("spec-kitty.db");
        assert!(
            path.exists(),
            "the test's SQLite file at {}",
            path.display()
        );
        let conn = rusqlite::Connection::open(&path).expect("open the test database");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        let changed = conn
            .execute(
                "UPDATE board_cards SET lane = 'done', raw_lane = 'done' WHERE wp_id = 'WP02' AND feature_key = '001-alpha'",
                [],
            )
            .expect("corrupt one card");
        assert_eq!(changed, 2, "one such card per project");
        conn.execute(
            "DELETE FROM board_cards WHERE wp_id = 'WP05' AND feature_key = ''",
            [],
        )
        .expect("drop a card");
        drop(conn);
        let corrupted = t.board(&alice, &projects[0]);
        assert_ne!(corrupted, live[0], "the corruption shows on the board");

        let report = t
            .server
            .block_on(t.server.store.rebuild_board(None, true))
            .expect("rebuild check");
        let diffs = report.differences.join("\n");
        assert_eq!(report.differences.len(), 4, "{diffs}");
        for p in &projects {
            assert!(diffs.contains(&format!("{p} 001-alpha/WP02")), "{diffs}");
            assert!(diffs.contains(&format!("{p} (no feature)/WP05")), "{diffs}");
        }
        // Check mode writes nothing.
        assert_eq!(t.board(&alice, &projects[0]), corrupted);

        let report = t
            .server
            .block_on(t.server.store.rebuild_board(None, false))
            .expect("rebuild");
        assert_eq!(report.differences.len(), 4);
    }
    let report = t
        .server
        .block_on(t.server.store.rebuild_board(Some(&projects[1]), false))
        .expect("rebuild one project");
    assert_eq!(report.projects, 1);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    for (p, before) in projects.iter().zip(&live) {
        assert_eq!(
            &t.board(&alice, p),
            before,
            "rebuild restores the live board exactly"
        );
    }
    let report = t
        .server
        .block_on(t.server.store.rebuild_board(None, true))
        .expect("rebuild check");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

// ---------------------------------------------------------------------------
// Reading with a browser's session cookie

fn get_with_cookie(t: &TestServer, path: &str, cookie: &str) -> (u16, String) {
    let mut response = t
        .agent
        .get(t.url(path))
        .header("Cookie", cookie)
        .call()
        .expect("answered");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, text)
}

#[test]
fn a_browser_session_cookie_reads_the_api_of_its_team_only() {
    let (t, alice, bob) = two_teams();
    let p = new_project();
    t.post_ok(&alice, &[wp_status(&p, A, "WP01", "doing", 1, "n1")]);
    let alices = t.session_cookie("alice");
    let (status, text) = get_with_cookie(&t, "/api/v1/projects/", &alices);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&p), "{text}");
    let (status, text) = get_with_cookie(&t, &format!("/api/v1/projects/{p}/board/"), &alices);
    assert_eq!(status, 200, "{text}");
    let board: Value = serde_json::from_str(&text).expect("board JSON");
    assert_eq!(board["counts"]["doing"], 1);
    let (status, _) = get_with_cookie(&t, &format!("/api/v1/projects/{p}/events/"), &alices);
    assert_eq!(status, 200);

    let bobs = t.session_cookie("bob");
    let (status, text) = get_with_cookie(&t, &format!("/api/v1/projects/{p}/board/"), &bobs);
    assert_eq!(status, 404, "{text}");
    let _ = bob;
    let (status, _) = get_with_cookie(
        &t,
        &format!("/api/v1/projects/{p}/board/"),
        "sk_session=forged",
    );
    assert_eq!(status, 401);

    t.server
        .block_on(t.server.store.remove_member("acme", "alice"))
        .expect("alice removed");
    let (status, text) = get_with_cookie(&t, &format!("/api/v1/projects/{p}/board/"), &alices);
    assert_eq!(
        status, 403,
        "a removed member's session reads nothing: {text}"
    );
}

// ---------------------------------------------------------------------------
// Timestamps the board sends carry an offset (contract: all timestamps are
// ISO 8601 with an offset; readers accept `Z` and naive values).

#[test]
fn updated_at_of_a_naive_or_z_timestamp_is_sent_with_an_offset() {
    let (t, alice) = acme();
    let p = new_project();
    let naive = with_timestamp(
        wp_status(&p, A, "WP01", "doing", 1, "n1"),
        "2026-02-12T10:15:00.123456",
    );
    let zulu = with_timestamp(
        wp_status(&p, A, "WP02", "doing", 1, "n1"),
        "2026-02-12T10:15:00Z",
    );
    t.post_ok(&alice, &[naive, zulu]);
    let board = t.board(&alice, &p);
    for wp in ["WP01", "WP02"] {
        let at = card(&board, A, wp)["updated_at"]
            .as_str()
            .expect("updated_at")
            .to_string();
        assert!(at.starts_with("2026-02-12T10:15:00"), "{wp}: {at}");
        let time = &at[10..];
        assert!(
            time.contains('+') || time.contains('-') || time.ends_with('Z'),
            "{wp}: updated_at carries an offset: {at}"
        );
    }
}

#[test]
fn last_event_at_moves_only_for_a_project_that_got_a_new_event() {
    let (t, alice) = acme();
    let (x, y) = (new_project(), new_project());
    let first = wp_status(&x, A, "WP01", "doing", 1, "n1");
    t.post_ok(
        &alice,
        &[first.clone(), wp_status(&y, A, "WP01", "doing", 1, "n1")],
    );
    let last_event_at = |uuid: &str| -> Value {
        let reply = t.get("/api/v1/projects/", Some(&alice));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .find(|p| p["project_uuid"] == uuid)
            .expect("listed")["last_event_at"]
            .clone()
    };
    let x_before = last_event_at(&x);
    let y_before = last_event_at(&y);
    assert!(x_before.is_string(), "{x_before}");
    // The server stamps with sub-second precision; make sure a new stamp
    // would differ from the old one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // x gets only a duplicate, y a new event, in one batch.
    let reply = t.post_batch(&alice, &[first, wp_status(&y, A, "WP02", "done", 1, "n1")]);
    assert_eq!(reply.statuses(), ["duplicate", "success"], "{}", reply.text);
    assert_ne!(last_event_at(&y), y_before, "y got an event");
    assert_eq!(
        last_event_at(&x),
        x_before,
        "a re-sent duplicate is no new event for x"
    );
}
