//! The admin commands of the real `spec-kitty-server` binary, with
//! `--data-dir` given last (it is a global flag).

use crate::common;

use std::path::Path;

use assert_cmd::Command;
use spec_kitty_server::BackgroundServer;
use spec_kitty_server::config::ServerConfig;
use tempfile::TempDir;

use common::{PASSWORD, cli};

/// Runs `spec-kitty-server ARGS...`, which must succeed.
fn ok(dir: &Path, args: &[&str]) {
    cli(dir, args).assert().success();
}

fn stdout_of(dir: &Path, args: &[&str]) -> String {
    let output = cli(dir, args).assert().success().get_output().clone();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn add_user(dir: &Path, username: &str, team: &str) {
    cli(
        dir,
        &["user", "add", username, "--team", team, "--password-stdin"],
    )
    .write_stdin(format!("{PASSWORD}\n"))
    .assert()
    .success();
}

/// Fails with a non-zero exit; returns standard error.
fn failure(cmd: &mut Command) -> String {
    let output = cmd.assert().failure().get_output().clone();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `user add USERNAME --team TEAM --password-stdin` given `stdin`, which
/// must fail; returns standard error.
fn add_user_fails(dir: &Path, username: &str, team: &str, stdin: &str) -> String {
    failure(
        cli(
            dir,
            &["user", "add", username, "--team", team, "--password-stdin"],
        )
        .write_stdin(stdin),
    )
}

/// A data directory with team `acme`.
fn acme() -> TempDir {
    let dir = tempfile::tempdir().expect("temp data dir");
    ok(dir.path(), &["team", "add", "acme"]);
    dir
}

/// A data directory with user `alice` in team `acme`.
fn acme_with_alice() -> TempDir {
    let dir = acme();
    add_user(dir.path(), "alice", "acme");
    dir
}

/// A data directory with teams `acme` and `other`, and user `alice` of
/// `acme` who is a member of `other` too.
fn alice_in_acme_and_other() -> TempDir {
    let dir = acme();
    ok(dir.path(), &["team", "add", "other"]);
    add_user(dir.path(), "alice", "acme");
    ok(dir.path(), &["team", "add-member", "other", "alice"]);
    dir
}

fn start_server(dir: &Path) -> BackgroundServer {
    BackgroundServer::start(&ServerConfig::for_data_dir(dir)).expect("server starts")
}

fn login_status(dir: &Path, username: &str) -> u16 {
    let server = start_server(dir);
    common::login(&common::agent(), &server.url, username, PASSWORD).status
}

#[test]
fn team_add_and_list() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let out = stdout_of(dir.path(), &["team", "add", "acme"]);
    assert!(out.contains("acme"), "{out}");
    let list = stdout_of(dir.path(), &["team", "list"]);
    assert_eq!(list, "TEAM  PROJECTS  MEMBERS\nacme  0         -\n");
}

#[test]
fn user_add_with_password_stdin_then_list_and_log_in() {
    let dir = acme_with_alice();

    let users = stdout_of(dir.path(), &["user", "list"]);
    assert_eq!(
        users,
        "USER   STATE   TEAM  MEMBER OF\nalice  active  acme  acme\n"
    );
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert_eq!(teams, "TEAM  PROJECTS  MEMBERS\nacme  0         alice\n");
    assert_eq!(
        login_status(dir.path(), "alice"),
        200,
        "the password read from stdin is the one set"
    );
}

#[test]
fn add_member_and_remove_member() {
    let dir = alice_in_acme_and_other();
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("acme, other\n"), "{users}");
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert!(teams.contains("other  0         alice\n"), "{teams}");

    let again = failure(&mut cli(
        dir.path(),
        &["team", "add-member", "other", "alice"],
    ));
    assert!(again.contains("already a member"), "{again}");

    ok(dir.path(), &["team", "remove-member", "other", "alice"]);
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("acme  acme\n"), "{users}");
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert!(teams.contains("other  0         -\n"), "{teams}");

    let gone = failure(&mut cli(
        dir.path(),
        &["team", "remove-member", "other", "alice"],
    ));
    assert!(gone.contains("not a member"), "{gone}");
}

