//! Switching from the Python client (issue #14): `sync import
//! --python-queue` moves every event waiting in the Python client 2.1.3's
//! queues (`queue.db` logged out, `queues/queue-<h>.db` per log-in) into
//! ours exactly once, and `sync status` shows them until then. The queue
//! files are written by the real Python client where it can be installed
//! (see `python_client`), by a fixture with its exact schema otherwise.

use crate::python_client;
use crate::queue_support;

use python_client::home::{
    assert_err_has, assert_has, python_emits, python_reads, queued_ids, sorted, tilde,
    write_credentials,
};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use python_client::{fixture_db, fixture_insert, ids_in, scoped_file_name};
use queue_support::{
    Home, Server, TEAM, USER, code, describe, events, id_of, one_json_object, project,
    random_below, status_event, stderr, stdout,
};
use serde_json::{Value, json};

const IMPORT: &[&str] = &["sync", "import", "--python-queue"];

/// `sync status` lists `lines` and the import command, `--json` the
/// count, `--check` says it in one line and `--check --json` carries it.
fn status_shows_waiting(home: &Home, pending: i64, lines: &[String]) {
    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(&out, "spec-kitty sync import --python-queue");
    for line in lines {
        assert_has(&out, line);
    }
    let json = one_json_object(&home.run(&["sync", "status", "--json"]));
    assert_eq!(json["python_queue"]["pending"], pending, "{json}");
    assert_eq!(
        json["python_queue"]["files"][1]["current_login"], true,
        "{json}"
    );
    let out = home.run(&["sync", "status", "--check"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let python: Vec<&str> = text.lines().filter(|l| l.contains("Python")).collect();
    assert_eq!(python.len(), 1, "one line: {}", describe(&out));
    assert!(
        python[0].contains(&format!("{pending} event(s)")) && python[0].contains("--python-queue"),
        "{}",
        describe(&out)
    );
    let json = one_json_object(&home.run(&["sync", "status", "--check", "--json"]));
    assert_eq!(json["python_queue"]["pending"], pending, "{json}");
}

#[test]
fn logged_out_and_logged_in_queues_are_imported_once_and_reach_the_server_once() {
    let server = Server::start();
    let home = Home::new();
    let logged_out = python_emits(&home, 3);
    assert_eq!(logged_out.db, home.dir().join("queue.db"));
    home.login(server.url());
    let logged_in = python_emits(&home, 4);
    let scoped = scoped_file_name(server.url(), USER, Some(TEAM));
    assert_eq!(logged_in.db, home.dir().join("queues").join(&scoped));
    let label = format!(
        "your current log-in: {USER} on {}, team {TEAM}",
        server.url()
    );
    let schemas = [&logged_out.db, &logged_in.db].map(|db| python_client::schema_of(db));

    // sync status, read-only: the files are byte for byte as they were.
    let bytes = || [&logged_out.db, &logged_in.db].map(|db| std::fs::read(db).expect("read"));
    let before = bytes();
    status_shows_waiting(
        &home,
        7,
        &[
            "Python queue: 7 event(s) waiting in 2 file(s)".to_string(),
            "~/.spec-kitty/queue.db: 3 (logged-out queue)".to_string(),
            format!("{scoped}: 4 ({label})"),
        ],
    );
    assert_eq!(bytes(), before, "sync status changed a Python queue file");

    // The import: every event once, each file reported.
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(
        &out,
        "~/.spec-kitty/queue.db (logged-out queue): 3 found, 3 imported, 0 already queued here, 0 refused",
    );
    assert_has(
        &out,
        &format!("{scoped} ({label}): 4 found, 4 imported, 0 already queued here, 0 refused"),
    );
    assert_has(&out, "Imported 7 new event(s)");
    let all = sorted([logged_out.ids.clone(), logged_in.ids.clone()].concat());
    assert_eq!(queued_ids(&home), all);
    for (db, schema) in [&logged_out.db, &logged_in.db].into_iter().zip(&schemas) {
        assert_eq!(
            &python_client::schema_of(db),
            schema,
            "schema of {db:?} kept"
        );
        assert!(python_reads(&home, db).is_empty(), "{db:?} emptied");
    }

    // Again: nothing new, and it says so.
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(&out, "Nothing new to import");
    assert_eq!(home.depth(), 7);
    let out = home.run(&["sync", "status"]);
    assert!(!stdout(&out).contains("Python queue"), "{}", describe(&out));

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        server.event_count(),
        7,
        "each event reached the server once"
    );
}

#[test]
fn every_scope_is_imported_the_last_one_named_and_another_team_refused() {
    let server = Server::start();
    let home = Home::new();
    write_credentials(&home, "https://Old.example.com/", "Alice", "acme");
    let old = python_emits(&home, 2);
    write_credentials(&home, "https://old.example.com", "alice", "beta");
    let beta = python_emits(&home, 2);
    // What the Python client's log-in leaves: the scope it used last.
    std::fs::write(
        home.dir().join("active_queue_scope"),
        "https://old.example.com|alice|acme",
    )
    .expect("write active_queue_scope");
    std::fs::remove_file(home.credentials_path()).expect("log out");
    home.login(server.url());
    let current = python_emits(&home, 3);
    let files = [&old.db, &beta.db, &current.db];
    assert!(
        files
            .iter()
            .all(|db| db.parent() == Some(&home.dir().join("queues")))
    );
    assert!(old.db != beta.db && beta.db != current.db && old.db != current.db);

    let out = home.run(IMPORT);
    assert_eq!(code(&out), 1, "refused rows: {}", describe(&out));
    let name = |db: &Path| db.file_name().expect("name").to_string_lossy().into_owned();
    assert_has(
        &out,
        &format!(
            "{} (the Python client's last log-in: alice on https://old.example.com, team acme): 2 found, 2 imported",
            name(&old.db)
        ),
    );
    assert_has(
        &out,
        &format!(
            "{} (another log-in): 2 found, 0 imported, 0 already queued here, 2 refused",
            name(&beta.db)
        ),
    );
    assert_has(
        &out,
        &format!(
            "{} (your current log-in: {USER} on {}, team {TEAM}): 3 found, 3 imported",
            name(&current.db),
            server.url()
        ),
    );
    assert_err_has(
        &out,
        "team_slug: the event is for team 'beta', but you are logged in to team 'acme'",
    );
    assert_has(&out, "Imported 5 new event(s)");
    assert_eq!(
        queued_ids(&home),
        sorted([old.ids.clone(), current.ids.clone()].concat())
    );
    assert_eq!(
        python_reads(&home, &beta.db),
        sorted(beta.ids.clone()),
        "refused rows stay"
    );

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(server.event_count(), 5);
    let out = home.run(&["sync", "status", "--json"]);
    assert_eq!(one_json_object(&out)["python_queue"]["pending"], 2);
}

/// Bad files beside a good one: `(file name, contents or schema, what the
/// message must say)`.
fn bad_files(home: &Home) -> Vec<(PathBuf, &'static str)> {
    let queues = home.dir().join("queues");
    std::fs::create_dir_all(&queues).expect("queues/");
    let corrupt = queues.join("queue-00000000deadbeef.db");
    std::fs::write(&corrupt, "this is not a database, only text; ".repeat(40)).expect("write");
    let columns = queues.join("queue-1111111111111111.db");
    fixture_db(
        &columns,
        "CREATE TABLE queue (id INTEGER PRIMARY KEY, event_id TEXT, payload TEXT);",
    );
    let no_table = queues.join("queue-2222222222222222.db");
    fixture_db(
        &no_table,
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT);",
    );
    vec![
        (corrupt, "is not a readable SQLite database"),
        (
            columns,
            "without the column(s) event_type, data, timestamp, retry_count",
        ),
        (no_table, "holds no `queue` table"),
    ]
}

