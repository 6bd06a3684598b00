//! `SPEC_KITTY_TOKEN`: a personal access token from the environment, made
//! by the real server, used by the real binary. The credentials file is
//! neither read nor written nor locked, the token is never printed except
//! by `auth token`, and a revoked token is reported as such.

use crate::common;
use crate::queue_support;

use common::{Client, TestServer, code, describe, one_json_object, stderr, stdout};
use queue_support::{Home, events, project};
use spec_kitty_server::admin;

/// A personal access token for `user`, as `spec-kitty-server token create`
/// makes it.
fn token_for(server: &TestServer, user: &str) -> admin::CreatedToken {
    server
        .server
        .block_on(admin::create_token(&server.server.store, user, "ci", None))
        .expect("token made")
}

fn revoke(server: &TestServer, id: i64) {
    server
        .server
        .block_on(admin::revoke_token(&server.server.store, id))
        .expect("revoked");
}

/// `spec-kitty ARGS` in `home` with the token and the server in the
/// environment.
fn run_with(home: &Home, token: &str, url: &str, args: &[&str]) -> std::process::Output {
    home.cmd()
        .env("SPEC_KITTY_TOKEN", token)
        .env("SPEC_KITTY_SERVER_URL", url)
        .args(args)
        .output()
        .expect("spec-kitty runs")
}

#[test]
fn sync_now_with_the_token_delivers_and_no_credentials_file_exists_before_or_after() {
    let server = TestServer::with_alice();
    let created = token_for(&server, "alice");
    let home = Home::new();
    let project = project();
    home.import(&events(&project, 3));
    let lock = home.dir().join("credentials.lock");
    assert!(!home.credentials_path().exists() && !lock.exists());

    let out = run_with(&home, &created.token, server.url(), &["sync", "now"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).contains("Synced: 3"), "{}", describe(&out));
    assert_eq!(server.event_count(), 3);
    assert_eq!(home.depth(), 0, "delivered events leave the queue");
    assert!(!home.credentials_path().exists(), "no credentials written");
    assert!(!lock.exists(), "the credentials lock was never taken");
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(&created.token), "the token is never printed");
    }
    // Nor with an HTTP trace.
    home.import(&events(&project, 1));
    let traced = run_with(&home, &created.token, server.url(), &["-vv", "sync", "now"]);
    assert_eq!(code(&traced), 0, "{}", describe(&traced));
    assert!(
        !stderr(&traced).contains(&created.token[4..]),
        "{}",
        describe(&traced)
    );
}

#[test]
fn status_check_and_auth_status_say_where_the_token_came_from_and_never_show_it() {
    let server = TestServer::with_alice();
    let created = token_for(&server, "alice");
    let home = Home::new();

    let out = run_with(
        &home,
        &created.token,
        server.url(),
        &["sync", "status", "--check"],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Connected:"), "{text}");
    assert!(text.contains("Token:   from SPEC_KITTY_TOKEN"), "{text}");
    assert!(!text.contains(&created.token), "{text}");

    let out = run_with(
        &home,
        &created.token,
        server.url(),
        &["sync", "status", "--check", "--json"],
    );
    let json = one_json_object(&out);
    assert_eq!(json["outcome"], "connected", "{json}");
    assert_eq!(json["token_source"], "SPEC_KITTY_TOKEN", "{json}");
    assert_eq!(json["server"], server.url(), "{json}");
    assert!(!json.to_string().contains(&created.token));

    let out = run_with(&home, &created.token, server.url(), &["auth", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Using the token in SPEC_KITTY_TOKEN"),
        "{text}"
    );
    assert!(text.contains("SPEC_KITTY_SERVER_URL"), "{text}");
    assert!(!text.contains(&created.token), "{text}");

    // Printed only when asked for.
    let out = run_with(&home, &created.token, server.url(), &["auth", "token"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), created.token);
    assert!(!home.credentials_path().exists());
}

#[test]
fn a_revoked_token_is_refused_and_the_events_stay_queued() {
    let server = TestServer::with_alice();
    let created = token_for(&server, "alice");
    revoke(&server, created.id);
    let home = Home::new();
    home.import(&events(&project(), 2));

    let out = run_with(&home, &created.token, server.url(), &["sync", "now"]);
    assert_eq!(code(&out), 5, "authentication failed: {}", describe(&out));
    assert!(
        stderr(&out).contains("refused the token in SPEC_KITTY_TOKEN")
            || stdout(&out).contains("refused the token in SPEC_KITTY_TOKEN"),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 2, "events kept");
    assert_eq!(server.event_count(), 0);

    let out = run_with(
        &home,
        &created.token,
        server.url(),
        &["sync", "status", "--check"],
    );
    assert_eq!(code(&out), 5, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Authentication failed:"), "{text}");
    assert!(text.contains("SPEC_KITTY_TOKEN"), "{text}");
    assert!(!home.credentials_path().exists());
}

#[test]
fn a_person_s_session_on_the_same_machine_is_left_alone() {
    let server = TestServer::with_alice();
    server.add_user("ci-bot", "acme");
    let created = token_for(&server, "ci-bot");
    let client = Client::new();
    client.login(server.url(), "alice");
    let before = client.credentials_bytes();
    let home = Home::in_dir(client.machine.home);
    home.import(&events(&project(), 1));

    let out = run_with(&home, &created.token, server.url(), &["sync", "now"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(server.event_count(), 1);
    // Logging out would delete alice's session: refused while the token is set.
    let out = run_with(&home, &created.token, server.url(), &["auth", "logout"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("SPEC_KITTY_TOKEN is set"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        std::fs::read(home.credentials_path()).expect("still there"),
        before,
        "alice's credentials file is unchanged"
    );
}

#[test]
fn a_token_without_a_server_says_how_to_name_one() {
    let home = Home::new();
    let out = home
        .cmd()
        .env("SPEC_KITTY_TOKEN", "skp_whatever")
        .env_remove("SPEC_KITTY_SERVER_URL")
        .args(["sync", "status", "--check"])
        .output()
        .expect("spec-kitty runs");
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stdout(&out).contains("SPEC_KITTY_SERVER_URL"),
        "{}",
        describe(&out)
    );
}

#[test]
fn sync_status_shows_the_token_not_the_session_of_the_file() {
    let server = TestServer::with_alice();
    server.add_user("ci-bot", "acme");
    let created = token_for(&server, "ci-bot");
    let client = Client::new();
    client.login(server.url(), "alice");
    let home = Home::in_dir(client.machine.home);

    let out = run_with(&home, &created.token, server.url(), &["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("the token in SPEC_KITTY_TOKEN (server from SPEC_KITTY_SERVER_URL)"),
        "{text}"
    );
    assert!(
        !text.contains("alice"),
        "the file's session is not shown: {text}"
    );
    assert!(!text.contains(&created.token), "never the token: {text}");

    let out = run_with(
        &home,
        &created.token,
        server.url(),
        &["sync", "status", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["auth"]["state"], "token", "{json}");
    assert_eq!(json["auth"]["token_source"], "SPEC_KITTY_TOKEN", "{json}");
    assert_eq!(json["server_url"], server.url(), "{json}");
    assert!(!json.to_string().contains(&created.token), "{json}");

    // Without the variable, the file's session again.
    let out = home.cmd().args(["sync", "status"]).output().expect("runs");
    assert!(stdout(&out).contains("alice"), "{}", describe(&out));
}
