//! Log-in, throttling and refresh-token rotation (contract section 1),
//! against the real server over HTTP.

mod common;

use common::{PASSWORD, TestServer, login_ok, refresh};

#[test]
fn login_with_good_credentials_returns_tokens_lifetimes_and_team() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");

    let reply = t.login("alice", PASSWORD);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    for key in ["access", "refresh"] {
        let token = body[key].as_str().unwrap_or_default();
        assert_eq!(token.split('.').count(), 3, "{key} is a JWT: {token}");
    }
    assert_ne!(body["access"], body["refresh"]);
    assert_eq!(body["access_lifetime"], 900);
    assert_eq!(body["refresh_lifetime"], 604_800);
    assert_eq!(body["team_slug"], "acme");
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_401() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");

    let wrong_password = t.login("alice", "not-the-password");
    let unknown_user = t.login("mallory", "not-the-password");
    assert_eq!(wrong_password.status, 401, "{}", wrong_password.text);
    assert_eq!(unknown_user.status, 401, "{}", unknown_user.text);
    assert_eq!(
        wrong_password.text, unknown_user.text,
        "the body must not reveal which usernames exist"
    );
    assert!(
        wrong_password.json()["error"].is_string(),
        "{}",
        wrong_password.text
    );
}

#[test]
fn malformed_login_body_is_400_with_details() {
    let t = TestServer::start();
    let mut response = t
        .agent
        .post(t.url("/api/v1/token/"))
        .header("Content-Type", "application/json")
        .send(&b"{\"username\": \"alice\""[..])
        .expect("server answers");
    assert_eq!(response.status().as_u16(), 400);
    let text = response.body_mut().read_to_string().expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
    assert!(body["details"].is_string(), "{text}");
}

#[test]
fn too_many_failures_throttle_even_the_right_password_with_retry_after() {
    let t = TestServer::start_with(|c| c.limits.login_max_failures = 3);
    t.add_team("acme");
    t.add_user("alice", "acme");
    t.add_user("bob", "acme");

    for attempt in 1..=3 {
        let reply = t.login("alice", "wrong-password");
        assert_eq!(reply.status, 401, "failure {attempt}: {}", reply.text);
    }
    let reply = t.login("alice", PASSWORD);
    assert_eq!(
        reply.status, 429,
        "the 4th attempt is throttled even with the right password: {}",
        reply.text
    );
    let retry_after = reply
        .retry_after
        .as_deref()
        .expect("429 carries a Retry-After header");
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is a number of seconds: {retry_after:?}"));
    assert!(
        (1..=900).contains(&seconds),
        "Retry-After within the window: {seconds}"
    );
    assert!(reply.json()["error"].is_string(), "{}", reply.text);

    // Throttling is per username (the address allows more), so another user
    // from the same address still gets in.
    let other = t.login("bob", PASSWORD);
    assert_eq!(other.status, 200, "{}", other.text);
}

#[test]
fn refresh_rotates_and_the_old_refresh_token_is_refused() {
    let t = TestServer::start();
    t.add_team("acme");
    let (_, first) = t.user_with_tokens("alice", "acme");

    let reply = refresh(&t.agent, &t.server.url, &first);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    let second = body["refresh"]
        .as_str()
        .expect("our server always rotates")
        .to_string();
    let access = body["access"].as_str().expect("new access token");
    assert_ne!(second, first, "a new refresh token");
    assert_eq!(body["access_lifetime"], 900);
    assert_eq!(body["team_slug"], "acme");
    let health = t.get("/api/v1/sync/health/", Some(access));
    assert_eq!(
        health.status, 200,
        "the new access token works: {}",
        health.text
    );

    let again = refresh(&t.agent, &t.server.url, &first);
    assert_eq!(again.status, 401, "the retired token fails: {}", again.text);
    assert!(again.json()["error"].is_string(), "{}", again.text);
}

#[test]
fn presenting_a_retired_refresh_token_revokes_its_whole_family() {
    let t = TestServer::start();
    t.add_team("acme");
    let (_, r1) = t.user_with_tokens("alice", "acme");
    // A second, independent session of the same user.
    let (_, other_session) = login_ok(&t.agent, &t.server.url, "alice", PASSWORD);

    let next = |token: &str| {
        let reply = refresh(&t.agent, &t.server.url, token);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["refresh"]
            .as_str()
            .expect("rotated refresh token")
            .to_string()
    };
    let r2 = next(&r1);
    let r3 = next(&r2);

    // r1 was retired when r2 was issued: presenting it again is a replay.
    let replay = refresh(&t.agent, &t.server.url, &r1);
    assert_eq!(replay.status, 401, "{}", replay.text);
    // ...so the newest token of that family, never used, is dead too.
    let newest = refresh(&t.agent, &t.server.url, &r3);
    assert_eq!(
        newest.status, 401,
        "the newer token of a replayed family must stop working: {}",
        newest.text
    );
    // The other session is another family and lives on.
    let other = refresh(&t.agent, &t.server.url, &other_session);
    assert_eq!(other.status, 200, "{}", other.text);
}

#[test]
fn garbage_refresh_tokens_are_401() {
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    for token in ["", "not-a-jwt", access.as_str()] {
        let reply = refresh(&t.agent, &t.server.url, token);
        assert_eq!(reply.status, 401, "refresh with {token:?}: {}", reply.text);
    }
}