#[test]
fn corrupt_and_unknown_files_are_named_and_the_good_ones_still_imported() {
    let home = Home::new();
    let good = python_emits(&home, 3);
    let bad = bad_files(&home);
    let corrupt_bytes = std::fs::read(&bad[0].0).expect("read");

    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    for (path, what) in &bad {
        assert_has(&out, &path.file_name().expect("name").to_string_lossy());
        assert_has(&out, what);
    }
    let out = home.run(&["sync", "status", "--check"]);
    assert_has(&out, "3 file(s) could not be read");

    let out = home.run(IMPORT);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert_has(
        &out,
        "~/.spec-kitty/queue.db (logged-out queue): 3 found, 3 imported",
    );
    for (path, what) in &bad {
        let named = tilde(&home, path);
        let text = stderr(&out);
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("error: {named} ")));
        assert!(
            line.is_some_and(|l| l.contains(what)),
            "no error line names {named} with {what:?}:\n{}",
            describe(&out)
        );
        assert_has(&out, &format!("{named} (another log-in): not read"));
    }
    assert_err_has(&out, "mv ");
    assert_err_has(&out, "3 Python queue file(s) could not be read");
    assert_eq!(queued_ids(&home), sorted(good.ids));
    assert_eq!(
        std::fs::read(&bad[0].0).expect("read"),
        corrupt_bytes,
        "left as it was"
    );
}

