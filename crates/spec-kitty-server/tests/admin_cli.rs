//! The admin commands of the real `spec-kitty-server` binary, with
//! `--data-dir` given last (it is a global flag).

mod common;

use std::path::Path;

use assert_cmd::Command;
use spec_kitty_server::BackgroundServer;
use spec_kitty_server::config::ServerConfig;

use common::PASSWORD;

/// `spec-kitty-server ARGS... --data-dir DIR`, isolated from the caller's
/// environment.
fn cli(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("spec-kitty-server").expect("binary built");
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SPEC_KITTY_SERVER_DATA_DIR")
        .env_remove("SPEC_KITTY_SERVER_DATABASE_URL")
        .env_remove("RUST_LOG");
    cmd
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

fn login_status(dir: &Path, username: &str) -> u16 {
    let server = BackgroundServer::start(&ServerConfig::for_data_dir(dir)).expect("server starts");
    common::login(&common::agent(), &server.url, username, PASSWORD).status
}

#[test]
fn team_add_and_list() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let empty = stdout_of(dir.path(), &["team", "list"]);
    assert!(empty.contains("No teams yet"), "{empty}");

    let out = stdout_of(dir.path(), &["team", "add", "acme"]);
    assert!(out.contains("acme"), "{out}");
    let list = stdout_of(dir.path(), &["team", "list"]);
    assert!(list.starts_with("acme\t"), "{list}");
    assert!(list.contains("(no members)"), "{list}");
}

#[test]
fn user_add_with_password_stdin_then_list_and_log_in() {
    let dir = tempfile::tempdir().expect("temp data dir");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    add_user(dir.path(), "alice", "acme");

    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(
        users.contains("alice\tactive\tteam: acme\tmember of: acme"),
        "{users}"
    );
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert!(teams.contains("acme\t0 project(s)\talice"), "{teams}");
    assert_eq!(
        login_status(dir.path(), "alice"),
        200,
        "the password read from stdin is the one set"
    );
}

#[test]
fn add_member_and_remove_member() {
    let dir = tempfile::tempdir().expect("temp data dir");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    cli(dir.path(), &["team", "add", "other"])
        .assert()
        .success();
    add_user(dir.path(), "alice", "acme");

    cli(dir.path(), &["team", "add-member", "other", "alice"])
        .assert()
        .success();
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("member of: acme, other"), "{users}");
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert!(teams.contains("other\t0 project(s)\talice"), "{teams}");

    let again = failure(&mut cli(
        dir.path(),
        &["team", "add-member", "other", "alice"],
    ));
    assert!(again.contains("already a member"), "{again}");

    cli(dir.path(), &["team", "remove-member", "other", "alice"])
        .assert()
        .success();
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("member of: acme\n"), "{users}");
    let teams = stdout_of(dir.path(), &["team", "list"]);
    assert!(
        teams.contains("other\t0 project(s)\t(no members)"),
        "{teams}"
    );

    let gone = failure(&mut cli(
        dir.path(),
        &["team", "remove-member", "other", "alice"],
    ));
    assert!(gone.contains("not a member"), "{gone}");
}

#[test]
fn user_disable_refuses_log_in() {
    let dir = tempfile::tempdir().expect("temp data dir");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    add_user(dir.path(), "alice", "acme");
    cli(dir.path(), &["user", "disable", "alice"])
        .assert()
        .success();
    let users = stdout_of(dir.path(), &["user", "list"]);
    assert!(users.contains("alice\tdisabled"), "{users}");
    assert_eq!(login_status(dir.path(), "alice"), 401);
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let server =
        BackgroundServer::start(&ServerConfig::for_data_dir(dir.path())).expect("server starts");
    let client = common::agent();
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    add_user(dir.path(), "alice", "acme");
    let (access, _) = common::login_ok(&client, &server.url, "alice", PASSWORD);
    let health = format!("{}/api/v1/sync/health/", server.url);
    assert_eq!(common::get(&client, &health, Some(&access)).status, 200);

    cli(dir.path(), &["user", "disable", "alice"])
        .assert()
        .success();
    assert_eq!(
        common::get(&client, &health, Some(&access)).status,
        401,
        "disabling takes effect on the running server at once"
    );
}

#[test]
fn user_add_without_password_stdin_and_without_terminal_fails() {
    let dir = tempfile::tempdir().expect("temp data dir");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
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
    let dir = tempfile::tempdir().expect("temp data dir");
    let stderr = failure(
        cli(
            dir.path(),
            &[
                "user",
                "add",
                "alice",
                "--team",
                "ghost",
                "--password-stdin",
            ],
        )
        .write_stdin(format!("{PASSWORD}\n")),
    );
    assert!(stderr.contains("create it first"), "{stderr}");
    assert!(stderr.contains("team add ghost"), "{stderr}");
}

#[test]
fn duplicate_team_and_user_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp data dir");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    let stderr = failure(&mut cli(dir.path(), &["team", "add", "acme"]));
    assert!(stderr.contains("team 'acme' already exists"), "{stderr}");

    add_user(dir.path(), "alice", "acme");
    let stderr = failure(
        cli(
            dir.path(),
            &["user", "add", "alice", "--team", "acme", "--password-stdin"],
        )
        .write_stdin(format!("{PASSWORD}\n")),
    );
    assert!(stderr.contains("user 'alice' already exists"), "{stderr}");
}

#[test]
fn invalid_names_and_short_passwords_are_refused() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let stderr = failure(&mut cli(dir.path(), &["team", "add", "Not A Slug"]));
    assert!(stderr.contains("not a valid team slug"), "{stderr}");
    cli(dir.path(), &["team", "add", "acme"]).assert().success();
    let stderr = failure(
        cli(
            dir.path(),
            &["user", "add", "alice", "--team", "acme", "--password-stdin"],
        )
        .write_stdin("short\n"),
    );
    assert!(stderr.contains("too short"), "{stderr}");
    let stderr = failure(
        cli(
            dir.path(),
            &["user", "add", "alice", "--team", "acme", "--password-stdin"],
        )
        .write_stdin(""),
    );
    assert!(stderr.contains("no password"), "{stderr}");
}
