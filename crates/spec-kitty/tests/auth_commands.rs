//! `spec-kitty auth login|logout|status|token` against the real server.

use crate::common;

use std::process::Output;

use common::{
    Client, PASSWORD, TestServer, code, describe, make_credentials_unreadable, one_json_object,
    parse_time, password_login, stderr, stdout,
};

/// `auth login --force` as `username`, which must succeed and store their
/// session.
#[track_caller]
fn force_login(client: &Client, server_url: &str, username: &str) -> Output {
    let out = password_login(
        &mut client.cmd(),
        server_url,
        username,
        PASSWORD,
        &["--force"],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(client.stored("user", "username"), username);
    out
}

#[test]
fn login_stores_a_private_session_and_records_the_server() {
    let server = TestServer::with_alice();
    let client = Client::new();
    let out = client.try_login(server.url(), "alice", PASSWORD);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("Logged in to {} as alice (team acme).", server.url())
    );
    assert!(
        !stdout(&out).contains(PASSWORD) && !stderr(&out).contains(PASSWORD),
        "the password is never echoed"
    );

    assert_eq!(Client::mode(&client.dir()), 0o700);
    assert_eq!(Client::mode(&client.credentials_path()), 0o600);
    assert_eq!(client.stored("user", "username"), "alice");
    assert_eq!(client.stored("user", "team_slug"), "acme");
    assert_eq!(client.stored("server", "url"), server.url());
    assert!(!client.stored("tokens", "access").is_empty());
    assert!(!client.stored("tokens", "refresh").is_empty());
    let now = time::OffsetDateTime::now_utc();
    assert!(parse_time(&client.stored("tokens", "access_expires_at")) > now);
    assert!(parse_time(&client.stored("tokens", "refresh_expires_at")) > now);

    // With no server configured before, the log-in recorded this one.
    let out = client.run(&["sync", "server"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), server.url());
}

#[test]
fn login_without_flag_uses_the_configured_server() {
    let server = TestServer::with_alice();
    let client = Client::new();

    // `auth login` without `--server`.
    let login = || {
        client
            .cmd()
            .args(["auth", "login", "--username", "alice", "--password-stdin"])
            .write_stdin(format!("{PASSWORD}\n"))
            .output()
            .expect("runs")
    };

    // Nothing configured: say how to configure it.
    let out = login();
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("spec-kitty sync server https://"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());

    client
        .cmd()
        .args(["sync", "server", &format!("{}/", server.url())])
        .assert()
        .success();
    let out = login();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(client.stored("server", "url"), server.url());
}

