//! Batch ingest (contract section 2) against the real server over HTTP:
//! per-event answers, whole-batch errors, size limits, cross-team
//! projects and concurrent senders.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Barrier};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use common::{TestServer, batch_body, event, event_with_lane, events, gzip, new_project};

/// A server with team `acme` and user `alice`; returns her access token.
fn acme() -> (TestServer, String) {
    acme_with(|_| {})
}

fn acme_with(tweak: impl FnOnce(&mut spec_kitty_server::ServerConfig)) -> (TestServer, String) {
    let t = TestServer::start_with(tweak);
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    (t, access)
}

fn assert_400_with_details(reply: &common::Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {}", reply.text);
    let body = reply.json();
    assert!(body["error"].is_string(), "{what}: {}", reply.text);
    let details = body["details"].as_str().unwrap_or_default();
    assert!(
        !details.is_empty(),
        "{what}: details present: {}",
        reply.text
    );
}

#[test]
fn mixed_batch_is_answered_in_request_order() {
    let (t, access) = acme();
    let project = new_project();
    let stored_before = event(&project);
    let first = t.post_batch(&access, std::slice::from_ref(&stored_before));
    assert_eq!(first.statuses(), ["success"], "{}", first.text);

    let fresh = event(&project);
    let typo = event_with_lane(&project, "doingg");
    let reply = t.post_batch(
        &access,
        &[fresh.clone(), stored_before.clone(), typo.clone()],
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.json()["results"].clone();
    let results = results.as_array().expect("results list");
    assert_eq!(results.len(), 3, "{}", reply.text);
    let expected = [
        (&fresh, "success"),
        (&stored_before, "duplicate"),
        (&typo, "rejected"),
    ];
    for (result, (event, status)) in results.iter().zip(expected) {
        assert_eq!(result["event_id"], event["event_id"], "{}", reply.text);
        assert_eq!(result["status"], status, "{}", reply.text);
    }
    let error = results[2]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("payload.to_lane") && error.contains("doingg"),
        "the rejection names the field and the value: {error}"
    );
    assert!(results[0].get("error").is_none(), "{}", reply.text);
    assert_eq!(t.event_count(), 2, "the rejected event is not stored");
}

