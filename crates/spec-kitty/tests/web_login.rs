//! `spec-kitty auth login --web` against the real server: the binary
//! prints the code, "opens a browser" (BROWSER set to a script that
//! records the URL, or to nothing that exists), polls, and saves the same
//! credentials file as a password log-in once the code is approved on the
//! page `/device` (driven over HTTP with a session cookie, as a browser
//! would post its form); a denied code saves nothing.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Client, TestServer, code, describe, no_redirects, page_cookie, stdout};

/// A server whose device codes may be polled every second.
fn server() -> TestServer {
    let server = TestServer::start_with(|c| c.limits.device_poll_interval = 1);
    server.add_team("acme");
    server.add_user("alice", "acme");
    server
}

/// Logs alice in on the page and approves or denies `user_code` there.
fn decide_on_the_page(base: &str, user_code: &str, decision: &str) {
    let cookie = page_cookie(base, "&next=/device");
    let mut response = no_redirects()
        .post(format!("{base}/device"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", base)
        .header("Cookie", &cookie)
        .send(format!("code={user_code}&decision={decision}").as_bytes())
        .expect("decision answered");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(response.status().as_u16(), 200, "{text}");
}

/// Waits (within the hang guard) for `path` to hold a line.
fn wait_for_file(path: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_string();
        }
        assert!(
            started.elapsed() < common::HANG_GUARD,
            "no browser was opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().expect("spec-kitty ends")
}

#[test]
fn approved_in_the_browser_saves_the_same_credentials_as_a_password_log_in() {
    let server = server();
    let client = Client::new();
    let url_file = client.home.path().join("opened-url");
    let script = client.home.path().join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" > '{}'\n",
            url_file.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("executable");

    let child = client
        .std_cmd()
        .args(["auth", "login", "--web", "--server", server.url()])
        .env("BROWSER", &script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spec-kitty starts");
    let opened = wait_for_file(&url_file);
    let prefix = format!("{}/device?code=", server.url());
    let user_code = opened
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("the browser got the complete URL: {opened}"))
        .to_string();
    assert!(
        !client.credentials_path().exists(),
        "nothing saved while waiting"
    );
    decide_on_the_page(server.url(), &user_code, "approve");

    let out = finish(child);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&user_code), "the code is printed: {err}");
    assert!(err.contains(&format!("{}/device", server.url())), "{err}");
    assert!(stdout(&out).contains("Logged in to"), "{}", describe(&out));
    assert_eq!(client.stored("user", "username"), "alice");
    assert_eq!(client.stored("user", "team_slug"), "acme");
    assert_eq!(client.stored("server", "url"), server.url());
    assert_eq!(Client::mode(&client.credentials_path()), 0o600);

    let check = client.run(&["sync", "status", "--check"]);
    assert_eq!(code(&check), 0, "{}", describe(&check));
    assert!(
        stdout(&check).contains("alice (team acme)"),
        "{}",
        describe(&check)
    );
}

#[test]
fn denied_in_the_browser_saves_nothing_and_no_browser_is_no_failure() {
    let server = server();
    let client = Client::new();
    let mut child = client
        .std_cmd()
        .args(["auth", "login", "--web", "--server", server.url()])
        .env("BROWSER", "/nonexistent/browser")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spec-kitty starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line on stderr").expect("readable");
    let user_code = first
        .rsplit(' ')
        .next()
        .expect("the code ends the line")
        .to_string();
    assert_eq!(user_code.len(), 9, "{first}");
    decide_on_the_page(server.url(), &user_code, "deny");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = finish(child);
    assert_eq!(code(&out), 5, "{first}\n{rest:?}\n{}", describe(&out));
    assert!(
        rest.iter().any(|l| l.contains("denied in the browser")),
        "{rest:?}"
    );
    assert!(!client.credentials_path().exists(), "nothing saved");
}
