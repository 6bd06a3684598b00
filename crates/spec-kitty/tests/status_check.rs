//! `spec-kitty sync status --check` against the real server: every outcome
//! of contract section 5, its exit code, its message and its `--json`.

use crate::common;
use spec_kitty_server::config::Tls;

use common::{
    Canned, Client, FakeServer, SilentServer, TestServer, code, credentials_toml, describe,
    from_now, make_credentials_unreadable, parse_time, stdout,
};
use serde_json::Value;
use std::process::Output;

/// The first line of the human output: "<headline>: <next step>".
fn headline(out: &Output) -> String {
    stdout(out).lines().next().unwrap_or_default().to_string()
}

/// `sync status --check`: exit code `exit`, headline `expected`.
#[track_caller]
fn check_says(client: &Client, exit: i32, expected: &str) -> Output {
    let out = client.run(&["sync", "status", "--check"]);
    assert_eq!(code(&out), exit, "{}", describe(&out));
    assert_eq!(headline(&out), expected, "{}", describe(&out));
    out
}

/// `spec-kitty ARGS`: exit code `exit`, a headline starting with `start`.
#[track_caller]
fn check_starts(client: &Client, args: &[&str], exit: i32, start: &str) -> Output {
    let out = client.run(args);
    assert_eq!(code(&out), exit, "{}", describe(&out));
    assert!(headline(&out).starts_with(start), "{}", describe(&out));
    out
}

/// `sync status --check --json [extra]`: exit code `exit`, outcome
/// `outcome`; the JSON.
#[track_caller]
fn json_says(client: &Client, extra: &[&str], exit: i32, outcome: &str) -> Value {
    let (got, json) = client.check_json(extra);
    assert_eq!(got, exit, "{json}");
    assert_eq!(json["outcome"], outcome, "{json}");
    json
}

/// Credentials for `url` written by hand: the access token good for an
/// hour, the refresh token for a day.
fn write_tokens(client: &Client, url: &str, access: &str, refresh: &str) {
    client.write_credentials(&credentials_toml(
        url,
        access,
        refresh,
        &from_now(3600),
        &from_now(86_400),
    ));
}

#[test]
fn valid_token_connects_with_exactly_the_stored_token() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let before = client.credentials_bytes();
    assert_eq!(server.refreshes(), 0);

    let out = check_says(
        &client,
        0,
        "Connected: Server reachable, authentication valid.",
    );
    assert!(
        stdout(&out).contains("alice (team acme)"),
        "{}",
        describe(&out)
    );

    let json = json_says(&client, &[], 0, "connected");
    assert_eq!(json["http_status"], 200, "{json}");
    assert_eq!(json["server"], server.url(), "{json}");
    assert_eq!(json["user"], "alice", "{json}");
    assert_eq!(json["team"], "acme", "{json}");
    assert_eq!(json["refreshed"], false, "{json}");
    assert!(json["latency_ms"].is_u64(), "{json}");

    // The server accepted the token without any refresh, and the file was
    // not touched: the 200 was earned by the stored access token (the
    // server's signing key is random per data dir, so no other token,
    // hard-coded or not, could have passed).
    assert_eq!(server.refreshes(), 0, "no refresh may have happened");
    assert_eq!(client.credentials_bytes(), before, "file unchanged");

    // And the verdict depends on that token: spoil it (expiry still in the
    // future, so the client has no reason to refresh on its own) and the
    // server refuses it, which the client answers with one refresh.
    let access = client.stored("tokens", "access");
    let spoiled = format!("{}x", &access[..access.len() - 1]);
    client.edit_credentials(|doc| doc["tokens"]["access"] = toml_edit::value(spoiled.as_str()));
    let json = json_says(&client, &[], 0, "connected");
    assert_eq!(
        json["refreshed"], true,
        "the spoiled token was refused: {json}"
    );
    assert_eq!(server.refreshes(), 1);
    assert_ne!(client.stored("tokens", "access"), spoiled);
}

