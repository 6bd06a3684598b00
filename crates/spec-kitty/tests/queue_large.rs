//! 250,000 queued events drained with bounded memory. Alone in its test
//! binary, so the peak RSS of the children (getrusage RUSAGE_CHILDREN) is
//! that of this test's own `spec-kitty` runs (an upper bound: it also
//! covers this process's RSS when the child started, which is small). A
//! memory bound, not a timing.

use crate::queue_support;

use queue_support::{
    Home, Server, children_peak_rss, code, describe, events, micros, one_json_object, project,
    reset_own_peak_rss,
};
use rusqlite::params;

const EVENTS: usize = 250_000;
const MAX_RSS: u64 = 100 * 1024 * 1024;

#[test]
fn a_quarter_million_events_drain_in_bounded_memory() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    home.create_queue();

    // Generated straight into the client's queue, in its own schema, for
    // speed: the same rows `sync import` would have written.
    let project = project();
    let template = events(&project, 1).remove(0);
    let base = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mut conn = home.queue_db();
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (event_id, event_type, ts_micros, body, queued_at)
                 VALUES (?1, 'WPStatusChanged', ?2, ?3, ?2)",
            )
            .expect("prepare");
        let mut event = template;
        for i in 0..EVENTS {
            let at = base + time::Duration::microseconds(i as i64);
            let id = ulid::Ulid::new().to_string();
            event["event_id"] = id.clone().into();
            event["timestamp"] = queue_support::stamp(at).into();
            event["lamport_clock"] = (i as u64 + 1).into();
            event["payload"]["wp_id"] = format!("WP{:02}", i % 100).into();
            insert
                .execute(params![id, micros(at), event.to_string()])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    drop(conn);
    assert_eq!(home.depth(), EVENTS as i64);

    reset_own_peak_rss();
    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], EVENTS as u64, "{json}");
    assert_eq!(json["remaining"], 0, "{json}");
    assert_eq!(
        server.event_count(),
        EVENTS as i64,
        "all reached the server"
    );
    assert_eq!(home.depth(), 0);

    let peak = children_peak_rss();
    assert!(peak > 0, "getrusage reports the children's peak RSS");
    assert!(
        peak < MAX_RSS,
        "peak RSS of `sync now` was {} MiB (bound {} MiB)",
        peak / (1024 * 1024),
        MAX_RSS / (1024 * 1024)
    );
    eprintln!(
        "drained {EVENTS} events; peak RSS of the children {} MiB",
        peak / (1024 * 1024)
    );
}