#[test]
fn empty_batch_is_200_with_no_results() {
    let (t, access) = acme();
    let identity = t.post_raw(Some(&access), br#"{"events": []}"#, false);
    assert_eq!(identity.status, 200, "{}", identity.text);
    assert_eq!(identity.json(), json!({"results": []}));
    let gzipped = t.post_raw(Some(&access), &gzip(br#"{"events": []}"#), true);
    assert_eq!(gzipped.status, 200, "{}", gzipped.text);
    assert_eq!(gzipped.json(), json!({"results": []}));
}

#[test]
fn gzip_and_identity_bodies_both_work() {
    let (t, access) = acme();
    let project = new_project();
    let plain = events(&project, 3);
    let reply = t.post_raw(Some(&access), &batch_body(&plain), false);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.statuses(), ["success"; 3]);

    let compressed = events(&project, 3);
    let reply = t.post_raw(Some(&access), &gzip(&batch_body(&compressed)), true);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.statuses(), ["success"; 3]);

    // The same events again, the other way round: duplicates.
    let reply = t.post_raw(Some(&access), &gzip(&batch_body(&plain)), true);
    assert_eq!(reply.statuses(), ["duplicate"; 3], "{}", reply.text);
    let reply = t.post_raw(Some(&access), &batch_body(&compressed), false);
    assert_eq!(reply.statuses(), ["duplicate"; 3], "{}", reply.text);
    assert_eq!(t.event_count(), 6);
}

#[test]
fn unknown_fields_are_kept_not_rejected() {
    let (t, access) = acme();
    let mut e = event(&new_project());
    e["future_field"] = json!({"nested": [1, 2, 3]});
    e["payload"]["shell_pid"] = json!("4242");
    let reply = t.post_batch(&access, &[e]);
    assert_eq!(reply.statuses(), ["success"], "{}", reply.text);
}

#[test]
fn more_than_1000_events_is_400_with_details() {
    let (t, access) = acme();
    let many = events(&new_project(), 1001);
    let reply = t.post_batch(&access, &many);
    assert_400_with_details(&reply, "1001 events");
    let details = reply.json()["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(details.contains("1001"), "{details}");
    assert_eq!(
        t.event_count(),
        0,
        "nothing of an oversized batch is stored"
    );

    let exactly = events(&new_project(), 1000);
    let reply = t.post_batch(&access, &exactly);
    assert_eq!(reply.status, 200, "1000 events are allowed");
    assert_eq!(t.event_count(), 1000);
}

#[test]
fn malformed_json_is_400_with_details() {
    let (t, access) = acme();
    let broken = t.post_raw(Some(&access), br#"{"events": [{"event_id": "#, false);
    assert_400_with_details(&broken, "truncated JSON");
    let broken_gz = t.post_raw(Some(&access), &gzip(b"not json at all"), true);
    assert_400_with_details(&broken_gz, "gzipped garbage");
    let no_list = t.post_raw(Some(&access), br#"{"evnts": []}"#, false);
    assert_400_with_details(&no_list, "no events list");
    let not_a_list = t.post_raw(Some(&access), br#"{"events": {"a": 1}}"#, false);
    assert_400_with_details(&not_a_list, "events is not a list");
}

#[test]
fn bad_gzip_is_400_with_details() {
    let (t, access) = acme();
    let reply = t.post_raw(Some(&access), br#"{"events": []}"#, true);
    assert_400_with_details(&reply, "identity bytes declared as gzip");
    let mut truncated = gzip(&batch_body(&events(&new_project(), 5)));
    truncated.truncate(truncated.len() / 2);
    let reply = t.post_raw(Some(&access), &truncated, true);
    assert_400_with_details(&reply, "truncated gzip");
    assert_eq!(t.event_count(), 0);
}

#[test]
fn gzip_bomb_is_413() {
    // The default decompressed limit (64 MiB); the bomb inflates to 200 MiB.
    let (t, access) = acme();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(br#"{"events": ["#).expect("gzip write");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..200 {
        encoder.write_all(&spaces).expect("gzip write");
    }
    encoder.write_all(b"]}").expect("gzip write");
    let bomb = encoder.finish().expect("gzip finish");
    assert!(
        bomb.len() < 1 << 20,
        "the bomb itself is small: {}",
        bomb.len()
    );

    let reply = t.post_raw(Some(&access), &bomb, true);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.json()["error"].is_string(), "{}", reply.text);

    // The server is still fine afterwards.
    let ok = t.post_batch(&access, &[event(&new_project())]);
    assert_eq!(ok.statuses(), ["success"], "{}", ok.text);
}

#[test]
fn decompressed_limit_is_configurable() {
    let (t, access) = acme_with(|c| c.limits.max_decompressed_bytes = 64 * 1024);
    // About 100 KiB of JSON, well under the body limit once compressed.
    let body = batch_body(&events(&new_project(), 200));
    assert!(body.len() > 64 * 1024);
    let reply = t.post_raw(Some(&access), &gzip(&body), true);
    assert_eq!(reply.status, 413, "{}", reply.text);
    let reply = t.post_raw(Some(&access), &body, false);
    assert_eq!(reply.status, 413, "identity over the limit: {}", reply.text);
    assert_eq!(t.event_count(), 0);
}

#[test]
fn body_over_max_body_bytes_is_413() {
    let (t, access) = acme_with(|c| c.limits.max_body_bytes = 16 * 1024);
    // ~30 KiB as sent, identity so the compressed size is the sent size.
    let body = batch_body(&events(&new_project(), 50));
    assert!(body.len() > 16 * 1024, "{}", body.len());
    let reply = t.post_raw(Some(&access), &body, false);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.json()["error"].is_string(), "{}", reply.text);
    assert_eq!(t.event_count(), 0);

    // Under the limit is fine.
    let small = batch_body(&events(&new_project(), 5));
    let reply = t.post_raw(Some(&access), &small, false);
    assert_eq!(reply.statuses(), ["success"; 5], "{}", reply.text);
}

#[test]
fn unsupported_content_encoding_is_415() {
    let (t, access) = acme();
    let reply = t
        .agent
        .post(t.url("/api/v1/events/batch/"))
        .header("Authorization", format!("Bearer {access}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "br")
        .send(&br#"{"events": []}"#[..])
        .expect("server answers");
    assert_eq!(reply.status().as_u16(), 415);
}

#[test]
fn another_teams_uuid_is_a_project_of_its_own_and_a_refused_batch_stores_nothing() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_team("other");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    let (bob, _) = t.user_with_tokens("bob", "other");

    let acme_project = new_project();
    let reply = t.post_batch(&alice, &[event(&acme_project)]);
    assert_eq!(reply.statuses(), ["success"], "{}", reply.text);
    assert_eq!(t.event_count(), 1);

    // Contract section 2: projects are keyed by team. Bob sending acme's
    // (public) uuid gets a project of his own team, not access to acme's.
    let reply = t.post_batch(&bob, &[event(&acme_project)]);
    assert_eq!(reply.statuses(), ["success"], "{}", reply.text);
    let teams = t
        .server
        .block_on(t.server.store.list_teams())
        .expect("teams list");
    let projects = |slug: &str| {
        teams
            .iter()
            .find(|team| team.slug == slug)
            .map(|team| team.projects)
            .expect("team")
    };
    assert_eq!((projects("acme"), projects("other")), (1, 1));
    assert_eq!(
        t.get(
            &format!("/api/v1/projects/{acme_project}/board/"),
            Some(&bob)
        )
        .json()["counts"],
        json!({"planned": 0, "doing": 1, "for_review": 0, "done": 0}),
        "Bob reads his own team's project"
    );

    // Bob's batch: first an event for a fresh project of his own, then one
    // written for acme. All or nothing: the first must not be kept.
    let bobs_own = event(&new_project());
    let mut intruding = event(&acme_project);
    intruding["team_slug"] = json!("acme");
    let reply = t.post_batch(&bob, &[bobs_own.clone(), intruding]);
    assert_eq!(reply.status, 403, "{}", reply.text);
    let error = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("Insufficient permissions"), "{error}");
    assert_eq!(t.event_count(), 2, "nothing of Bob's batch is stored");

    // Sent alone, Bob's own event is new (success, not duplicate): it was
    // really not stored before.
    let reply = t.post_batch(&bob, &[bobs_own]);
    assert_eq!(reply.statuses(), ["success"], "{}", reply.text);
    assert_eq!(t.event_count(), 3);
}

#[test]
fn event_naming_a_team_the_sender_is_not_in_is_403() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_team("other");
    let (alice, _) = t.user_with_tokens("alice", "acme");
    let mut e = event(&new_project());
    e["team_slug"] = json!("other");
    let reply = t.post_batch(&alice, &[e]);
    assert_eq!(reply.status, 403, "{}", reply.text);
    // `local` means the sender's own team.
    let mut e = event(&new_project());
    e["team_slug"] = json!("local");
    let reply = t.post_batch(&alice, &[e]);
    assert_eq!(reply.statuses(), ["success"], "{}", reply.text);
    assert_eq!(t.event_count(), 1);
}

#[test]
fn eight_concurrent_senders_store_each_event_once() {
    const SENDERS: usize = 8;
    let (t, access) = acme();
    let batch: Vec<Value> = events(&new_project(), 1000);
    let body = Arc::new(gzip(&batch_body(&batch)));
    let barrier = Arc::new(Barrier::new(SENDERS));
    let base = t.server.url.clone();

    let handles: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (body, barrier, base, access) = (
                Arc::clone(&body),
                Arc::clone(&barrier),
                base.clone(),
                access.clone(),
            );
            std::thread::spawn(move || {
                // Each sender has its own client, so its own connection.
                let agent = common::agent();
                barrier.wait();
                common::post_raw(&agent, &base, Some(&access), &body, true)
            })
        })
        .collect();

    let mut successes: HashMap<String, usize> = HashMap::new();
    for handle in handles {
        let reply = handle.join().expect("sender thread");
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 1000);
        for (result, sent) in results.iter().zip(&batch) {
            assert_eq!(result["event_id"], sent["event_id"], "request order");
            let id = result["event_id"].as_str().unwrap_or_default().to_string();
            let counter = successes.entry(id).or_default();
            match result["status"].as_str() {
                Some("success") => *counter += 1,
                Some("duplicate") => {}
                other => panic!("unexpected status {other:?}: {result}"),
            }
        }
    }
    assert_eq!(t.event_count(), 1000);
    assert_eq!(successes.len(), 1000, "every event answered");
    let not_once: Vec<_> = successes.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        not_once.is_empty(),
        "each event gets exactly one success over all senders: {not_once:?}"
    );
}