#[test]
fn user_disable_refuses_log_in() {
    let dir = acme_with_alice();
    ok(dir.path(), &["user", "disable", "alice"]);
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("alice  disabled"), "{users}");
    assert_eq!(login_status(dir.path(), "alice"), 401);
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let server = start_server(dir.path());
    let client = common::agent();
    ok(dir.path(), &["team", "add", "acme"]);
    add_user(dir.path(), "alice", "acme");
    let (access, _) = common::login_ok(&client, &server.url, "alice", PASSWORD);
    let health = format!("{}/api/v1/sync/health/", server.url);
    assert_eq!(common::get(&client, &health, Some(&access)).status, 200);

    ok(dir.path(), &["user", "disable", "alice"]);
    assert_eq!(
        common::get(&client, &health, Some(&access)).status,
        401,
        "disabling takes effect on the running server at once"
    );
}

#[test]
fn user_add_without_password_stdin_and_without_terminal_fails() {
    let dir = acme();
    // assert_cmd gives the child a pipe, never a terminal, as stdin.
    let stderr = failure(
        cli(dir.path(), &["user", "add", "alice", "--team", "acme"])
            .write_stdin(format!("{PASSWORD}\n")),
    );
    assert!(stderr.contains("--password-stdin"), "{stderr}");
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("No users yet"), "{users}");
}

#[test]
fn user_add_to_a_missing_team_says_to_create_it_first() {
    let dir = acme();
    let stderr = add_user_fails(dir.path(), "alice", "ghost", &format!("{PASSWORD}\n"));
    assert!(stderr.contains("create it first"), "{stderr}");
    assert!(stderr.contains("team add ghost"), "{stderr}");
}

#[test]
fn duplicate_team_and_user_are_clear_errors() {
    let dir = acme();
    let stderr = failure(&mut cli(dir.path(), &["team", "add", "acme"]));
    assert!(stderr.contains("team 'acme' already exists"), "{stderr}");

    add_user(dir.path(), "alice", "acme");
    let stderr = add_user_fails(dir.path(), "alice", "acme", &format!("{PASSWORD}\n"));
    assert!(stderr.contains("user 'alice' already exists"), "{stderr}");
}

#[test]
fn invalid_names_and_short_passwords_are_refused() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let stderr = failure(&mut cli(dir.path(), &["team", "add", "Not A Slug"]));
    assert!(stderr.contains("not a valid team slug"), "{stderr}");
    ok(dir.path(), &["team", "add", "acme"]);
    let stderr = add_user_fails(dir.path(), "alice", "acme", "short\n");
    assert!(stderr.contains("too short"), "{stderr}");
    let stderr = add_user_fails(dir.path(), "alice", "acme", "");
    assert!(stderr.contains("no password"), "{stderr}");
}

fn json_of(dir: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout_of(dir, args)).expect("stdout is JSON")
}

/// The team a log-in announces (`team_slug`), or `None`.
fn login_team(dir: &Path, username: &str) -> Option<String> {
    let server = start_server(dir);
    let reply = common::login(&common::agent(), &server.url, username, PASSWORD);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["team_slug"].as_str().map(str::to_string)
}

#[test]
fn lists_have_json() {
    let dir = acme_with_alice();
    let teams = json_of(dir.path(), &["team", "list", "--json"]);
    assert_eq!(
        teams,
        serde_json::json!([{"slug": "acme", "members": ["alice"], "projects": 0}])
    );
    let users = json_of(dir.path(), &["user", "list", "--json"]);
    assert_eq!(
        users,
        serde_json::json!([{"username": "alice", "disabled": false, "team": "acme", "member_of": ["acme"]}])
    );
}

#[test]
fn commands_other_than_team_add_refuse_a_missing_database() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let typo = dir.path().join("typo");
    for args in [
        &["team", "list"][..],
        &["user", "list"],
        &["user", "disable", "alice"],
        &["team", "add-member", "acme", "alice"],
        &["board", "rebuild", "--check"],
    ] {
        let stderr = failure(&mut cli(&typo, args));
        assert!(stderr.contains("no database at"), "{args:?}: {stderr}");
        assert!(stderr.contains("--data-dir"), "{args:?}: {stderr}");
    }
    assert!(!typo.exists(), "nothing was created");
    ok(&typo, &["team", "add", "acme"]);
    assert!(typo.join("spec-kitty.db").exists(), "team add creates it");
}

#[test]
fn usernames_are_case_insensitive() {
    let dir = acme();
    let out = cli(
        dir.path(),
        &["user", "add", "Alice", "--team", "acme", "--password-stdin"],
    )
    .write_stdin(format!("{PASSWORD}\n"))
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("Created user 'alice'"),
        "stored in lower case"
    );
    let stderr = add_user_fails(dir.path(), "alice", "acme", &format!("{PASSWORD}\n"));
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(login_status(dir.path(), "ALICE"), 200);
    ok(dir.path(), &["user", "disable", "aLiCe"]);
    assert_eq!(login_status(dir.path(), "alice"), 401);
}