#[test]
fn a_locked_file_is_named_the_others_imported_and_it_follows_once_free() {
    let home = Home::new();
    let logged_out = python_emits(&home, 2);
    write_credentials(&home, "https://sync.example.com", USER, TEAM);
    let logged_in = python_emits(&home, 2);
    // Another process in the middle of a write: an exclusive lock.
    let holder = rusqlite::Connection::open(&logged_out.db).expect("open");
    holder.execute_batch("BEGIN EXCLUSIVE").expect("lock");

    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(&out, "queue.db is locked by another process");
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert_err_has(&out, "~/.spec-kitty/queue.db is locked by another process");
    assert_err_has(&out, "run `spec-kitty sync import --python-queue` again");
    assert_eq!(queued_ids(&home), sorted(logged_in.ids.clone()));

    holder.execute_batch("ROLLBACK").expect("unlock");
    drop(holder);
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(
        &out,
        "~/.spec-kitty/queue.db (logged-out queue): 2 found, 2 imported",
    );
    assert_eq!(
        queued_ids(&home),
        sorted([logged_out.ids, logged_in.ids].concat())
    );
}

#[test]
fn an_unreadable_file_is_named_and_the_others_imported() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let good = python_emits(&home, 2);
    write_credentials(&home, "https://sync.example.com", USER, TEAM);
    let hidden = python_emits(&home, 2);
    std::fs::set_permissions(&hidden.db, std::fs::Permissions::from_mode(0o000))
        .expect("chmod 000");
    if std::fs::File::open(&hidden.db).is_ok() {
        eprintln!("skipped: this user reads files whatever their mode (root?)");
        return;
    }
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert_err_has(&out, &format!("cannot read {}", tilde(&home, &hidden.db)));
    assert_err_has(&out, "chmod 600");
    assert_eq!(queued_ids(&home), sorted(good.ids));
    std::fs::set_permissions(&hidden.db, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600");
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(home.depth(), 4);
}

#[test]
fn rows_that_cannot_be_imported_stay_with_the_reason_diagnose_gives() {
    let home = Home::new();
    let project = project();
    let all = events(&project, 3);
    let mut bad = status_event(&project, 9, "doingg", time::Duration::minutes(1));
    bad["team_slug"] = json!("local");
    let reason = spec_kitty_protocol::describe_errors(&spec_kitty_protocol::validate_event(&bad));
    // A file from before the coalesce_key migration, one event of which
    // an interrupted import had already queued here.
    home.import(&all[2..3]);
    let db = home.dir().join("queue.db");
    let conn = fixture_db(&db, &python_client::python_schema_before_coalesce());
    let broken = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for event in &all {
        fixture_insert(&conn, &id_of(event), "WPStatusChanged", &event.to_string());
    }
    fixture_insert(&conn, broken, "WPStatusChanged", "{not json");
    fixture_insert(&conn, &id_of(&bad), "WPStatusChanged", &bad.to_string());
    drop(conn);

    let out = home.run(IMPORT);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert_has(
        &out,
        "5 found, 2 imported, 1 already queued here, 2 refused",
    );
    assert_has(
        &out,
        "Imported 2 new event(s) from the Python client's queues; 1 were already queued here",
    );
    assert_err_has(
        &out,
        &format!(
            "refused {} (left in ~/.spec-kitty/queue.db): {reason}",
            id_of(&bad)
        ),
    );
    assert_err_has(&out, &format!("refused {broken}"));
    assert_eq!(
        sorted(ids_in(&db)),
        sorted(vec![broken.to_string(), id_of(&bad)])
    );
    assert_eq!(queued_ids(&home), sorted(all.iter().map(id_of).collect()));

    let out = home.run(IMPORT);
    assert_has(
        &out,
        "Nothing new to import from the Python client's queues; 2 refused",
    );
}

