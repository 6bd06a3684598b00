//! `spec-kitty-server backup FILE` of a running SQLite server and `restore
//! FILE` for a stopped one (issue 12).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{PASSWORD, TestServer, events, login_ok, new_project};
use spec_kitty_server::BackgroundServer;
use spec_kitty_server::config::ServerConfig;

fn server_cmd(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SPEC_KITTY_SERVER_DATABASE_URL")
        .output()
        .expect("spec-kitty-server runs")
}

fn describe(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_running_server_is_backed_up_and_restored_into_a_stopped_one() {
    if std::env::var(common::BACKEND_ENV).ok().as_deref() == Some("postgres") {
        return; // SQLite only: PostgreSQL has pg_dump.
    }
    let t = TestServer::start();
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    t.post_ok(&access, &events(&new_project(), 25));

    let out_dir = tempfile::tempdir().expect("tempdir");
    let file = out_dir.path().join("backup.db");
    let file_arg = file.to_str().expect("utf-8 path");
    let out = server_cmd(t.dir.path(), &["backup", file_arg]);
    assert!(out.status.success(), "{}", describe(&out));
    let mode = std::fs::metadata(&file)
        .expect("backup")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the backup holds password hashes");
    // A second backup to the same file is refused, never overwritten.
    let out = server_cmd(t.dir.path(), &["backup", file_arg]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("already exists; a backup never replaces a file"),
        "{}",
        describe(&out)
    );

    // The running server's database is in use: restore refuses.
    let out = server_cmd(t.dir.path(), &["restore", file_arg]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(t.event_count(), 25);

    // Restored into a fresh (stopped) data directory, everything is there.
    let fresh = tempfile::tempdir().expect("tempdir");
    let out = server_cmd(fresh.path(), &["restore", file_arg]);
    assert!(out.status.success(), "{}", describe(&out));
    let restored = BackgroundServer::start(&ServerConfig::for_data_dir(fresh.path()))
        .expect("the restored server starts");
    let count = restored
        .block_on(restored.store.event_count())
        .expect("count");
    assert_eq!(count, 25);
    login_ok(&common::agent(), &restored.url, "alice", PASSWORD);
}

#[test]
fn restore_refuses_a_file_that_is_not_a_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not a database").expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let out = server_cmd(data.path(), &["restore", junk.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(!data.path().join("spec-kitty.db").exists());
}

/// `restore` tells a stopped server from a running one by the `-wal` file
/// SQLite removes when the last connection closes: a server stopped with
/// SIGTERM must close every connection it opened (the checkpoint thread's
/// too), or every restore after a clean stop would need `--force`.
#[test]
fn a_cleanly_stopped_server_leaves_no_log_behind() {
    if std::env::var(common::BACKEND_ENV).ok().as_deref() == Some("postgres") {
        return; // SQLite only.
    }
    let dir = tempfile::tempdir().expect("temp data dir");
    let child = common::spawn_logging(
        Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("SPEC_KITTY_SERVER_DATABASE_URL"),
    );
    let mut server = common::ChildServer(child);
    let stderr = server.0.stderr.take().expect("stderr is piped");
    let mut reader = std::io::BufReader::new(stderr);
    let url = common::read_url(&mut reader);
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));

    let wal = dir.path().join("spec-kitty.db-wal");
    // A write (a refused log-in is recorded for the throttle).
    let agent = common::agent_with_timeout(std::time::Duration::from_secs(10));
    let refused = agent
        .post(format!("{url}/api/v1/token/"))
        .header("Content-Type", "application/json")
        .send(r#"{"username": "nobody", "password": "wrong-password"}"#.as_bytes())
        .expect("log-in answered");
    assert_eq!(refused.status().as_u16(), 401);
    assert!(wal.exists(), "a running server has its log");

    let status = common::stop_with_sigterm(&mut server)
        .unwrap_or_else(|| panic!("the server ignored SIGTERM for {:?}", common::HANG_GUARD));
    assert!(status.success(), "the server stops cleanly: {status}");
    assert!(
        !wal.exists(),
        "a cleanly stopped server left {} behind",
        wal.display()
    );
}