/// Records what the client sends: a real server cannot report the headers
/// it received, so a fake stands in for it here.
#[test]
fn probe_posts_an_empty_batch_with_the_stored_token_as_bearer() {
    let fake = FakeServer::start(|_| Canned::new(200, r#"{"results": []}"#));
    let client = Client::new();
    write_tokens(
        &client,
        &fake.url,
        "stored-access-token",
        "stored-refresh-token",
    );

    json_says(&client, &[], 0, "connected");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one probe, no refresh: {requests:?}");
    let probe = &requests[0];
    assert_eq!(probe.method, "POST");
    assert_eq!(probe.path, "/api/v1/events/batch/");
    assert_eq!(
        probe.header("authorization"),
        Some("Bearer stored-access-token")
    );
    assert!(
        probe
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("spec-kitty/")),
        "{probe:?}"
    );
    assert_eq!(probe.json(), serde_json::json!({"events": []}));
}

#[test]
fn expired_access_token_is_refreshed_once_and_stored() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    client.expire_access();
    let (old_access, old_refresh) = (
        client.stored("tokens", "access"),
        client.stored("tokens", "refresh"),
    );

    let out = check_starts(&client, &["sync", "status", "--check"], 0, "Connected");
    assert!(
        stdout(&out).contains("The access token was refreshed."),
        "{}",
        describe(&out)
    );
    assert_eq!(server.refreshes(), 1, "exactly one refresh");

    // The file holds the new pair, with an expiry in the future, still 0600.
    let new_access = client.stored("tokens", "access");
    assert_ne!(new_access, old_access);
    assert_ne!(client.stored("tokens", "refresh"), old_refresh);
    let expires = parse_time(&client.stored("tokens", "access_expires_at"));
    assert!(expires > time::OffsetDateTime::now_utc());
    assert_eq!(Client::mode(&client.credentials_path()), 0o600);
    assert_eq!(Client::mode(&client.dir()), 0o700);
    assert_eq!(client.stored("user", "username"), "alice");
    assert_eq!(client.stored("server", "url"), server.url());

    // The next check uses the refreshed token as it is.
    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 0, "{json}");
    assert_eq!(json["refreshed"], false, "{json}");
    assert_eq!(server.refreshes(), 1);
    assert_eq!(client.stored("tokens", "access"), new_access);
}

#[test]
fn refused_refresh_is_session_expired() {
    // No refresh grace window: the retired token is refused at once, as it
    // is on any server once the window (30 s by default) has passed.
    let server = TestServer::start_with(|c| c.limits.refresh_grace = 0);
    server.add_team("acme");
    server.add_user("alice", "acme");
    let client = Client::new();
    client.login(server.url(), "alice");
    let first_session = client.credentials_text();

    // Another refresh retires the stored refresh token on the server...
    client.expire_access();
    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(server.refreshes(), 1);

    // ...so a file still holding it (a restored backup, say) is refused.
    client.write_credentials(&first_session);
    client.expire_access();
    let before = client.credentials_bytes();
    check_says(
        &client,
        4,
        "Session expired: Run `spec-kitty auth login` to re-authenticate.",
    );
    // Nothing was deleted or rewritten.
    assert_eq!(client.credentials_bytes(), before);

    let json = json_says(&client, &[], 4, "session_expired");
    assert_eq!(json["http_status"], 401, "the server refused it: {json}");
    assert_eq!(server.refreshes(), 1, "no refresh succeeded");
}

#[test]
fn refresh_token_expired_by_the_file_is_session_expired_without_a_request() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    client.edit_credentials(|doc| {
        doc["tokens"]["access_expires_at"] = toml_edit::value(common::PAST);
        doc["tokens"]["refresh_expires_at"] = toml_edit::value(common::PAST);
    });

    let json = json_says(&client, &[], 4, "session_expired");
    // No request was made, so no HTTP status may be claimed.
    assert_eq!(json["http_status"], Value::Null, "{json}");
    assert_eq!(server.refreshes(), 0);
}

#[test]
fn disabled_user_gets_session_expired() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    server.disable_user("alice");
    client.expire_access();

    json_says(&client, &[], 4, "session_expired");
    assert!(client.credentials_path().is_file(), "credentials kept");
}