#[test]
fn without_any_python_queue_there_is_nothing_to_import() {
    let home = Home::new();
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_has(
        &out,
        "No Python client queue found (~/.spec-kitty/queue.db or ~/.spec-kitty/queues/queue-*.db)",
    );
    assert!(!home.dir().join("queues").exists(), "nothing created");
}

/// A Python client killed in the middle of a write leaves a hot journal,
/// which SQLite lets no read-only reader past: status and import roll it
/// back (as the Python client's next open would) and read the file as it
/// was before that write.
#[test]
fn a_python_write_killed_midway_is_rolled_back_and_the_file_still_read() {
    let home = Home::new();
    let emitted = python_emits(&home, 3);
    // Rollback journal, a tiny cache so that the uncommitted pages reach
    // the file, and an exit without commit or close.
    let script = r#"
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=DELETE")
c.execute("PRAGMA cache_size=1")
c.execute("BEGIN IMMEDIATE")
c.execute("DELETE FROM queue")
for i in range(3000):
    c.execute("INSERT INTO queue (event_id, event_type, data, timestamp) VALUES (?, 'X', ?, 0)", ("junk-%d" % i, "x" * 500))
os._exit(0)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&emitted.db)
        .status()
        .expect("python3 runs (the test machine has it)");
    assert!(status.success());
    let journal = emitted.db.with_extension("db-journal");
    assert!(journal.exists(), "the killed write left a hot journal");

    let out = home.run(&["sync", "status", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["python_queue"]["pending"], 3, "{json}");
    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(queued_ids(&home), sorted(emitted.ids.clone()));
}

const KILL_EVENTS: usize = 20_000;
const KILLS: usize = 5;

#[test]
fn killing_the_import_at_random_moments_loses_and_doubles_nothing() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    // The file as the Python client made it, then a full day of events.
    let mut emitted = python_emits(&home, 2);
    let conn = rusqlite::Connection::open(&emitted.db).expect("open");
    conn.execute_batch("BEGIN").expect("begin");
    for mut event in events(&project(), KILL_EVENTS - 2) {
        event["team_slug"] = json!(TEAM);
        fixture_insert(&conn, &id_of(&event), "WPStatusChanged", &event.to_string());
        emitted.ids.push(id_of(&event));
    }
    conn.execute_batch("COMMIT").expect("commit");
    drop(conn);
    let all = sorted(emitted.ids.clone());

    let mut killed = 0;
    for round in 0..KILLS {
        let mut child = home
            .std_cmd()
            .args(IMPORT)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the import");
        let pause = 20 + random_below(400);
        std::thread::sleep(Duration::from_millis(pause));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("kill -9");
            killed += 1;
        }
        child.wait().expect("reaped");
        // A write killed midway leaves a hot journal: status still reads.
        let status = home.run(&["sync", "status"]);
        assert_eq!(code(&status), 0, "round {round}: {}", describe(&status));
        // Each event is here, there, or both; never lost, never twice here.
        let ours = queued_ids(&home);
        let theirs = ids_in(&emitted.db);
        let mut union = [ours.clone(), theirs.clone()].concat();
        union.sort();
        union.dedup();
        assert_eq!(
            union, all,
            "round {round} (after {pause} ms): an event was lost"
        );
        let mut distinct = ours.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), ours.len(), "round {round}: an event twice");
        eprintln!(
            "round {round}: after {pause} ms, {} here, {} left there",
            ours.len(),
            theirs.len()
        );
    }
    assert!(killed > 0, "at least one import was killed midway");

    let out = home.run(IMPORT);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(queued_ids(&home), all);
    assert!(ids_in(&emitted.db).is_empty());
    let check: String = rusqlite::Connection::open(&emitted.db)
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json: Value = one_json_object(&out);
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(
        server.event_count(),
        KILL_EVENTS as i64,
        "every event exactly once"
    );
}
