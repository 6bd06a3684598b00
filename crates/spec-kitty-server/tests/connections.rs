//! What one connection may cost (issue 12, item 1): idle, slow-head and
//! slow-body connections are closed, connections over the cap are refused,
//! and running out of file descriptors never stops the server. Timeouts
//! are set short here; every wait has a hang guard and no test asserts a
//! duration.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;

/// How long a test waits for the server before deciding it never acts: a
/// guard against a hang, far above the short timeouts configured here.
const HANG_GUARD: Duration = Duration::from_secs(10);

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(60);

fn connect(t: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(t.addr()).expect("connect");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    stream
}

/// Reads until the server closes the connection; `None` if it has not
/// closed it within [`HANG_GUARD`], else what it sent before closing.
fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // A reset is a close too.
            Err(_) => return Some(String::from_utf8_lossy(&seen).into_owned()),
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let t = TestServer::start_with(|c| {
        c.connections.idle_timeout = SHORT;
        c.connections.header_read_timeout = LONG;
    });
    let mut stream = connect(&t);
    stream.write_all(HEALTHZ).expect("request");
    let seen = read_until_closed(&mut stream)
        .expect("the server closes a kept-alive connection once it has been idle too long");
    assert!(seen.starts_with("HTTP/1.1 200"), "answered first: {seen}");
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let t = TestServer::start_with(|c| {
        c.connections.header_read_timeout = SHORT;
        c.connections.idle_timeout = LONG;
    });
    let mut stream = connect(&t);
    let seen = read_until_closed(&mut stream)
        .expect("a new connection must send its first request within the header timeout");
    assert_eq!(seen, "", "nothing is answered to nothing");
}

#[test]
fn a_request_head_trickled_line_by_line_is_cut_off() {
    let t = TestServer::start_with(|c| {
        c.connections.header_read_timeout = SHORT;
        c.connections.idle_timeout = LONG;
    });
    let mut stream = connect(&t);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .expect("request line");
    // One header line every 100 ms: each arrives well within any per-read
    // timeout, but the head as a whole never ends.
    let mut cut = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if stream.write_all(b"X-Slow: 1\r\n").is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        stream.set_nonblocking(true).expect("nonblocking");
        let closed = matches!(stream.read(&mut probe), Ok(0))
            || matches!(stream.read(&mut probe), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).expect("blocking");
        if closed {
            cut = true;
            break;
        }
    }
    assert!(
        cut || read_until_closed(&mut stream).is_some(),
        "a head trickled for 10 s must be cut off"
    );
}

/// Sends a log-in request whose body is declared 100 bytes long and sent
/// one byte every 100 ms, and reads the answer.
#[test]
fn a_body_trickled_byte_by_byte_is_answered_408() {
    let t = TestServer::start_with(|c| {
        c.connections.body_timeout = SHORT;
        c.connections.header_read_timeout = LONG;
    });
    let mut stream = connect(&t);
    stream
        .write_all(
            b"POST /api/v1/token/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        for _ in 0..99 {
            std::thread::sleep(Duration::from_millis(100));
            if writer.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let seen = read_until_closed(&mut stream).unwrap_or_default();
    assert!(
        seen.starts_with("HTTP/1.1 408"),
        "a body under 1 KiB/s is answered 408: {seen:?}"
    );
    let body = &seen[seen.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    assert!(body.contains("\"error\""), "a JSON error: {body}");
    let _ = trickle.join();
}

#[test]
fn connections_over_the_cap_are_closed_and_served_once_one_ends() {
    let t = TestServer::start_with(|c| {
        c.connections.max_connections = 3;
        c.connections.header_read_timeout = LONG;
        c.connections.idle_timeout = LONG;
    });
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(&t)).collect();
    // Make sure the three are accepted (and counted) before the fourth.
    for stream in &mut held {
        stream.write_all(HEALTHZ).expect("request");
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }

    let mut extra = connect(&t);
    let _ = extra.write_all(HEALTHZ);
    let seen = read_until_closed(&mut extra).expect("the fourth connection is closed");
    assert!(
        !seen.starts_with("HTTP/1.1 200"),
        "over the cap, nothing is served: {seen}"
    );

    drop(held.pop());
    let served = (0..100).any(|_| {
        let mut stream = connect(&t);
        let _ = stream.write_all(HEALTHZ);
        let mut buf = [0u8; 12];
        if stream.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    assert!(served, "a slot freed by a closed connection is used again");
}

/// The server binary under a 64 open-file limit, with the connection cap
/// set far above it: 100 idle connections run it out of descriptors. It
/// must keep running and serve again once they are gone.
#[test]
#[cfg(unix)]
fn running_out_of_file_descriptors_never_stops_the_server() {
    use std::io::BufRead;
    use std::process::Command;

    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let dir = tempfile::tempdir().expect("temp data dir");
    let script = format!(
        "ulimit -n 64 && exec '{}' --data-dir '{}' serve --listen 127.0.0.1:0 --max-connections 1000 --header-read-timeout 60 --idle-timeout 60",
        env!("CARGO_BIN_EXE_spec-kitty-server"),
        dir.path().display()
    );
    let mut child = Child(common::spawn_logging(
        Command::new("sh").args(["-c", &script]),
    ));
    let stderr = child.0.stderr.take().expect("stderr");
    let mut log = std::io::BufReader::new(stderr);
    let url = common::read_url(&mut log);
    // Keep reading the log so the server never blocks on a full pipe.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if let Ok(mut all) = sink.lock() {
                all.push_str(&line);
                all.push('\n');
            }
        }
    });
    let addr = common::host_port(&url);

    let flood: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(flood.len() > 64, "enough connections to exhaust the limit");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "the server is still running"
    );
    drop(flood);

    let agent = common::agent_with_timeout(Duration::from_secs(2));
    let healthy = (0..100).any(|_| {
        let ok = agent
            .get(format!("{url}/healthz"))
            .call()
            .is_ok_and(|r| r.status() == 200);
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    let log = lines.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        healthy,
        "the server serves again after the flood; log:\n{log}"
    );
    assert!(
        log.contains("cannot accept connections"),
        "the accept errors are logged:\n{log}"
    );
}
