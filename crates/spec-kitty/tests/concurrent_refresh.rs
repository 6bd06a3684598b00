//! Single-flight refresh across processes: eight `spec-kitty` processes
//! started at once with an expired access token share one refresh.

use crate::common;

use std::process::{Child, Stdio};

use common::{Client, TestServer, one_json_object};

const PROCESSES: usize = 8;

fn spawn_all(client: &Client, args: &[&str]) -> Vec<Child> {
    (0..PROCESSES)
        .map(|_| {
            client
                .std_cmd()
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn spec-kitty")
        })
        .collect()
}

#[test]
fn eight_checks_at_once_share_exactly_one_refresh() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");

    // Two rounds, so a lucky ordering in one round cannot hide a race.
    for round in 1..=2 {
        client.expire_access();
        let before = server.refreshes();
        let children = spawn_all(&client, &["sync", "status", "--check", "--json"]);
        let mut refreshed_here = 0;
        for child in children {
            let out = child.wait_with_output().expect("wait for spec-kitty");
            let json = one_json_object(&out);
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: {json}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(json["outcome"], "connected", "round {round}: {json}");
            if json["refreshed"] == true {
                refreshed_here += 1;
            }
        }
        assert_eq!(
            server.refreshes() - before,
            1,
            "round {round}: the server saw exactly one refresh"
        );
        assert_eq!(refreshed_here, 1, "round {round}: one process refreshed");
        assert_eq!(Client::mode(&client.credentials_path()), 0o600);
    }
}

#[test]
fn eight_token_requests_at_once_print_the_same_fresh_token() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let old = client.stored("tokens", "access");
    client.expire_access();

    let children = spawn_all(&client, &["auth", "token"]);
    let mut tokens = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait for spec-kitty");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokens.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stored = format!("{}\n", client.stored("tokens", "access"));
    assert_ne!(stored, format!("{old}\n"));
    assert!(
        tokens.iter().all(|t| *t == stored),
        "every process printed the one refreshed token: {tokens:?}"
    );
    assert_eq!(server.refreshes(), 1);
}
