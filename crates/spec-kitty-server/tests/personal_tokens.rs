//! Personal access tokens (`skp_...`): made by the real binary's
//! `token create`, accepted as a bearer on the batch, probe and read
//! endpoints, never on refresh, and refused at once when revoked, expired,
//! malformed, or when their user is disabled or leaves the team; on
//! PostgreSQL, on every instance.

use crate::common;

use std::path::Path;

use serde_json::{Value, json};
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};

use common::{PASSWORD, TestServer, cli, event, new_project};

const HEALTH: &str = "/api/v1/sync/health/";
const PROJECTS: &str = "/api/v1/projects/";
const REFUSED: &str = "Token expired or invalid";

fn run_ok(dir: &Path, args: &[&str]) -> (String, String) {
    let output = cli(dir, args).assert().success().get_output().clone();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the contract's 401 on the probe, a batch and a read.
fn assert_refused(t: &TestServer, token: &str, what: &str) {
    for reply in [
        t.get(HEALTH, Some(token)),
        t.post_batch(token, &[event(&new_project())]),
        t.get(PROJECTS, Some(token)),
    ] {
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
        assert_eq!(reply.json(), json!({"error": REFUSED}), "{what}");
    }
    assert_eq!(t.event_count(), 0, "{what}: nothing stored");
}

/// A token for `user` made through the store, as `token create` does.
fn token_for(t: &TestServer, user: &str, days: Option<u32>) -> admin::CreatedToken {
    t.server
        .block_on(admin::create_token(&t.server.store, user, "ci", days))
        .expect("token made")
}

#[test]
fn token_create_prints_it_once_it_works_and_token_revoke_ends_it() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let d = dir.path();
    run_ok(d, &["team", "add", "acme"]);
    cli(
        d,
        &["user", "add", "alice", "--team", "acme", "--password-stdin"],
    )
    .write_stdin(format!("{PASSWORD}\n"))
    .assert()
    .success();
    let (stdout, stderr) = run_ok(
        d,
        &[
            "token",
            "create",
            "Alice",
            "--name",
            "ci",
            "--expires",
            "30",
        ],
    );
    let token = stdout.trim().to_string();
    assert!(
        token.starts_with("skp_"),
        "the token alone on stdout: {stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stderr.contains("shown only now") && stderr.contains("'ci'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&token),
        "the note does not repeat the token"
    );

    // Only a hash is stored.
    let conn = rusqlite::Connection::open(d.join("spec-kitty.db")).expect("db");
    let stored: String = conn
        .query_row("SELECT token_hash FROM access_tokens", [], |r| r.get(0))
        .expect("one token");
    assert_ne!(stored, token);
    assert!(
        !stored.contains(&token[4..]),
        "no part of the token is stored"
    );

    let (list, _) = run_ok(d, &["token", "list"]);
    assert!(list.starts_with("ID  USER   NAME  CREATED"), "{list}");
    assert!(
        list.contains("alice") && list.contains("never") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains("skp_"), "{list}");

    let server = BackgroundServer::start(&ServerConfig::for_data_dir(d)).expect("server starts");
    let agent = common::agent();
    let health = common::get(&agent, &format!("{}{HEALTH}", server.url), Some(&token));
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json()["team_slug"], "acme");
    let batch = common::post_batch(&agent, &server.url, &token, &[event(&new_project())]);
    assert_eq!(batch.status, 200, "{}", batch.text);
    assert_eq!(batch.statuses(), ["success"]);
    let projects = common::get(&agent, &format!("{}{PROJECTS}", server.url), Some(&token));
    assert_eq!(projects.status, 200, "{}", projects.text);
    // Never on refresh: it is no refresh token.
    let refresh = common::refresh(&agent, &server.url, &token);
    assert_eq!(refresh.status, 401, "{}", refresh.text);

    let (list, _) = run_ok(d, &["token", "list", "alice", "--json"]);
    let listed: Value = serde_json::from_str(&list).expect("json");
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0]["last_used_at"].is_i64(), "use recorded: {listed}");
    let id = listed[0]["id"].as_i64().expect("id").to_string();

    let (out, _) = run_ok(d, &["token", "revoke", &id]);
    assert!(out.contains("Revoked token"), "{out}");
    let health = common::get(&agent, &format!("{}{HEALTH}", server.url), Some(&token));
    assert_eq!(health.status, 401, "revoked at once: {}", health.text);
    let (list, _) = run_ok(d, &["token", "list"]);
    assert!(list.contains("revoked"), "{list}");
    let again = cli(d, &["token", "revoke", &id])
        .assert()
        .failure()
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no live token"),
        "a second revoke says so"
    );
}