#[test]
fn no_credentials_is_not_authenticated() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client
        .cmd()
        .args(["sync", "server", server.url()])
        .assert()
        .success();

    check_says(
        &client,
        3,
        "Not authenticated: Run `spec-kitty auth login` to connect.",
    );

    let json = json_says(&client, &[], 3, "not_authenticated");
    assert_eq!(json["http_status"], Value::Null, "no request was made");
    assert!(!client.credentials_path().exists(), "nothing was created");
}

#[test]
fn no_server_and_no_credentials_names_the_server_as_the_first_step() {
    let client = Client::new();
    check_says(
        &client,
        3,
        "Not authenticated: No sync server is configured: set one with `spec-kitty sync server https://sync.example.com`, then run `spec-kitty auth login`.",
    );
}

#[test]
fn stopped_server_is_unreachable() {
    let mut server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    server.stop();

    check_says(
        &client,
        7,
        "Server unreachable: Events will be queued for later sync.",
    );

    // With an expired access token the refresh fails to connect: that is
    // still an unreachable server, never an expired session, and the
    // credentials stay exactly as they were.
    client.expire_access();
    let before = client.credentials_bytes();
    json_says(&client, &[], 7, "unreachable");
    assert_eq!(client.credentials_bytes(), before);
}

#[test]
fn silent_server_is_unreachable_and_the_check_ends() {
    let silent = SilentServer::start();
    let client = Client::new();
    write_tokens(&client, &silent.url, "access-token", "refresh-token");

    // The probe gets no answer. The command returns (the hang guard of
    // `Client::cmd` would fail the test otherwise); no timing is asserted.
    check_starts(
        &client,
        &["sync", "status", "--check", "--timeout", "1"],
        7,
        "Server unreachable",
    );

    // The refresh gets no answer either: unreachable, file untouched.
    client.expire_access();
    let before = client.credentials_bytes();
    json_says(&client, &["--timeout", "1"], 7, "unreachable");
    assert_eq!(client.credentials_bytes(), before);
}

/// A real server that accepts a refresh also accepts the access token it
/// just issued, so "401 on the probe after a good refresh" needs a fake:
/// it refuses every batch and grants every refresh.
#[test]
fn probe_refused_after_refresh_is_authentication_failed() {
    let fake = FakeServer::start(|request| match request.path.as_str() {
        "/api/v1/token/refresh/" => Canned::new(
            200,
            r#"{"access": "fresh-access", "refresh": "fresh-refresh", "access_lifetime": 900, "refresh_lifetime": 604800, "team_slug": "acme"}"#,
        ),
        _ => Canned::new(401, r#"{"error": "Token expired or invalid"}"#),
    });
    let client = Client::new();
    write_tokens(&client, &fake.url, "stale-access", "good-refresh");

    check_says(
        &client,
        5,
        "Authentication failed: Run `spec-kitty auth login`.",
    );

    // Probe, one refresh, one retry with the new token, and no more.
    let requests = fake.requests();
    let seen: Vec<(&str, Option<&str>)> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.header("authorization")))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/api/v1/events/batch/", Some("Bearer stale-access")),
            ("/api/v1/token/refresh/", None),
            ("/api/v1/events/batch/", Some("Bearer fresh-access")),
        ]
    );
    assert_eq!(requests[1].json()["refresh"], "good-refresh");
    assert_eq!(client.stored("tokens", "access"), "fresh-access");
    assert_eq!(client.stored("tokens", "refresh"), "fresh-refresh");

    let json = json_says(&client, &[], 5, "authentication_failed");
    assert_eq!(json["http_status"], 401, "{json}");
}

#[test]
fn removed_member_is_permission_denied() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    server.remove_member("acme", "alice");

    check_says(
        &client,
        6,
        "Permission denied: Check team membership for this project.",
    );

    let json = json_says(&client, &[], 6, "permission_denied");
    assert_eq!(json["http_status"], 403, "{json}");
    assert!(
        json["detail"].as_str().is_some_and(|d| d.contains("acme")),
        "the server's reason is shown: {json}"
    );
    assert_eq!(server.refreshes(), 0, "a 403 is not a token problem");
}

