//! Issue #15, bug 1: `spec-kitty-server serve 2>&1 | tee log`, Ctrl-C.
//! `tee` dies first, so every log line after it meets a closed pipe
//! (`EPIPE`). The server must go on answering, and stop cleanly on
//! SIGTERM, whether or not its log lines can be written.
#![cfg(unix)]

use crate::common;

use std::io::BufReader;
use std::process::Command;
use std::time::Duration;

use common::{ChildServer as Server, HANG_GUARD};

fn healthz(agent: &ureq::Agent, url: &str) -> Result<u16, String> {
    agent
        .get(format!("{url}/healthz"))
        .call()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[test]
fn server_keeps_serving_and_stops_on_sigterm_after_its_log_pipe_closes() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let child = common::spawn_logging(
        Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"]),
    );
    let mut server = Server(child);
    let stderr = server.0.stderr.take().expect("stderr is piped");
    let mut reader = BufReader::new(stderr);
    let url = common::read_url(&mut reader);

    // `tee` is gone: nobody reads the server's log any more.
    drop(reader);

    let agent = common::agent_with_timeout(Duration::from_secs(10));
    // Each request logs a line, and each line meets the closed pipe.
    for attempt in 0..5 {
        assert_eq!(
            healthz(&agent, &url),
            Ok(200),
            "request {attempt} after the log pipe closed"
        );
    }

    let status = common::stop_with_sigterm(&mut server);
    let status = status.unwrap_or_else(|| {
        panic!(
            "the server ignored SIGTERM after its log pipe closed (still running after {HANG_GUARD:?})"
        )
    });
    assert!(
        status.success(),
        "the server stops cleanly on SIGTERM: {status}"
    );
}