#[test]
fn wrong_password_is_refused_clearly() {
    let server = TestServer::with_alice();
    let client = Client::new();
    let out = client.try_login(server.url(), "alice", "not-the-password");
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert!(
        stderr(&out).contains("wrong username or password"),
        "{}",
        describe(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert!(!client.credentials_path().exists(), "no session stored");

    // An unknown user gets the very same answer.
    let out = client.try_login(server.url(), "mallory", "not-the-password");
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert!(stderr(&out).contains("wrong username or password"));
}

#[test]
fn throttled_login_shows_the_wait() {
    let server = TestServer::start_with(|config| config.limits.login_max_failures = 2);
    server.add_team("acme");
    server.add_user("alice", "acme");
    let client = Client::new();
    for _ in 0..2 {
        let out = client.try_login(server.url(), "alice", "wrong-password");
        assert_eq!(code(&out), 5, "{}", describe(&out));
    }

    // Even the right password now waits; the message says for how long.
    let out = client.try_login(server.url(), "alice", PASSWORD);
    assert_eq!(
        code(&out),
        13,
        "throttled has its own code: {}",
        describe(&out)
    );
    let message = stderr(&out);
    assert!(message.contains("too many"), "{}", describe(&out));
    let wait = message
        .split("wait ")
        .nth(1)
        .and_then(|rest| rest.split(" seconds").next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        wait.is_some_and(|secs| secs > 0),
        "the wait in seconds is shown: {}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
}

#[test]
fn login_to_a_stopped_server_says_unreachable() {
    let mut server = TestServer::with_alice();
    let url = server.url().to_string();
    server.stop();
    let client = Client::new();
    let out = client.try_login(&url, "alice", PASSWORD);
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert!(
        stderr(&out).contains("cannot connect"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
}

#[test]
fn already_logged_in_then_force() {
    let server = TestServer::with_alice();
    server.add_user("bob", "acme");
    let client = Client::new();
    client.login(server.url(), "alice");
    let first = client.credentials_bytes();

    // Same user again: nothing to do, nothing changed, no password used.
    let out = client.try_login(server.url(), "alice", PASSWORD);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Already logged in as alice"),
        "{}",
        describe(&out)
    );
    assert_eq!(client.credentials_bytes(), first);

    // Another user: refused, with the way out named.
    let out = client.try_login(server.url(), "bob", PASSWORD);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("--force"), "{}", describe(&out));
    assert_eq!(client.credentials_bytes(), first);

    // --force logs in again; tables of other tools in the file survive.
    client.edit_credentials(|doc| {
        doc["other_tool"] = toml_edit::table();
        doc["other_tool"]["setting"] = toml_edit::value("kept");
    });
    force_login(&client, server.url(), "bob");
    assert_eq!(client.stored("other_tool", "setting"), "kept");
    assert_eq!(Client::mode(&client.credentials_path()), 0o600);
}

#[test]
fn force_login_over_corrupt_credentials_keeps_a_copy() {
    let server = TestServer::with_alice();
    let client = Client::new();
    let garbage = "[tokens\nthis is not toml";
    client.write_credentials(garbage);
    // Readable by others, as a file copied in by hand may be.
    std::fs::set_permissions(
        client.credentials_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod 644");

    // Without --force the corrupt file is reported and kept.
    let out = client.try_login(server.url(), "alice", PASSWORD);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", describe(&out));
    assert_eq!(client.credentials_bytes(), garbage.as_bytes());

    let out = force_login(&client, server.url(), "alice");
    let backups: Vec<_> = std::fs::read_dir(client.dir())
        .expect("list ~/.spec-kitty")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("credentials.corrupt-")
        })
        .collect();
    assert_eq!(backups.len(), 1, "one backup of the corrupt file");
    // Named with a readable UTC time: credentials.corrupt-YYYYMMDDTHHMMSSZ.
    let name = backups[0].file_name().to_string_lossy().into_owned();
    let stamp = name.trim_start_matches("credentials.corrupt-");
    assert_eq!(stamp.len(), 16, "{name}");
    assert!(
        stamp.as_bytes()[8] == b'T'
            && stamp.ends_with('Z')
            && stamp[..8]
                .bytes()
                .chain(stamp[9..15].bytes())
                .all(|b| b.is_ascii_digit())
            && stamp.starts_with("20"),
        "{name}"
    );
    assert!(
        stderr(&out).contains(&name),
        "the backup is named: {}",
        describe(&out)
    );
    assert_eq!(
        std::fs::read(backups[0].path()).expect("read backup"),
        garbage.as_bytes()
    );
    assert_eq!(
        Client::mode(&backups[0].path()),
        0o600,
        "the kept copy may hold secrets"
    );
}

#[test]
fn logout_removes_the_session_then_says_not_logged_in() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");

    let out = client.run(&["auth", "logout"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "Logged out (alice on {}); the server ended the session.",
            server.url()
        )
    );
    assert!(!client.credentials_path().exists());

    let out = client.run(&["auth", "logout"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains("Not logged in"), "{}", describe(&out));

    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
}

#[test]
fn logout_that_cannot_remove_is_an_error() {
    // `credentials` as a directory cannot be removed as a file, by root
    // either: the logout must fail, never report a false success.
    let client = Client::new();
    std::fs::create_dir_all(client.credentials_path()).expect("credentials as a directory");
    let out = client.run(&["auth", "logout"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("credentials"), "{}", describe(&out));
    assert!(!stdout(&out).contains("Logged out"), "{}", describe(&out));
    assert!(client.credentials_path().exists());
}

#[test]
fn status_reports_the_session_without_network() {
    let mut server = TestServer::with_alice();
    let client = Client::new();

    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stdout(&out).contains("Not logged in"), "{}", describe(&out));
    let out = client.run(&["auth", "status", "--json"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["logged_in"], false, "{json}");
    assert_eq!(json["outcome"], "not_authenticated", "{json}");

    client.login(server.url(), "alice");
    let url = server.url().to_string();
    // No network is needed: the server is gone and status still answers.
    server.stop();

    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Logged in to {url} as alice (team acme)")),
        "{text}"
    );
    assert!(text.contains("Access token:  valid for"), "{text}");
    assert!(text.contains("Refresh token: valid for"), "{text}");

    let out = client.run(&["auth", "status", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["logged_in"], true, "{json}");
    assert_eq!(json["user"], "alice", "{json}");
    assert_eq!(json["team"], "acme", "{json}");
    assert_eq!(json["server"], url, "{json}");
    assert_eq!(json["access_token"]["valid"], true, "{json}");
    assert!(
        json["access_token"]["expires_in_secs"]
            .as_i64()
            .is_some_and(|s| s > 0),
        "{json}"
    );
    assert_eq!(json["refresh_token"]["valid"], true, "{json}");

    // An expired access token with a good refresh token is still a usable
    // session.
    client.expire_access();
    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("refreshed automatically on next use"),
        "{}",
        describe(&out)
    );
    let json = one_json_object(&client.run(&["auth", "status", "--json"]));
    assert_eq!(json["access_token"]["valid"], false, "{json}");
    assert_eq!(json["logged_in"], true, "{json}");

    // An expired refresh token is an expired session.
    client.edit_credentials(|doc| {
        doc["tokens"]["refresh_expires_at"] = toml_edit::value(common::PAST);
    });
    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Session expired"),
        "{}",
        describe(&out)
    );
    let out = client.run(&["auth", "status", "--json"]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    assert_eq!(one_json_object(&out)["logged_in"], false);
}

#[test]
fn status_of_broken_credentials_files() {
    let client = Client::new();
    client.write_credentials("[user\n");
    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", describe(&out));
    let out = client.run(&["auth", "status", "--json"]);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["outcome"], "credentials_invalid", "{json}");
    assert_eq!(client.credentials_bytes(), b"[user\n", "kept as is");

    let client = Client::new();
    let how = make_credentials_unreadable(&client);
    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 10, "{how}: {}", describe(&out));
    assert!(
        stderr(&out).contains("~/.spec-kitty/credentials"),
        "{}",
        describe(&out)
    );
    let out = client.run(&["auth", "status", "--json"]);
    assert_eq!(code(&out), 10, "{how}: {}", describe(&out));
    assert_eq!(one_json_object(&out)["outcome"], "credentials_unreadable");
}