/// A real server cannot be made to answer 500 on demand: a fake does.
#[test]
fn server_error_is_unexpected_status() {
    let fake = FakeServer::start(|_| Canned::new(500, r#"{"error": "database on fire"}"#));
    let client = Client::new();
    write_tokens(&client, &fake.url, "access-token", "refresh-token");

    check_says(&client, 9, "Unexpected response: Server returned HTTP 500.");

    let json = json_says(&client, &[], 9, "unexpected_status");
    assert_eq!(json["http_status"], 500, "{json}");
    assert_eq!(fake.requests().len(), 2, "no refresh on a 500");
}

#[test]
fn a_rate_limited_check_is_throttled() {
    let fake = FakeServer::start(|_| Canned::new(429, r#"{"error": "slow down"}"#));
    let client = Client::new();
    write_tokens(&client, &fake.url, "access-token", "refresh-token");
    let json = json_says(&client, &[], 13, "throttled");
    assert_eq!(json["http_status"], 429, "{json}");
}

/// Older servers refused an empty batch with 400 "No events provided";
/// ours answers 200, so a fake plays the old server.
#[test]
fn legacy_no_events_provided_counts_as_connected() {
    let fake = FakeServer::start(|_| Canned::new(400, r#"{"error": "No events provided"}"#));
    let client = Client::new();
    write_tokens(&client, &fake.url, "access-token", "refresh-token");
    json_says(&client, &[], 0, "connected");
}

#[test]
fn untrusted_certificate_then_trusted_with_ssl_cert_file() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let pki = tempfile::tempdir().expect("cert dir");
    let cert_path = pki.path().join("cert.pem");
    let key_path = pki.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let server = TestServer::with_alice_over(Tls::Files {
        cert: cert_path.clone(),
        key: key_path,
    });
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let client = Client::new();

    // Log-in refuses the unknown certificate with its own exit code.
    let out = client.try_login(server.url(), "alice", common::PASSWORD);
    assert_eq!(code(&out), 8, "{}", describe(&out));
    assert!(
        common::stderr(&out).contains("SSL_CERT_FILE"),
        "the fix is named: {}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());

    // Trusting it through SSL_CERT_FILE, log-in and the check work.
    let out = client.login_trusting(server.url(), Some(&cert_path));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    client.assert_connected_trusting(&cert_path);

    // Without it, the same session's check says the certificate is not
    // trusted: not "unreachable", not an auth problem.
    check_starts(
        &client,
        &["sync", "status", "--check"],
        8,
        "Certificate not trusted",
    );
    json_says(&client, &[], 8, "certificate_untrusted");
}

#[test]
fn corrupt_credentials_are_reported_and_kept() {
    let client = Client::new();
    let garbage = "[tokens\naccess = \"half a file";
    client.write_credentials(garbage);

    let out = check_starts(
        &client,
        &["sync", "status", "--check"],
        11,
        "Credentials invalid",
    );
    assert!(stdout(&out).contains("corrupt"), "{}", describe(&out));

    json_says(&client, &[], 11, "credentials_invalid");
    assert_eq!(client.credentials_bytes(), garbage.as_bytes(), "kept as is");

    // Valid TOML without the required keys is corrupt too, not "absent".
    let partial = "[tokens]\naccess = \"a\"\n";
    client.write_credentials(partial);
    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 11, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tokens.refresh is missing")),
        "{json}"
    );
    assert_eq!(client.credentials_bytes(), partial.as_bytes());
}

#[test]
fn unreadable_credentials_are_not_not_authenticated() {
    let client = Client::new();
    let how = make_credentials_unreadable(&client);

    let out = client.run(&["sync", "status", "--check"]);
    assert_eq!(
        code(&out),
        10,
        "credentials made unreadable as {how}: {}",
        describe(&out)
    );
    assert!(
        headline(&out).starts_with("Credentials unreadable"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout(&out).contains("~/.spec-kitty/credentials"),
        "the file is named: {}",
        describe(&out)
    );

    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 10, "{how}: {json}");
    assert_eq!(json["outcome"], "credentials_unreadable", "{json}");
    assert!(client.credentials_path().exists(), "nothing removed");
}

/// The Python client writes naive UTC timestamps with microseconds, may
/// leave out `team_slug`, and keeps tables of its own: all of it must
/// survive a refresh by this client.
#[test]
fn python_written_credentials_survive_a_refresh() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let access = client.stored("tokens", "access");
    let refresh = client.stored("tokens", "refresh");
    let naive = |offset: time::Duration| {
        (time::OffsetDateTime::now_utc() + offset)
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
            ))
            .expect("naive timestamp")
    };
    let python = |access_expires_at: &str| {
        format!(
            "[tokens]\naccess = \"{access}\"\nrefresh = \"{refresh}\"\naccess_expires_at = \"{access_expires_at}\"\nrefresh_expires_at = \"{}\"\ntoken_type = \"Bearer\"\n\n[user]\nusername = \"alice\"\n\n[server]\nurl = \"{}/\"\n\n[some_table]\nkeep = \"me\"\ncount = 3 # a comment\n",
            naive(time::Duration::days(6)),
            server.url()
        )
    };

    // A naive expiry an hour ahead reads as UTC and valid: no refresh.
    client.write_credentials(&python(&naive(time::Duration::hours(1))));
    let json = json_says(&client, &[], 0, "connected");
    assert_eq!(json["refreshed"], false, "{json}");
    assert_eq!(
        json["server"],
        server.url(),
        "trailing slash dropped: {json}"
    );
    assert_eq!(server.refreshes(), 0);

    // A naive expiry in the past (shaped like the contract's example,
    // 2026-02-12T10:15:00.123456) refreshes, and the rewrite keeps what
    // this client does not know.
    client.write_credentials(&python(&naive(time::Duration::hours(-1))));
    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 0, "{json}");
    assert_eq!(json["refreshed"], true, "{json}");
    assert_eq!(server.refreshes(), 1);

    let text = client.credentials_text();
    assert!(text.contains("count = 3 # a comment"), "{text}");
    let doc = client.credentials();
    assert_eq!(doc["some_table"]["keep"].as_str(), Some("me"));
    assert_eq!(doc["some_table"]["count"].as_integer(), Some(3));
    assert_eq!(doc["tokens"]["token_type"].as_str(), Some("Bearer"));
    assert_ne!(doc["tokens"]["access"].as_str(), Some(access.as_str()));
    assert_eq!(doc["user"]["username"].as_str(), Some("alice"));
    let expires = parse_time(doc["tokens"]["access_expires_at"].as_str().expect("string"));
    assert!(expires > time::OffsetDateTime::now_utc());
    assert_eq!(Client::mode(&client.credentials_path()), 0o600);

    // Still usable afterwards, without another refresh.
    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 0, "{json}");
    assert_eq!(json["refreshed"], false, "{json}");
}

