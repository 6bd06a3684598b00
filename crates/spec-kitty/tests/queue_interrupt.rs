//! Ctrl-C during `sync now`: the batches in flight finish, their results
//! are written, and the run says what was uploaded, what is left and how to
//! go on.

use crate::queue_support;

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use queue_support::{FakeBatch, Home, all_success, events, project};

const TOTAL: usize = 10_000;

#[test]
fn ctrl_c_stops_after_the_batches_in_flight_and_says_what_is_left() {
    let home = Home::new();
    // Ten batches of 1000: more than the client keeps on the wire at once.
    home.import(&events(&project(), TOTAL));
    let (first_batch, answered) = mpsc::channel::<()>();
    let first_batch = Mutex::new(first_batch);
    let fake = FakeBatch::start(move |ids| {
        if let Ok(tx) = first_batch.lock() {
            // Only the first send is received; later ones find no receiver.
            let _ = tx.send(());
        }
        // Pace the batches so the signal lands while the first window is
        // on the wire (this is not a timing assertion: a later signal
        // only means more was uploaded, which the test accepts).
        std::thread::sleep(Duration::from_millis(1500));
        (200, all_success(ids))
    });
    home.fake_login(&fake.url);

    let child = home
        .std_cmd()
        .args(["sync", "now"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    answered
        .recv_timeout(Duration::from_secs(120))
        .expect("the first batch arrives");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = child.wait_with_output().expect("the client ends");

    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    let uploaded = fake.batches().len() * 1000;
    let left = TOTAL - uploaded;
    assert!(left > 0, "the signal stopped the run early: {stderr}");
    assert_eq!(
        home.depth(),
        left as i64,
        "the uploaded events left the queue"
    );
    assert!(
        stderr.contains(&format!(
            "Interrupted: {uploaded} event(s) uploaded in this run ({uploaded} new, 0 already on the server); {left} still queued. Run `spec-kitty sync now` to upload the rest."
        )),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("Synced: {uploaded}")), "{stdout}");
}
