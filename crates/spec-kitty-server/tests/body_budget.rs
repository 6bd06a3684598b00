//! Batch bodies and memory (issue 12, item 2): a body without a valid
//! token is never held in memory, and bodies held at once stay within the
//! server's in-flight byte budget (503 with `Retry-After` beyond it).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{TestServer, batch_body, event, gzip, new_project};

/// A guard against a hang, far above anything the server should take.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// The resident memory of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens a batch upload declaring `length` bytes, with `token` if any, and
/// sends its head.
fn open_upload(t: &TestServer, token: Option<&str>, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(t.addr()).expect("connect");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST /api/v1/events/batch/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream
}

/// The status code of the answer on `stream`.
fn status_of(stream: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("no answer: {other:?} after {head:?}"),
        }
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {head:?}"))
}

#[test]
fn bodies_without_a_valid_token_are_not_held_in_memory() {
    let t = TestServer::start();
    const LENGTH: usize = 15 * 1024 * 1024;
    let chunk = vec![b' '; 1024 * 1024];
    let before = rss_kib();
    // Eight uploads without a token, each 14 of its 15 MiB sent, then
    // stalled: a server holding them would hold over 100 MiB.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = open_upload(&t, None, LENGTH);
        for _ in 0..14 {
            stream.write_all(&chunk).expect("body chunk");
        }
        stalled.push(stream);
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 48,
        "the server grew by {grown_mib} MiB holding unauthenticated bodies"
    );
    // Each still gets its clean 401 once its body is complete.
    for stream in &mut stalled {
        stream.write_all(&chunk).expect("last chunk");
        assert_eq!(status_of(stream), 401);
    }
}

/// A batch of one event, padded with JSON whitespace to `length` bytes.
fn padded_batch(project: &str, length: usize) -> Vec<u8> {
    let mut body = batch_body(&[event(project)]);
    assert!(body.len() < length);
    body.resize(length, b' ');
    body
}

#[test]
fn bodies_over_the_in_flight_budget_are_answered_503_with_retry_after() {
    let t = TestServer::start_with(|c| c.limits.max_inflight_body_bytes = 256 * 1024);
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    let project = new_project();

    // A holds 200 KiB of the 256 KiB budget while its body arrives.
    let a_body = padded_batch(&project, 200 * 1024);
    let mut a = open_upload(&t, Some(&access), a_body.len());
    a.write_all(&a_body[..10 * 1024]).expect("A's first part");
    // Let A's handler start and take its share (ordering, not timing).
    std::thread::sleep(Duration::from_millis(500));

    let b_body = padded_batch(&project, 100 * 1024);
    let reply = t.post_raw(Some(&access), &b_body, false);
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(reply.retry_after.is_some(), "Retry-After is set");
    assert!(reply.json()["error"].is_string(), "{}", reply.text);

    a.write_all(&a_body[10 * 1024..]).expect("A's rest");
    assert_eq!(status_of(&mut a), 200);
    drop(a);

    let reply = t.post_raw(Some(&access), &b_body, false);
    assert_eq!(reply.status, 200, "with A done, B fits: {}", reply.text);
}

/// Small gzip bodies inflate to many times their size: the inflated bytes
/// count against the budget too, or a few of them could take far more
/// memory than the budget says.
#[test]
fn inflated_bytes_count_against_the_in_flight_budget() {
    let t = TestServer::start_with(|c| {
        c.limits.max_body_bytes = 256 * 1024;
        c.limits.max_inflight_body_bytes = 512 * 1024;
    });
    t.add_team("acme");
    let (access, _) = t.user_with_tokens("alice", "acme");
    let project = new_project();

    // 2 MiB of JSON (whitespace padding) in a few KiB of gzip: the body
    // fits the budget, its inflated JSON does not.
    let big = gzip(&padded_batch(&project, 2 * 1024 * 1024));
    assert!(big.len() < 64 * 1024, "{} bytes of gzip", big.len());
    let reply = t.post_raw(Some(&access), &big, true);
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(reply.retry_after.is_some(), "Retry-After is set");
    assert!(reply.json()["error"].is_string(), "{}", reply.text);
    assert_eq!(t.event_count(), 0, "nothing stored from the refused batch");

    // The budget was given back: a batch that inflates within it is stored.
    let small = gzip(&padded_batch(&project, 200 * 1024));
    let reply = t.post_raw(Some(&access), &small, true);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(t.event_count(), 1);
}