#[test]
fn json_is_one_object_on_stdout_for_every_outcome() {
    // Connected, not authenticated, unreachable and invalid: each prints
    // exactly one JSON object with the documented keys, nothing else.
    let mut server = TestServer::with_alice();
    let client = Client::new();
    let keys = ["outcome", "http_status", "server", "user", "latency_ms"];

    let (_, json) = client.check_json(&[]);
    assert_eq!(json["outcome"], "not_authenticated");
    for key in keys {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }

    client.login(server.url(), "alice");
    let (_, json) = client.check_json(&[]);
    assert_eq!(json["outcome"], "connected");
    for key in keys {
        assert!(!json[key].is_null(), "{key} empty: {json}");
    }

    server.stop();
    let (_, json) = client.check_json(&[]);
    assert_eq!(json["outcome"], "unreachable");

    client.write_credentials("not = [toml");
    let (_, json) = client.check_json(&[]);
    assert_eq!(json["outcome"], "credentials_invalid");
}

#[test]
fn help_lists_every_exit_code() {
    let client = Client::new();
    let out = client.run(&["sync", "status", "--help"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let help = stdout(&out);
    for (code, outcome) in [
        (0, "connected"),
        (3, "not_authenticated"),
        (4, "session_expired"),
        (5, "authentication_failed"),
        (6, "permission_denied"),
        (7, "unreachable"),
        (8, "certificate_untrusted"),
        (9, "unexpected_status"),
        (10, "credentials_unreadable"),
        (11, "credentials_invalid"),
        (12, "credentials_busy"),
        (13, "throttled"),
    ] {
        assert!(
            help.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(&code.to_string()) && words.next() == Some(outcome)
            }),
            "exit code {code} {outcome} not listed:\n{help}"
        );
    }
}
