//! Log-in, throttling and refresh-token rotation (contract section 1),
//! against the real server over HTTP.

use crate::common;

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
    // No grace window: the retired token fails at once.
    let t = TestServer::start_with(|c| c.limits.refresh_grace = 0);
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

/// Logs in from the loopback address `source` (any 127.x.y.z works on
/// Linux), so tests can play several client addresses.
fn login_from(t: &TestServer, source: [u8; 4], username: &str, password: &str) -> u16 {
    use std::io::{Read, Write};
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::from((source, 0)).into())
        .expect("bind the source address");
    let server: std::net::SocketAddr = t.addr().parse().expect("server address");
    socket.connect(&server.into()).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let body = serde_json::json!({"username": username, "password": password}).to_string();
    let request = format!(
        "POST /api/v1/token/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn parallel_wrong_passwords_never_check_more_passwords_than_the_limit() {
    let t = TestServer::start_with(|c| c.limits.login_max_failures = 3);
    t.add_team("acme");
    t.add_user("alice", "acme");
    let barrier = std::sync::Barrier::new(24);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    t.login("alice", "wrong-password").status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, throttled),
        (3, 21),
        "exactly the limit's worth of passwords is checked: {statuses:?}"
    );
}

#[test]
fn failures_from_one_address_do_not_lock_the_user_out_from_another() {
    let t = TestServer::start_with(|c| c.limits.login_max_failures = 3);
    t.add_team("acme");
    t.add_user("erin", "acme");
    let stranger = [127, 0, 0, 2];
    for attempt in 1..=3 {
        assert_eq!(
            login_from(&t, stranger, "erin", "guess"),
            401,
            "failure {attempt}"
        );
    }
    assert_eq!(login_from(&t, stranger, "erin", "guess"), 429);
    assert_eq!(
        login_from(&t, stranger, "erin", PASSWORD),
        429,
        "the guessing address is throttled"
    );
    assert_eq!(
        login_from(&t, [127, 0, 0, 1], "erin", PASSWORD),
        200,
        "erin, from her own address, still gets in"
    );
}

#[test]
fn guessing_one_user_from_many_addresses_reaches_the_per_user_limit() {
    // One failure per user and address; the per-user limit is 20 times that.
    let t = TestServer::start_with(|c| c.limits.login_max_failures = 1);
    t.add_team("acme");
    t.add_user("erin", "acme");
    for host in 10..30u8 {
        assert_eq!(
            login_from(&t, [127, 0, 0, host], "erin", "guess"),
            401,
            "from 127.0.0.{host}"
        );
    }
    assert_eq!(
        login_from(&t, [127, 0, 0, 30], "erin", PASSWORD),
        429,
        "20 failures from 20 addresses throttle the user everywhere"
    );
}

#[test]
fn the_just_retired_refresh_token_works_again_within_the_grace_window_and_revokes_nothing() {
    let t = TestServer::start_with(|c| c.limits.refresh_grace = 3);
    t.add_team("acme");
    let (_, r1) = t.user_with_tokens("alice", "acme");
    let next = |token: &str| {
        let reply = refresh(&t.agent, &t.server.url, token);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["refresh"]
            .as_str()
            .expect("refresh token")
            .to_string()
    };
    let r2 = next(&r1);
    // The client never got r2 (a lost answer) and presents r1 again.
    let again = refresh(&t.agent, &t.server.url, &r1);
    assert_eq!(again.status, 200, "within the window: {}", again.text);
    let body = again.json();
    assert_eq!(body["team_slug"], "acme");
    let r2b = body["refresh"].as_str().expect("refresh token").to_string();
    let health = t.get("/api/v1/sync/health/", body["access"].as_str());
    assert_eq!(health.status, 200, "{}", health.text);

    // After the window, r1 is a replay again: its family is revoked, and
    // that includes the token handed out in the window (same family).
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(refresh(&t.agent, &t.server.url, &r1).status, 401);
    for token in [&r2, &r2b] {
        assert_eq!(refresh(&t.agent, &t.server.url, token).status, 401);
    }
}