#[test]
fn token_create_refuses_bad_input_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let d = dir.path();
    run_ok(d, &["team", "add", "acme"]);
    for args in [
        &["token", "create", "nobody", "--name", "ci"][..],
        &[
            "token",
            "create",
            "nobody",
            "--name",
            "ci",
            "--expires",
            "0",
        ][..],
    ] {
        let out = cli(d, args).assert().failure().get_output().clone();
        assert!(out.stdout.is_empty(), "no token printed for {args:?}");
    }
    let (list, _) = run_ok(d, &["token", "list"]);
    assert!(list.starts_with("No tokens yet"), "{list}");
}

#[test]
fn malformed_unknown_and_flipped_tokens_are_refused() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    let real = token_for(&t, "alice", None).token;
    let mut flipped = real.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let unknown = spec_kitty_server::auth::personal::generate().expect("random");
    for (what, token) in [
        ("a flipped character", flipped),
        ("the wrong prefix", real.replacen("skp_", "skx_", 1)),
        ("a cut token", real[..real.len() - 2].to_string()),
        ("a token never issued", unknown),
    ] {
        assert_refused(&t, &token, what);
    }
    assert_eq!(t.get(HEALTH, Some(&real)).status, 200, "the real one works");
}

#[test]
fn expired_disabled_and_removed_members_are_refused_at_once() {
    let t = TestServer::start();
    t.add_team("acme");
    t.add_user("alice", "acme");
    t.add_user("bob", "acme");
    t.add_user("carol", "acme");

    // Expired: stored with an expiry in the past.
    let alice = t
        .server
        .block_on(t.server.store.find_user("alice"))
        .expect("store")
        .expect("alice");
    let past = {
        // A well-formed token whose row expired a minute ago.
        let token = spec_kitty_server::auth::personal::generate().expect("random");
        t.server
            .block_on(t.server.store.create_access_token(
                spec_kitty_server::store::tokens::NewAccessToken {
                    user_id: alice.id,
                    name: "old".into(),
                    hash: spec_kitty_server::auth::personal::hash(&token),
                    created_at: common::unix_now() - 3600,
                    expires_at: Some(common::unix_now() - 60),
                },
            ))
            .expect("stored");
        token
    };
    assert_refused(&t, &past, "an expired token");

    // Disabled: 401 at once, and enabling again does not bring it back.
    let bob = token_for(&t, "bob", Some(30)).token;
    assert_eq!(t.get(HEALTH, Some(&bob)).status, 200);
    t.server
        .block_on(admin::disable_user(&t.server.store, "bob"))
        .expect("disabled");
    assert_refused(&t, &bob, "a disabled user's token");
    t.server
        .block_on(admin::enable_user(&t.server.store, "bob"))
        .expect("enabled");
    assert_refused(&t, &bob, "a token of a user disabled once");

    // Removed from the team: 403, as for any token.
    let carol = token_for(&t, "carol", None).token;
    t.server
        .block_on(admin::remove_member(&t.server.store, "acme", "carol"))
        .expect("removed");
    let health = t.get(HEALTH, Some(&carol));
    assert_eq!(health.status, 403, "{}", health.text);
    let batch = t.post_batch(&carol, &[event(&new_project())]);
    assert_eq!(batch.status, 403, "{}", batch.text);
    assert_eq!(t.event_count(), 0);
}

/// Two instances on one PostgreSQL database: a token made and revoked
/// through one is accepted, then refused, by the other at once.
#[test]
fn postgres_a_token_revoked_on_one_instance_is_refused_on_the_other() {
    let Some(p) = common::pg_pair(|_| {}) else {
        return;
    };
    let (a, b) = (&p.a, &p.b);
    let created = a
        .block_on(admin::create_token(&a.store, "alice", "ci", None))
        .expect("token");
    let agent = common::agent();
    for server in [a, b] {
        let batch = common::post_batch(
            &agent,
            &server.url,
            &created.token,
            &[event(&new_project())],
        );
        assert_eq!(batch.status, 200, "{}", batch.text);
    }
    a.block_on(admin::revoke_token(&a.store, created.id))
        .expect("revoked");
    for server in [b, a] {
        let health = common::get(
            &agent,
            &format!("{}{HEALTH}", server.url),
            Some(&created.token),
        );
        assert_eq!(health.status, 401, "{}", health.text);
        let batch = common::post_batch(
            &agent,
            &server.url,
            &created.token,
            &[event(&new_project())],
        );
        assert_eq!(batch.status, 401, "{}", batch.text);
    }
    assert_eq!(a.block_on(a.store.event_count()).expect("count"), 2);
}
