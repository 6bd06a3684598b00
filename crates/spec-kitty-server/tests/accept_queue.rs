//! The listening socket's accept queue (`http::listener`): deep enough
//! for every open board page to reconnect at once after a restart. With
//! std's 128, 500 watchers opening their streams together overflowed it
//! and some were reset (the board bench found it). `ss` reports a
//! listening socket's queue length as its Send-Q.

use crate::common;

use std::process::Command;

use common::TestServer;
use spec_kitty_server::http::listener::ACCEPT_QUEUE;

#[test]
fn the_listener_asks_for_a_deep_accept_queue() {
    let t = TestServer::start();
    let addr = t.addr();
    let port = addr.rsplit(':').next().expect("host:port");
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("runs ss (iproute2)");
    assert!(out.status.success(), "ss: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // State, Recv-Q, Send-Q (the queue's length for a listener), Local, Peer.
    let queue: i64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in: {text}"));
    let somaxconn: i64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("reads somaxconn")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(queue, i64::from(ACCEPT_QUEUE).min(somaxconn), "{text}");
    assert!(queue > 128, "deeper than std's default of 128: {text}");
}
