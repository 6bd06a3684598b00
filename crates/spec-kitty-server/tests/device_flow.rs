//! Device authorization (RFC 8628) over HTTP against the real server:
//! approved, denied, expired, polled too fast, unknown and reused codes,
//! and the page `/device` refusing a form without a session. The page is
//! driven here with its session cookie; `board_browser` drives it in
//! Chromium.

use crate::common;

use serde_json::{Value, json};

use common::{TestServer, no_redirects};

const CODE: &str = "/api/v1/device/code/";
const TOKEN: &str = "/api/v1/device/token/";

fn get_page(t: &TestServer, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = no_redirects().get(t.url(path));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let mut response = request.call().expect("answered");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn decide(t: &TestServer, cookie: Option<&str>, code: &str, decision: &str) -> (u16, String) {
    let mut request = no_redirects()
        .post(t.url("/device"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &t.server.url);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let mut response = request
        .send(format!("code={code}&decision={decision}").as_bytes())
        .expect("answered");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn new_code(t: &TestServer) -> Value {
    let (status, body) = t.post_json(CODE, &json!({"client_name": "spec-kitty on laptop"}));
    assert_eq!(status, 200, "{body}");
    body
}

fn poll(t: &TestServer, code: &Value) -> (u16, Value) {
    t.post_json(TOKEN, &json!({"device_code": code["device_code"]}))
}

fn server() -> TestServer {
    let t = TestServer::start_with(|c| c.limits.device_poll_interval = 1);
    t.add_team("acme");
    t.add_user("alice", "acme");
    t
}

#[test]
fn a_code_has_the_rfc_shape() {
    let t = server();
    let code = new_code(&t);
    let user_code = code["user_code"].as_str().expect("user code");
    assert_eq!(user_code.len(), 9, "{code}");
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .bytes()
            .filter(|b| *b != b'-')
            .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
        "{user_code}"
    );
    assert_eq!(code["verification_uri"], format!("{}/device", t.server.url));
    assert_eq!(
        code["verification_uri_complete"],
        format!("{}/device?code={user_code}", t.server.url)
    );
    assert_eq!(code["expires_in"], 600);
    assert_eq!(code["interval"], 1);
    assert!(code["device_code"].as_str().is_some_and(|c| c.len() == 64));
}

#[test]
fn approved_on_the_page_the_poll_gets_a_session_once() {
    let t = server();
    let code = new_code(&t);
    let user_code = code["user_code"].as_str().expect("user code");
    assert_eq!(
        poll(&t, &code),
        (400, json!({"error": "authorization_pending"}))
    );

    // Not logged in: the page asks to log in, and comes back with the code.
    let (status, html) = get_page(&t, &format!("/device?code={user_code}"), None);
    assert_eq!(status, 200);
    assert!(html.contains("form class=\"login\""), "{html}");
    assert!(
        html.contains(&format!("value=\"/device?code={user_code}\"")),
        "{html}"
    );

    let cookie = t.session_cookie("alice");
    let (status, html) = get_page(
        &t,
        &format!("/device?code={}", user_code.to_lowercase()),
        Some(&cookie),
    );
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("spec-kitty on laptop"),
        "the client is named: {html}"
    );
    assert!(html.contains("127.0.0.1"), "its address is shown: {html}");
    assert!(html.contains("id=\"approve\"") && html.contains("id=\"deny\""));

    let (status, html) = decide(&t, Some(&cookie), user_code, "approve");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Device connected"), "{html}");

    let (status, tokens) = poll(&t, &code);
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["team_slug"], "acme");
    let access = tokens["access"].as_str().expect("access");
    assert_eq!(t.get("/api/v1/sync/health/", Some(access)).status, 200);
    let refreshed = common::refresh(
        &t.agent,
        &t.server.url,
        tokens["refresh"].as_str().expect("refresh"),
    );
    assert_eq!(refreshed.status, 200, "a real session: {}", refreshed.text);

    // Single use: the same device code again is no grant.
    assert_eq!(poll(&t, &code), (400, json!({"error": "invalid_grant"})));
    // And the user code is gone from the page.
    let (status, _) = get_page(&t, &format!("/device?code={user_code}"), Some(&cookie));
    assert_eq!(status, 404);
}

#[test]
fn denied_polled_too_fast_unknown_and_malformed() {
    let t = server();
    let code = new_code(&t);
    let user_code = code["user_code"].as_str().expect("user code").to_string();
    assert_eq!(poll(&t, &code).1, json!({"error": "authorization_pending"}));
    // At once again: faster than the interval.
    assert_eq!(poll(&t, &code), (400, json!({"error": "slow_down"})));

    let cookie = t.session_cookie("alice");
    let (status, html) = decide(&t, Some(&cookie), &user_code, "deny");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Request denied"), "{html}");
    assert_eq!(poll(&t, &code), (400, json!({"error": "access_denied"})));
    // A decided request cannot be decided again.
    let (status, _) = decide(&t, Some(&cookie), &user_code, "approve");
    assert_eq!(status, 404);
    assert_eq!(poll(&t, &code), (400, json!({"error": "access_denied"})));

    assert_eq!(
        t.post_json(TOKEN, &json!({"device_code": "0".repeat(64)})),
        (400, json!({"error": "invalid_grant"}))
    );
    assert_eq!(
        t.post_json(TOKEN, &json!({"nothing": 1})),
        (400, json!({"error": "invalid_request"}))
    );
}

#[test]
fn an_expired_code_says_so() {
    let t = server();
    let code = new_code(&t);
    // Ten minutes are not waited for: the row's expiry is moved back, as
    // time would.
    let device_hash =
        spec_kitty_server::auth::device::hash(code["device_code"].as_str().expect("code"));
    let sql = "UPDATE device_codes SET expires_at = 1 WHERE device_hash = ?1";
    if std::env::var(common::BACKEND_ENV).ok().as_deref() == Some("postgres") {
        return; // the SQLite file is edited; the rule is the same code for both
    }
    let conn = rusqlite::Connection::open(t.dir.path().join("spec-kitty.db")).expect("db");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("timeout");
    assert_eq!(conn.execute(sql, [&device_hash]).expect("updated"), 1);
    assert_eq!(poll(&t, &code), (400, json!({"error": "expired_token"})));
    let cookie = t.session_cookie("alice");
    let (status, _) = get_page(
        &t,
        &format!(
            "/device?code={}",
            code["user_code"].as_str().expect("user code")
        ),
        Some(&cookie),
    );
    assert_eq!(status, 404, "an expired code is not offered for approval");
}

#[test]
fn the_page_refuses_a_form_without_a_session_and_throttles_guessing() {
    let t = server();
    let code = new_code(&t);
    let user_code = code["user_code"].as_str().expect("user code");
    let (status, html) = decide(&t, None, user_code, "approve");
    assert_eq!(status, 401, "{html}");
    assert!(html.contains("Log in first"), "{html}");
    assert_eq!(
        poll(&t, &code).1,
        json!({"error": "authorization_pending"}),
        "nothing changed"
    );

    // Wrong codes count; after the limit, even the right one waits.
    let cookie = t.session_cookie("alice");
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(get_page(&t, "/device?code=BBBB-BBBB", Some(&cookie)).0);
    }
    assert!(statuses[..10].iter().all(|s| *s == 404), "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
    let (status, html) = get_page(&t, &format!("/device?code={user_code}"), Some(&cookie));
    assert_eq!(status, 429, "{html}");
    assert!(html.contains("Too many wrong codes"), "{html}");
}
