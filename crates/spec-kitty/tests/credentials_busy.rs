//! Another process holding `credentials.lock` past the deadline: the check
//! ends within `--timeout` and says the credentials are busy, not broken.

use crate::common;

use common::{Client, TestServer};

#[test]
fn a_held_lock_is_reported_as_busy_within_the_timeout() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    client.expire_access();
    let before = client.credentials_bytes();

    // Hold the same advisory lock a refreshing process would hold.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(client.dir().join("credentials.lock"))
        .expect("lock file");
    lock.lock().expect("lock taken");

    let (exit, report) = client.check_json(&["--timeout", "1"]);
    assert_eq!(exit, 12, "{report}");
    assert_eq!(report["outcome"], "credentials_busy");
    assert_eq!(client.credentials_bytes(), before, "nothing written");
    assert_eq!(server.refreshes(), 0);

    drop(lock);
    let (exit, report) = client.check_json(&["--timeout", "5"]);
    assert_eq!(
        (exit, report["outcome"].as_str()),
        (0, Some("connected")),
        "{report}"
    );
}
