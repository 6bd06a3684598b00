//! A queue file that is corrupt, or locked by another process: a clear
//! message naming the file, a non-zero exit, and the file left alone.

use crate::queue_support;

use queue_support::{
    Home, Server, code, describe, events, id_of, one_json_object, project, stderr, stdout,
};

const GARBAGE: &[u8] = b"this is not a SQLite database, just some bytes that a disk error or a \
stray editor left here; spec-kitty must not touch them\x00\x01\x02\xff\xfe";

#[test]
fn a_corrupt_queue_is_named_and_kept_byte_for_byte() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    std::fs::write(home.queue_path(), GARBAGE).expect("write garbage");
    let import = home.file("one.jsonl");
    queue_support::write_jsonl(&import, &events(&project(), 1));

    for args in [
        &["sync", "now"][..],
        &["sync", "now", "--json"][..],
        &["sync", "diagnose"][..],
        &["sync", "discard", "--all-rejected", "--yes"][..],
        &["sync", "import", import.to_str().expect("utf-8")][..],
    ] {
        let out = home.run(args);
        assert_ne!(code(&out), 0, "{args:?}: {}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("events.db") && err.contains("corrupt"),
            "{args:?}: {}",
            describe(&out)
        );
        assert!(err.contains("mv "), "says how to move it aside: {err}");
        if args.contains(&"--json") {
            assert!(stdout(&out).trim().is_empty(), "no half answer on stdout");
        }
        assert_eq!(
            std::fs::read(home.queue_path()).expect("still there"),
            GARBAGE,
            "{args:?} left the file as it was"
        );
    }

    // `sync status` still works and names the problem.
    let out = home.run(&["sync", "status"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Queue:") && l.contains("events.db") && l.contains("corrupt")),
        "{text}"
    );
    let json = one_json_object(&home.run(&["sync", "status", "--json"]));
    assert!(
        json["queue"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("corrupt")),
        "{json}"
    );
    assert_eq!(std::fs::read(home.queue_path()).expect("kept"), GARBAGE);
    assert_eq!(server.event_count(), 0);
}

/// Another spec-kitty process in the middle of a write: it holds the
/// queue's write lock (WAL mode lets readers through, so reading still
/// works; every write waits for the busy timeout, then gives up).
#[test]
fn a_queue_held_by_another_writer_fails_writes_with_a_lock_message() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let queued = events(&project(), 3);
    home.import(&queued);
    let more = home.file("more.jsonl");
    queue_support::write_jsonl(&more, &events(&project(), 2));

    let holder = home.queue_db();
    holder
        .execute_batch("BEGIN IMMEDIATE; UPDATE events SET queued_at = queued_at;")
        .expect("take the write lock");

    let (import, drain) = std::thread::scope(|s| {
        let import = s.spawn(|| home.run(&["sync", "import", more.to_str().expect("utf-8")]));
        let drain = s.spawn(|| home.run(&["sync", "now"]));
        (
            import.join().expect("import thread"),
            drain.join().expect("drain thread"),
        )
    });
    for (name, out) in [("import", &import), ("now", &drain)] {
        assert_ne!(code(out), 0, "{name}: {}", describe(out));
        let err = stderr(out);
        assert!(
            err.contains("events.db") && err.contains("locked by another spec-kitty process"),
            "{name}: {}",
            describe(out)
        );
    }
    holder.execute_batch("ROLLBACK").expect("release");
    drop(holder);

    // Nothing was lost: the drain's batch reached the server, but its
    // events were not deleted, so the next run finds them duplicates.
    let ids: Vec<String> = home.rows().into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids, queued.iter().map(id_of).collect::<Vec<_>>());
    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(
        json["synced"].as_u64().unwrap_or(0) + json["duplicates"].as_u64().unwrap_or(0),
        3,
        "{json}"
    );
    assert_eq!(server.event_count(), 3);
    assert_eq!(home.depth(), 0);
}

/// A process that holds the file in exclusive locking mode keeps even
/// readers out: every command that opens the queue says it is locked.
#[test]
fn a_queue_locked_exclusively_is_reported_by_every_command() {
    let home = Home::new();
    home.import(&events(&project(), 2));
    let holder = home.queue_db();
    holder
        .execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE events SET queued_at = queued_at; COMMIT;",
        )
        .expect("hold the file exclusively");

    let (now, status) = std::thread::scope(|s| {
        let now = s.spawn(|| home.run(&["sync", "now", "--json"]));
        let status = s.spawn(|| home.run(&["sync", "status"]));
        (
            now.join().expect("now thread"),
            status.join().expect("status thread"),
        )
    });
    assert_ne!(code(&now), 0, "{}", describe(&now));
    assert!(
        stderr(&now).contains("events.db")
            && stderr(&now).contains("locked by another spec-kitty process"),
        "{}",
        describe(&now)
    );
    assert_eq!(code(&status), 0, "{}", describe(&status));
    assert!(
        stdout(&status)
            .lines()
            .any(|l| l.starts_with("Queue:") && l.contains("locked")),
        "{}",
        describe(&status)
    );
    drop(holder);
    assert_eq!(home.depth(), 2, "nothing lost");
}