#[test]
fn the_same_event_twice_in_one_batch_is_success_then_duplicate() {
    let (t, access) = acme();
    let e = event(&new_project());
    let reply = t.post_batch(&access, &[e.clone(), e]);
    assert_eq!(reply.statuses(), ["success", "duplicate"], "{}", reply.text);
    assert_eq!(t.event_count(), 1);
}

/// A client that announces its body with `Expect: 100-continue` and waits
/// (long enough never to matter) for the server's go-ahead.
fn expect_continue_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_await_100(Some(std::time::Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn post_expect_continue(
    agent: &ureq::Agent,
    t: &TestServer,
    token: Option<&str>,
    body: &[u8],
    gzipped: bool,
) -> common::Reply {
    let mut request = agent
        .post(t.url("/api/v1/events/batch/"))
        .header("Content-Type", "application/json")
        .header("Expect", "100-continue");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if gzipped {
        request = request.header("Content-Encoding", "gzip");
    }
    let mut response = request.send(body).expect("the server answers");
    common::Reply {
        status: response.status().as_u16(),
        retry_after: None,
        text: response.body_mut().read_to_string().expect("body reads"),
    }
}

/// A body far over the default 16 MiB limit is refused before it is sent
/// when the client asks with `Expect: 100-continue`; without it, the
/// server closes the connection on the unread body and the client sees a
/// broken pipe instead of the 413 (see the report accompanying this test).
#[test]
fn huge_body_with_expect_continue_gets_413_or_401_before_the_body() {
    let (t, access) = acme();
    let agent = expect_continue_agent();
    let huge = vec![b' '; 20 * 1024 * 1024];
    let reply = post_expect_continue(&agent, &t, Some(&access), &huge, false);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.json()["details"].is_string(), "{}", reply.text);
    let reply = post_expect_continue(&agent, &t, None, &huge, false);
    assert_eq!(reply.status, 401, "{}", reply.text);

    // An ordinary batch with the same header goes through (the server
    // sends 100 Continue when it reads the body).
    let batch = gzip(&batch_body(&events(&new_project(), 10)));
    let reply = post_expect_continue(&agent, &t, Some(&access), &batch, true);
    assert_eq!(reply.statuses(), ["success"; 10], "{}", reply.text);
}

#[test]
fn a_large_batch_with_a_bad_token_reads_a_clean_401() {
    let (t, _access) = acme();
    // About 2 MiB as sent: larger than socket buffers, so a server that
    // answered before reading would cut the upload off mid-stream.
    let body = batch_body(&events(&new_project(), 1000));
    let mut padded = body.clone();
    padded.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    for _ in 0..3 {
        let reply = t.post_raw(Some("not-a-token"), &padded, false);
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    assert_eq!(t.event_count(), 0);
}
