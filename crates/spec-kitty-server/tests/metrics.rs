//! `--metrics-listen`: Prometheus metrics on a listener of their own, what
//! they count, and that a stranger can neither read them on the public
//! listener nor grow them by requesting random paths.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::common::{self, TestServer};

/// A server with metrics on a free loopback port of their own.
fn start() -> TestServer {
    TestServer::start_with(|config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
}

fn scrape(server: &TestServer) -> String {
    let addr = server
        .server
        .metrics_addr
        .expect("the metrics listener is on");
    assert_ne!(
        addr, server.server.addr,
        "metrics have a listener of their own"
    );
    let reply = common::get(&server.agent, &format!("http://{addr}/metrics"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.text
}

/// The value of the sample named `name` with exactly these `labels`
/// (`{a="x",b="y"}` as written, or empty), or 0 when it is absent.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let key = format!("{name}{labels} ");
    text.lines()
        .find_map(|line| line.strip_prefix(key.as_str()))
        .map_or(0.0, |value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}{labels}: {value} ({e})"))
        })
}

/// The distinct `route` label values of the request counter.
fn routes(text: &str) -> Vec<String> {
    let mut routes: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("spec_kitty_http_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

#[test]
fn counters_move_with_log_ins_batches_and_requests() {
    let server = start();
    server.add_team("acme");
    server.add_user("alice", "acme");
    let (token, _) = common::login_ok(&server.agent, &server.server.url, "alice", common::PASSWORD);
    assert_eq!(server.login("alice", "wrong-password").status, 401);
    let project = common::new_project();
    let fresh = common::events(&project, 2);
    let mut batch = fresh.clone();
    batch.push(fresh[0].clone());
    batch.push(common::event_with_lane(&project, "no-such-lane"));
    let reply = server.post_batch(&token, &batch);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.statuses(),
        ["success", "success", "duplicate", "rejected"]
    );

    let text = scrape(&server);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text:\n{text}");
    let login = r#"{route="/api/v1/token/",method="POST","#;
    assert_eq!(
        sample(
            &text,
            "spec_kitty_http_requests_total",
            &format!(r#"{login}status="200"}}"#)
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "spec_kitty_http_requests_total",
            &format!(r#"{login}status="401"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "spec_kitty_http_requests_total",
            r#"{route="/api/v1/events/batch/",method="POST",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "spec_kitty_http_request_duration_seconds_count",
            r#"{route="/api/v1/token/"}"#
        ),
        2.0
    );
    for (outcome, n) in [("success", 2.0), ("duplicate", 1.0), ("rejected", 1.0)] {
        assert_eq!(
            sample(
                &text,
                "spec_kitty_events_ingested_total",
                &format!(r#"{{outcome="{outcome}"}}"#)
            ),
            n,
            "{outcome}"
        );
    }
    assert_eq!(sample(&text, "spec_kitty_login_failures_total", ""), 1.0);
    assert_eq!(sample(&text, "spec_kitty_login_throttled_total", ""), 0.0);
    // The agent keeps its connection to the public listener open.
    assert!(sample(&text, "spec_kitty_open_connections", "") >= 1.0);
    assert!(sample(&text, "spec_kitty_db_pool_max_connections", "") >= 1.0);
    assert!(text.contains("spec_kitty_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("spec_kitty_db_pool_connections{state=\"in_use\"}"));
    // Neither the user's name nor the token is ever a label.
    assert!(!text.contains("alice"));
    assert!(!text.contains(&token));
}

#[test]
fn throttled_log_ins_are_counted_apart_from_failures() {
    let server = TestServer::start_with(|config| {
        config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.limits.login_max_failures = 1;
    });
    server.add_team("acme");
    server.add_user("bob", "acme");
    assert_eq!(server.login("bob", "wrong").status, 401);
    assert_eq!(server.login("bob", "wrong").status, 429);
    let text = scrape(&server);
    assert_eq!(sample(&text, "spec_kitty_login_failures_total", ""), 1.0);
    assert_eq!(sample(&text, "spec_kitty_login_throttled_total", ""), 1.0);
}

#[test]
fn the_public_listener_has_no_metrics_and_random_paths_add_no_routes() {
    let server = start();
    assert_eq!(server.get("/metrics", None).status, 404);
    assert_eq!(server.get("/healthz", None).status, 200);
    let before = routes(&scrape(&server));
    for i in 0..5 {
        let path = format!("/no-such-page-{i}-{}", uuid::Uuid::new_v4());
        assert_eq!(server.get(&path, None).status, 404);
        let api = format!("/api/v1/nothing/{}/", uuid::Uuid::new_v4());
        assert_eq!(server.get(&api, None).status, 404);
    }
    let text = scrape(&server);
    let after = routes(&text);
    assert!(after.contains(&"unmatched".to_string()), "{after:?}");
    assert!(after.contains(&"/healthz".to_string()), "{after:?}");
    assert!(!text.contains("no-such-page"), "{text}");
    assert!(!text.contains("/api/v1/nothing/"), "{text}");
    // Ten requests to ten new paths: one new label at most.
    assert!(after.len() <= before.len() + 1, "{before:?} -> {after:?}");
    assert_eq!(
        sample(
            &text,
            "spec_kitty_http_requests_total",
            r#"{route="unmatched",method="GET",status="404"}"#
        ),
        11.0,
        "{text}"
    );
    // A project route is labelled by its template, not the project.
    let project = common::new_project();
    server.get(&format!("/api/v1/projects/{project}/board/"), None);
    let text = scrape(&server);
    assert!(!text.contains(&project));
    assert!(text.contains(r#"route="/api/v1/projects/{uuid}/board/""#));
    // The metrics listener serves nothing else.
    let addr = server.server.metrics_addr.expect("metrics on");
    let other = common::get(&server.agent, &format!("http://{addr}/healthz"), None);
    assert_eq!(other.status, 404);
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let server = TestServer::start();
    assert!(server.server.metrics_addr.is_none());
    assert_eq!(server.get("/metrics", None).status, 404);
}

/// `serve --metrics-listen` and its environment variable, through the
/// binary: the address is logged and scraped.
#[cfg(unix)]
#[test]
fn serve_takes_metrics_listen_from_flag_or_environment() {
    for from_env in [false, true] {
        let dir = tempfile::tempdir().expect("temp data dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"));
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "0", "--color", "never"])
            .env_remove("RUST_LOG")
            .env_remove("SPEC_KITTY_SERVER_LISTEN")
            .env_remove("SPEC_KITTY_SERVER_METRICS_LISTEN")
            .env_remove("SPEC_KITTY_SERVER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if from_env {
            command.env("SPEC_KITTY_SERVER_METRICS_LISTEN", "127.0.0.1:0");
        } else {
            command.args(["--metrics-listen", "localhost:0"]);
        }
        let mut child = command.spawn().expect("the server starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut reader = BufReader::new(stderr);
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("the log reads");
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the log ended before metrics listened:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains("metrics listening") {
                let url = line
                    .split("url=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string);
                break url;
            }
        };
        let reply = url.map(|url| common::get(&common::agent(), &url, None));
        let _ = child.kill();
        let _ = child.wait();
        let reply = reply.unwrap_or_else(|| panic!("no metrics url logged:\n{seen}"));
        assert!(seen.contains("url=http://127.0.0.1:"), "{seen}");
        assert_eq!(reply.status, 200, "from_env={from_env}");
        assert!(reply.text.contains("spec_kitty_open_connections"));
    }
}
