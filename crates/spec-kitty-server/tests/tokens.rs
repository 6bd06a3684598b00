//! Access tokens on authenticated routes, team membership, and the health
//! checks, against the real server over HTTP.

use crate::common;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use common::{PASSWORD, TestServer, base64url, event, new_project, unix_now};

const HEALTH: &str = "/api/v1/sync/health/";

/// The claims the server puts in an access token for `username`.
fn access_claims(t: &TestServer, username: &str, exp: i64) -> Value {
    let user = t
        .server
        .block_on(t.server.store.find_user(username))
        .expect("store answers")
        .expect("user exists");
    json!({
        "sub": user.username,
        "uid": user.id,
        "team": user.team,
        "typ": "access",
        "iat": unix_now() - 60,
        "exp": exp,
        "jti": ulid::Ulid::new().to_string(),
    })
}

fn sign(claims: &Value, algorithm: Algorithm, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(key).expect("HMAC key"),
    )
    .expect("token signs")
}

/// Asserts that `token` is refused with the contract's 401 on both
/// authenticated routes.
fn assert_refused(t: &TestServer, token: Option<&str>, what: &str) {
    let health = t.get(HEALTH, token);
    assert_eq!(health.status, 401, "{what} on health: {}", health.text);
    assert_eq!(
        health.json(),
        json!({"error": "Token expired or invalid"}),
        "{what}"
    );
    let batch = match token {
        Some(token) => t.post_batch(token, &[event(&new_project())]),
        None => t.post_raw(None, br#"{"events": []}"#, false),
    };
    assert_eq!(batch.status, 401, "{what} on batch: {}", batch.text);
    assert_eq!(
        batch.json(),
        json!({"error": "Token expired or invalid"}),
        "{what}"
    );
}

#[test]
fn healthz_needs_no_authentication() {
    let t = TestServer::start();
    let reply = t.get("/healthz", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "ok");
}

#[test]
fn sync_health_names_user_and_team_for_a_member() {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    let reply = t.get(HEALTH, Some(&access));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["team_slug"], "acme");
}

#[test]
fn missing_and_malformed_authorization_is_401() {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    assert_refused(&t, None, "no Authorization header");
    assert_refused(&t, Some("not-a-token"), "a malformed token");
    assert_refused(&t, Some("a.b.c"), "three garbage segments");
    // A good token under another scheme is not a bearer token.
    let reply = t
        .agent
        .get(t.url(HEALTH))
        .header("Authorization", format!("Token {access}"))
        .call()
        .expect("server answers");
    assert_eq!(reply.status().as_u16(), 401);
}

#[test]
fn expired_token_signed_with_the_server_key_is_401() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    let key = common::signing_key(t.dir.path());
    assert_eq!(key.len(), 64);

    // Control: the same claims, not yet expired, are accepted, so the key
    // and claims are right and only the expiry differs below.
    let valid = sign(
        &access_claims(&t, "alice", unix_now() + 600),
        Algorithm::HS256,
        &key,
    );
    let reply = t.get(HEALTH, Some(&valid));
    assert_eq!(reply.status, 200, "hand-minted valid token: {}", reply.text);

    let expired = sign(
        &access_claims(&t, "alice", unix_now() - 30),
        Algorithm::HS256,
        &key,
    );
    assert_refused(&t, Some(&expired), "an expired token");
}

#[test]
fn token_signed_with_another_key_or_algorithm_is_401() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    let claims = access_claims(&t, "alice", unix_now() + 600);

    let mut wrong_key = common::signing_key(t.dir.path());
    for b in &mut wrong_key {
        *b ^= 0x5a;
    }
    let forged = sign(&claims, Algorithm::HS256, &wrong_key);
    assert_refused(&t, Some(&forged), "a token signed with another key");

    // The right key but another HMAC: the algorithm is pinned to HS256.
    let key = common::signing_key(t.dir.path());
    let hs512 = sign(&claims, Algorithm::HS512, &key);
    assert_refused(&t, Some(&hs512), "an HS512 token");
}

#[test]
fn alg_none_token_is_401() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    let claims = access_claims(&t, "alice", unix_now() + 600);
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(claims.to_string().as_bytes());
    let unsigned = format!("{header}.{payload}.");
    assert_refused(&t, Some(&unsigned), "an alg:none token");
}

#[test]
fn base64url_helper_matches_known_vectors() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foob"), "Zm9vYg");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

#[test]
fn refresh_token_used_as_access_token_is_401() {
    let t = TestServer::start();
    t.add_team("acme");
    let (_, refresh) = t.user_with_tokens("alice", "acme");
    assert_refused(&t, Some(&refresh), "a refresh token as access token");
}

#[test]
fn disabled_users_unexpired_tokens_are_refused() {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, refresh) = t.user_with_tokens("alice", "acme");
    let reply = t.get(HEALTH, Some(&access));
    assert_eq!(reply.status, 200, "before disabling: {}", reply.text);

    t.server
        .block_on(t.server.store.disable_user("alice"))
        .expect("user disabled");

    assert_refused(&t, Some(&access), "a disabled user's access token");
    let refreshed = common::refresh(&t.agent, &t.server.url, &refresh);
    assert_eq!(refreshed.status, 401, "{}", refreshed.text);
    let login = t.login("alice", PASSWORD);
    assert_eq!(login.status, 401, "{}", login.text);
    assert_eq!(t.event_count(), 0);
}

#[test]
fn user_removed_from_the_team_gets_403() {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    let project = new_project();
    let first = t.post_batch(&access, &[event(&project)]);
    assert_eq!(first.statuses(), ["success"], "{}", first.text);

    t.server
        .block_on(t.server.store.remove_member("acme", "alice"))
        .expect("member removed");

    let batch = t.post_batch(&access, &[event(&project)]);
    assert_eq!(batch.status, 403, "{}", batch.text);
    let error = batch.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("acme"), "{error}");
    let health = t.get(HEALTH, Some(&access));
    assert_eq!(health.status, 403, "{}", health.text);
    assert!(health.json()["error"].is_string(), "{}", health.text);
    assert_eq!(t.event_count(), 1, "nothing stored after removal");
}
