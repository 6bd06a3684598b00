//! `sync now` with several batches on the wire at once (issue 13), against
//! the real server: a 401 or a 413 that comes back while other batches are
//! in flight is answered for the refused batches alone, every event is
//! stored exactly once, and nothing leaves the queue unanswered.

use crate::queue_support;

use queue_support::{Home, Server, code, describe, events, id_of, one_json_object, project};
use serde_json::{Value, json};

/// Ten batches of 1000: more than the client keeps in flight at once.
const EVENTS: usize = 10_000;

/// The access token in the credentials file is one the server never
/// issued (as after the server's signing key changed) while its expiry
/// still lies ahead, so the client sends with it: the first batches of
/// the window all come back 401 from the real server. One refresh, the
/// refused batches sent again with the new token, everything stored once.
#[test]
fn a_401_on_batches_in_flight_costs_one_refresh_and_resends_only_those() {
    let server = Server::start();
    let home = Home::new();
    home.login(server.url());
    let all = events(&project(), EVENTS);
    home.import(&all);
    let text = std::fs::read_to_string(home.credentials_path()).expect("credentials");
    let mut doc = text.parse::<toml_edit::DocumentMut>().expect("TOML");
    doc["tokens"]["access"] = toml_edit::value("not-a-token-this-server-issued");
    std::fs::write(home.credentials_path(), doc.to_string()).expect("write credentials");
    let refreshes_before = server.refreshes();

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let json = one_json_object(&out);
    assert_eq!(json["synced"], EVENTS, "{json}");
    assert_eq!(
        json["duplicates"], 0,
        "no batch was stored twice (a stored batch sent again answers duplicate): {json}"
    );
    assert_eq!(json["remaining"], 0, "{json}");
    assert!(json["stopped"].is_null(), "{json}");
    assert_eq!(server.event_count(), EVENTS as i64);
    assert_eq!(
        server.refreshes() - refreshes_before,
        1,
        "one refresh for every 401 of the window"
    );
    assert!(home.rows().is_empty());
}

/// The size of `events` as one batch's JSON (`{"events":[...]}`).
fn batch_bytes(events: &[Value]) -> usize {
    events
        .iter()
        .map(|e| e.to_string().len() + 1)
        .sum::<usize>()
        + 12
}

/// A copy of `event` (with its own id) whose JSON is about `size` bytes.
fn padded(event: &Value, size: usize) -> Value {
    let mut event = event.clone();
    event["event_id"] = json!(ulid::Ulid::new().to_string());
    let base = event.to_string().len();
    event["payload"]["evidence"] = json!("x".repeat(size.saturating_sub(base + 16)));
    event
}

/// A real server whose limit on a batch's decompressed size sits just above
/// an ordinary 1000-event batch: the batches around them go through while
/// the one holding a large event is answered 413, is split until its
/// pieces fit (the large event itself fits on its own) and is delivered;
/// the batch holding an event larger than the limit on its own is split
/// down to that event, which is parked. Every other event is stored once.
#[test]
fn a_413_on_a_batch_in_flight_splits_it_while_the_others_go_through() {
    let project = project();
    let mut all = events(&project, EVENTS);
    let ordinary = all.chunks(1000).map(batch_bytes).max().expect("batches");
    let limit = ordinary + ordinary / 4;
    let large = padded(&all[2500], limit * 3 / 4);
    let huge = padded(&all[6500], limit + 4096);
    let (large_id, huge_id) = (id_of(&large), id_of(&huge));
    all.insert(6500, huge);
    all.insert(2500, large);

    let server = Server::start_with(|config| {
        config.limits.max_decompressed_bytes = limit;
    });
    let home = Home::new();
    home.login(server.url());
    home.import(&all);

    let out = home.run(&["sync", "now", "--json"]);
    assert_eq!(
        code(&out),
        1,
        "the parked event fails the run: {}",
        describe(&out)
    );
    let json = one_json_object(&out);
    assert_eq!(json["synced"], EVENTS + 1, "{json}");
    assert_eq!(json["duplicates"], 0, "nothing was stored twice: {json}");
    assert_eq!(json["failed"], 1, "{json}");
    assert!(json["stopped"].is_null(), "{json}");
    assert_eq!(server.event_count(), EVENTS as i64 + 1);
    let rows = home.rows();
    assert_eq!(rows.len(), 1, "only the oversized event stays: {rows:?}");
    queue_support::assert_parked_as_too_large(&rows, &huge_id);
    assert!(
        home.row(&large_id).is_none(),
        "the large event that fits on its own was delivered"
    );
}
