//! `spec-kitty auth logout` tells the server, which revokes the session's
//! refresh token; offline, the local session still goes.

use crate::common;

use std::process::Output;

use common::{Client, TestServer, code, describe, stderr, stdout};
use serde_json::json;

/// The refresh endpoint's status for `token`, asked directly.
fn refresh_status(server_url: &str, token: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(format!("{server_url}/api/v1/token/refresh/"))
        .header("Content-Type", "application/json")
        .send(json!({"refresh": token}).to_string().as_bytes())
        .expect("the server answers")
        .status()
        .as_u16()
}

fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn logout_revokes_the_refresh_token_on_the_server() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let old_refresh = client.stored("tokens", "refresh");

    let out = client.run(&["auth", "logout"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("Logged out (alice on {})", server.url())),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains("the server ended the session"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
    assert!(!both(&out).contains(&old_refresh), "no token in the output");

    assert_eq!(refresh_status(server.url(), &old_refresh), 401);
}

#[test]
fn logout_with_the_server_stopped_still_removes_the_session_and_says_so() {
    let mut server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let url = server.url().to_string();
    server.stop();

    let out = client.run(&["auth", "logout"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("Logged out (alice on {url}) on this machine")),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("the server could not be told"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
}

#[test]
fn logout_against_a_server_without_the_endpoint_still_removes_the_session() {
    let fake = common::FakeServer::start(|_| common::Canned::new(404, r#"{"error": "Not found"}"#));
    let client = Client::new();
    client.write_credentials(&common::credentials_toml(
        &fake.url,
        "access-token",
        "refresh-token",
        &common::from_now(600),
        &common::from_now(3600),
    ));

    let out = client.run(&["auth", "logout"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("the server could not be told (this server has no revoke endpoint)"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/api/v1/token/revoke/");
    assert!(requests[0].header("authorization").is_none());
}
