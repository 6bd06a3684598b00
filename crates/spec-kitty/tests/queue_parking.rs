//! Parking has a bound, and parked events can be put back in line.

use crate::queue_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use queue_support::{
    FakeBatch, Home, all_success, code, describe, events, project, stderr, stdout,
};
use serde_json::json;
use spec_kitty::sync::MAX_PARKED_PER_RUN;

/// A proxy or a broken server that refuses every batch as a bad request is
/// something a real server cannot be made to do, so a fake stands in. The
/// drain must not park the whole queue because of it; once the server is
/// fixed, `--retry-parked` sends the parked events again.
#[test]
fn a_server_refusing_everything_parks_a_bounded_number_then_retry_parked_sends_them() {
    let home = Home::new();
    let all = events(&project(), 60);
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let fake = FakeBatch::start(move |ids| {
        if flag.load(Ordering::SeqCst) {
            (200, all_success(ids))
        } else {
            (
                400,
                json!({"error": "Bad request", "details": "proxy says no"}).to_string(),
            )
        }
    });
    home.fake_login(&fake.url);
    home.import(&all);

    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 9, "{}", describe(&out));
    assert!(stderr(&out).contains("stopping"), "{}", describe(&out));
    let rows = home.rows();
    assert_eq!(rows.len(), 60, "nothing lost");
    let parked = rows.iter().filter(|r| r.state == "parked").count();
    assert_eq!(parked, MAX_PARKED_PER_RUN, "{rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r.state != "parked")
            .all(|r| r.retry_count == 0)
    );

    // Once the server is fixed, the pending events go; the parked ones wait
    // until asked for.
    healthy.store(true, Ordering::SeqCst);
    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        home.depth(),
        MAX_PARKED_PER_RUN as i64,
        "parked events wait"
    );

    let out = home.run(&["sync", "now"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("--retry-parked"),
        "{}",
        describe(&out)
    );

    let out = home.run(&["sync", "now", "--retry-parked"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("Synced: {MAX_PARKED_PER_RUN}")),
        "{}",
        describe(&out)
    );
    assert_eq!(home.depth(), 0);
}