#[test]
fn token_prints_only_the_token() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");

    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1, "exactly one line: {printed:?}");
    assert_eq!(printed, format!("{}\n", client.stored("tokens", "access")));
    assert!(stderr(&out).is_empty(), "{}", describe(&out));
    assert_eq!(server.refreshes(), 0);
}

#[test]
fn token_refreshes_an_expired_one() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let old = client.stored("tokens", "access");
    client.expire_access();

    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1, "exactly one line: {printed:?}");
    let token = printed.trim_end_matches('\n');
    assert_ne!(token, old);
    assert_eq!(token, client.stored("tokens", "access"), "the stored one");
    assert_eq!(server.refreshes(), 1);
    assert!(
        parse_time(&client.stored("tokens", "access_expires_at")) > time::OffsetDateTime::now_utc()
    );

    // The printed token is one the server accepts: the check now passes
    // without refreshing again.
    let (exit, json) = client.check_json(&[]);
    assert_eq!(exit, 0, "{json}");
    assert_eq!(json["refreshed"], false, "{json}");
}

#[test]
fn token_failures_print_nothing_on_stdout() {
    // Not logged in.
    let client = Client::new();
    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert!(stderr(&out).contains("auth login"), "{}", describe(&out));

    // Expired access token, server down: unreachable, file untouched.
    let mut server = TestServer::with_alice();
    client.login(server.url(), "alice");
    client.expire_access();
    server.stop();
    let before = client.credentials_bytes();
    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert_eq!(client.credentials_bytes(), before);

    // Corrupt file.
    client.write_credentials("garbage");
    let out = client.run(&["auth", "token"]);
    assert_eq!(code(&out), 11, "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
}

#[test]
fn status_of_an_expired_session_gives_one_verdict_first() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    // Ten seconds left: inside the safety margin, so already expired.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(10);
    client.edit_credentials(|doc| {
        doc["tokens"]["refresh_expires_at"] =
            toml_edit::value(spec_kitty_protocol::timestamp::format(soon));
    });
    let out = client.run(&["auth", "status"]);
    assert_eq!(code(&out), 4, "{}", describe(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Session expired: run `spec-kitty auth login`"),
        "{text}"
    );
    assert!(first.contains("as alice"), "{text}");
    assert!(!text.contains("Logged in"), "one verdict: {text}");
    assert_eq!(
        text.matches("expired").count(),
        2,
        "the verdict and the refresh token's note: {text}"
    );
    assert!(text.contains("counted as expired"), "{text}");
}

#[test]
fn a_user_removed_from_their_team_logs_in_without_it() {
    let server = TestServer::with_alice();
    server.remove_member("acme", "alice");
    let client = Client::new();
    let out = client.try_login(server.url(), "alice", PASSWORD);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("Logged in to {} as alice.", server.url()),
        "no team claimed"
    );
}