#[test]
fn user_enable_passwd_and_remove() {
    let dir = acme_with_alice();
    ok(dir.path(), &["user", "disable", "alice"]);
    ok(dir.path(), &["user", "enable", "alice"]);
    assert_eq!(login_status(dir.path(), "alice"), 200, "enabled again");

    cli(dir.path(), &["user", "passwd", "alice", "--password-stdin"])
        .write_stdin("a-new-password\n")
        .assert()
        .success();
    assert_eq!(login_status(dir.path(), "alice"), 401, "old password");
    let server = start_server(dir.path());
    let reply = common::login(&common::agent(), &server.url, "alice", "a-new-password");
    assert_eq!(reply.status, 200, "{}", reply.text);
    drop(server);
    let stderr = failure(
        cli(dir.path(), &["user", "passwd", "alice", "--password-stdin"]).write_stdin("short\n"),
    );
    assert!(stderr.contains("too short"), "{stderr}");

    ok(dir.path(), &["user", "remove", "alice"]);
    assert!(stdout_of(dir.path(), &["user", "list"]).contains("No users yet"));
    let teams = json_of(dir.path(), &["team", "list", "--json"]);
    assert_eq!(teams[0]["members"], serde_json::json!([]));
    let stderr = failure(&mut cli(dir.path(), &["user", "remove", "alice"]));
    assert!(stderr.contains("no user 'alice'"), "{stderr}");
}

#[test]
fn user_unlock_ends_a_log_in_lockout() {
    let dir = acme_with_alice();
    let mut config = ServerConfig::for_data_dir(dir.path());
    config.limits.login_max_failures = 2;
    let server = BackgroundServer::start(&config).expect("server starts");
    let client = common::agent();
    for _ in 0..2 {
        let reply = common::login(&client, &server.url, "alice", "wrong-password");
        assert_eq!(reply.status, 401);
    }
    let locked = common::login(&client, &server.url, "alice", PASSWORD);
    assert_eq!(locked.status, 429, "locked out: {}", locked.text);

    ok(dir.path(), &["user", "unlock", "Alice"]);
    let reply = common::login(&client, &server.url, "alice", PASSWORD);
    assert_eq!(reply.status, 200, "unlocked: {}", reply.text);
    let stderr = failure(&mut cli(dir.path(), &["user", "unlock", "nobody"]));
    assert!(stderr.contains("no user 'nobody'"), "{stderr}");
}

#[test]
fn team_remove_deletes_an_unused_team_and_refuses_one_with_projects() {
    let dir = alice_in_acme_and_other();
    ok(dir.path(), &["team", "remove", "other"]);
    let teams = json_of(dir.path(), &["team", "list", "--json"]);
    assert_eq!(teams.as_array().map(Vec::len), Some(1), "{teams}");

    {
        let server = start_server(dir.path());
        let client = common::agent();
        let (access, _) = common::login_ok(&client, &server.url, "alice", PASSWORD);
        let reply = common::post_batch(
            &client,
            &server.url,
            &access,
            &[common::event(&common::new_project())],
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let stderr = failure(&mut cli(dir.path(), &["team", "remove", "acme"]));
    assert!(stderr.contains("1 project(s)"), "{stderr}");
    let stderr = failure(&mut cli(dir.path(), &["team", "remove", "ghost"]));
    assert!(stderr.contains("no team 'ghost'"), "{stderr}");
}

#[test]
fn a_member_removed_from_their_team_no_longer_logs_in_with_it() {
    let dir = alice_in_acme_and_other();
    ok(dir.path(), &["team", "remove-member", "acme", "alice"]);
    assert_eq!(login_team(dir.path(), "alice").as_deref(), Some("other"));
    ok(dir.path(), &["team", "remove-member", "other", "alice"]);
    assert_eq!(login_team(dir.path(), "alice"), None);
}

#[test]
fn completions_are_generated_for_each_shell() {
    let dir = tempfile::tempdir().expect("temp data dir");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = stdout_of(dir.path(), &["completions", shell]);
        assert!(out.contains("spec-kitty-server"), "{shell}: {out}");
        assert!(out.contains("unlock"), "{shell} knows the subcommands");
    }
    assert!(!dir.path().join("spec-kitty.db").exists());
}
