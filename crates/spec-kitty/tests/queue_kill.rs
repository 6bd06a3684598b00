//! `kill -9` at random moments during a large drain, repeated, then a final
//! `sync now`: the server holds every event exactly once and the local
//! queue is empty.

use crate::queue_support;

use std::process::Stdio;
use std::time::Duration;

use queue_support::{Home, Server, code, describe, events, one_json_object, project, random_below};

const EVENTS: usize = 20_000;
const KILLS: usize = 5;

#[test]
fn killing_sync_now_at_random_moments_loses_and_doubles_nothing() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    home.import(&events(&project(), EVENTS));
    assert_eq!(home.depth(), EVENTS as i64);

    let mut killed_mid_drain = 0;
    for round in 0..KILLS {
        let mut child = home
            .std_cmd()
            .args(["sync", "now"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sync now");
        let pause = 20 + random_below(281);
        std::thread::sleep(Duration::from_millis(pause));
        // SIGKILL, unless the run already finished on its own.
        let finished = child.try_wait().expect("try_wait").is_some();
        if !finished {
            child.kill().expect("kill -9");
            killed_mid_drain += 1;
        }
        child.wait().expect("reaped");

        // Invariant at every instant: each event is on the server, in the
        // queue, or both (sent, but killed before it was deleted).
        let on_server = server.event_count();
        let queued = home.depth();
        assert!(
            on_server + queued >= EVENTS as i64,
            "round {round} (killed after {pause} ms): {on_server} on the server + {queued} queued < {EVENTS}"
        );
        assert!(on_server <= EVENTS as i64, "no event stored twice");
        eprintln!(
            "round {round}: {} after {pause} ms; {on_server} on the server, {queued} queued",
            if finished { "finished" } else { "killed" }
        );
    }
    assert!(
        killed_mid_drain > 0,
        "at least one run was killed mid-drain"
    );

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["remaining"], 0, "{json}");
    assert_eq!(
        server.event_count(),
        EVENTS as i64,
        "every event exactly once"
    );
    assert_eq!(home.depth(), 0, "the queue is empty");
    // The database is sound after the kills.
    let check: String = home
        .queue_db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
}

#[test]
fn two_drains_at_once_deliver_every_event_exactly_once() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    home.import(&events(&project(), 5000));

    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| home.run(&["sync", "now", "--json"]));
        let second = s.spawn(|| home.run(&["sync", "now", "--json"]));
        (
            first.join().expect("first drain"),
            second.join().expect("second drain"),
        )
    });
    let mut delivered = 0;
    for out in [&first, &second] {
        assert_eq!(code(out), 0, "{}", describe(out));
        let json = one_json_object(out);
        assert_eq!(json["failed"], 0, "{json}");
        delivered += json["synced"].as_u64().expect("synced");
    }
    assert_eq!(
        delivered, 5000,
        "each event stored by exactly one of the runs"
    );
    assert_eq!(server.event_count(), 5000);
    assert_eq!(home.depth(), 0);
}
