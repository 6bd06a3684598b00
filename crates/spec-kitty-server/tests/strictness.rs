//! Strictness (issue 12, item 6): ids, headers and bodies the server must
//! read one way only, and errors that are JSON like every other.

use crate::common;

use common::{PASSWORD, TestServer, batch_body, event, gzip, new_project, refresh};
use serde_json::Value;

fn acme() -> (TestServer, String) {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    (t, access)
}

/// A JSON error body with `error` and `details`.
fn assert_json_error(text: &str, what: &str) {
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
    assert!(body["error"].is_string(), "{what}: {text}");
    assert!(body["details"].is_string(), "{what}: {text}");
}

#[test]
fn a_lower_case_copy_of_a_stored_ulid_is_the_same_event() {
    let (t, access) = acme();
    let original = event(&new_project());
    t.post_ok(&access, std::slice::from_ref(&original));
    let mut copy = original.clone();
    let id = original["event_id"]
        .as_str()
        .expect("id")
        .to_ascii_lowercase();
    copy["event_id"] = Value::String(id.clone());
    let reply = t.post_batch(&access, &[copy]);
    assert_eq!(reply.statuses(), ["duplicate"], "{}", reply.text);
    assert_eq!(
        reply.json()["results"][0]["event_id"],
        id,
        "the answer names the id as sent"
    );
    assert_eq!(t.event_count(), 1);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let (t, access) = acme();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let mut response = t
            .agent
            .get(t.url("/api/v1/sync/health/"))
            .header("Authorization", format!("{scheme} {access}"))
            .call()
            .expect("answer");
        let text = response.body_mut().read_to_string().expect("body");
        assert_eq!(response.status().as_u16(), 200, "{scheme}: {text}");
    }
}

#[test]
fn method_not_allowed_is_405_in_json() {
    let (t, access) = acme();
    let reply = t.get("/api/v1/events/batch/", Some(&access));
    assert_eq!(reply.status, 405, "{}", reply.text);
    assert_json_error(&reply.text, "405");
}

#[test]
fn too_many_header_fields_is_431_in_json() {
    let t = TestServer::start();
    let mut request = t.agent.get(t.url("/healthz"));
    for i in 0..150 {
        request = request.header(format!("x-field-{i}"), "value");
    }
    let mut response = request.call().expect("answer");
    let text = response.body_mut().read_to_string().expect("body");
    assert_eq!(response.status().as_u16(), 431, "{text}");
    assert_json_error(&text, "431");
}

#[test]
fn a_log_in_body_over_2_mb_is_413_in_json() {
    let t = TestServer::start();
    let mut body = br#"{"username": "alice", "password": ""#.to_vec();
    body.resize(3 * 1024 * 1024, b'x');
    body.extend_from_slice(br#""}"#);
    let mut response = t
        .agent
        .post(t.url("/api/v1/token/"))
        .header("Content-Type", "application/json")
        .send(&body[..])
        .expect("an answer, not a reset");
    let text = response.body_mut().read_to_string().expect("body");
    assert_eq!(response.status().as_u16(), 413, "{text}");
    assert_json_error(&text, "413");
}

#[test]
fn gzip_followed_by_junk_is_400() {
    let (t, access) = acme();
    let mut body = gzip(&batch_body(&[event(&new_project())]));
    body.extend_from_slice(b"trailing junk");
    let reply = t.post_raw(Some(&access), &body, true);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_json_error(&reply.text, "400");
    assert_eq!(t.event_count(), 0);
}

#[test]
fn login_and_refresh_do_not_name_a_team_the_user_was_removed_from() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    let (_, refresh_token) = common::login_ok(&t.agent, &t.server.url, "alice", PASSWORD);
    t.server
        .block_on(spec_kitty_server::admin::remove_member(
            &t.server.store,
            "acme",
            "alice",
        ))
        .expect("removed");

    let login = t.login("alice", PASSWORD);
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.json()["team_slug"], Value::Null, "{}", login.text);
    let refreshed = refresh(&t.agent, &t.server.url, &refresh_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(
        refreshed.json()["team_slug"],
        Value::Null,
        "{}",
        refreshed.text
    );
}
