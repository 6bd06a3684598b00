//! `POST /api/v1/token/revoke/`: a log-out ends the refresh-token family,
//! and the answer says nothing about the token presented.

use crate::common;

use serde_json::{Value, json};

use common::{TestServer, login_ok, refresh};

fn revoke_raw(t: &TestServer, body: &str) -> common::Reply {
    let response = t
        .agent
        .post(t.url("/api/v1/token/revoke/"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes());
    common::reply(response)
}

fn revoke(t: &TestServer, token: &str) -> common::Reply {
    revoke_raw(t, &json!({"refresh": token}).to_string())
}

#[test]
fn a_revoked_refresh_token_never_refreshes_again_nor_its_successors() {
    let t = TestServer::start();
    t.add_team("acme");
    let (_, first) = t.user_with_tokens("alice", "acme");
    // A rotation first: the family, not just one token, is what ends.
    let rotated = refresh(&t.agent, &t.server.url, &first);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let current = rotated.json()["refresh"]
        .as_str()
        .expect("new refresh token")
        .to_string();

    let reply = revoke(&t, &current);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), json!({"revoked": true}));

    let again = refresh(&t.agent, &t.server.url, &current);
    assert_eq!(again.status, 401, "{}", again.text);

    // Revoking again is the same answer: idempotent.
    let reply = revoke(&t, &current);
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"revoked": true}))
    );

    // Another session of the same user is untouched.
    let (_, other) = login_ok(&t.agent, &t.server.url, "alice", common::PASSWORD);
    let reply = refresh(&t.agent, &t.server.url, &other);
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn unknown_and_foreign_tokens_get_the_same_answer() {
    let t = TestServer::start();
    for token in ["", "not.a.jwt", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"] {
        let reply = revoke(&t, token);
        assert_eq!(reply.status, 200, "{token:?}: {}", reply.text);
        assert_eq!(reply.json(), json!({"revoked": true}), "{token:?}");
    }
}

#[test]
fn a_malformed_body_is_a_400_with_error_and_details() {
    let t = TestServer::start();
    for body in ["", "{", "{}", r#"{"refresh": 7}"#, "[]"] {
        let reply = revoke_raw(&t, body);
        assert_eq!(reply.status, 400, "{body:?}: {}", reply.text);
        let json: Value = reply.json();
        assert!(json["error"].is_string(), "{body:?}: {json}");
        assert!(json["details"].is_string(), "{body:?}: {json}");
    }
}
