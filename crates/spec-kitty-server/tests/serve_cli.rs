//! `spec-kitty-server serve` and friends as a newcomer types them: short
//! `--listen` forms, `--color`, `--version`.
#![cfg(unix)]

use crate::common;

use std::io::BufReader;
use std::process::{Command, Stdio};

use common::ChildServer as Server;

/// Starts `serve ARGS` on a fresh data directory and returns the server
/// and its first log lines up to the "listening" one.
fn serve(dir: &std::path::Path, args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
        .arg("--data-dir")
        .arg(dir)
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SPEC_KITTY_SERVER_LISTEN")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let server = Server(child);
    let log = common::read_until_listening(&mut BufReader::new(stderr));
    (server, log)
}

#[test]
fn listen_takes_a_bare_port_and_localhost_port_as_this_machine() {
    for given in ["0", "localhost:0"] {
        let dir = tempfile::tempdir().expect("temp data dir");
        let (_server, log) = serve(dir.path(), &["--listen", given, "--color", "never"]);
        assert!(
            log.contains("url=http://127.0.0.1:"),
            "{given} listens on loopback:\n{log}"
        );
    }
}

#[test]
fn a_listen_address_that_does_not_parse_is_answered_with_examples() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let out = Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "my-host"])
        .env_remove("SPEC_KITTY_SERVER_LISTEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:8000"), "{stderr}");
    assert!(stderr.contains("a bare port like 8001"), "{stderr}");
}

#[test]
fn color_always_colours_log_lines_into_a_pipe_and_never_does_not() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let (server, log) = serve(dir.path(), &["--listen", "0", "--color", "always"]);
    assert!(log.contains('\x1b'), "coloured:\n{log}");
    drop(server);
    let dir = tempfile::tempdir().expect("temp data dir");
    let (_server, log) = serve(dir.path(), &["--listen", "0"]);
    assert!(
        !log.contains('\x1b'),
        "auto, into a pipe: no colour:\n{log}"
    );
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
        .arg("--version")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "spec-kitty-server {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains(", built 20"), "{text}");
}

#[test]
fn tls_self_signed_makes_a_ca_once_and_names_it_with_its_fingerprint() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let args = [
        "--listen",
        "0",
        "--color",
        "never",
        "--tls-self-signed",
        "--tls-name",
        "sync.example,10.1.2.3",
    ];
    let (server, log) = serve(dir.path(), &args);
    let ca = dir.path().join("tls").join("ca.pem");
    assert!(log.contains("url=https://127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("SSL_CERT_FILE={}", ca.display())),
        "the file clients trust is named:\n{log}"
    );
    assert!(
        log.contains("made a private certificate authority"),
        "{log}"
    );
    assert!(
        log.contains("sync.example") && log.contains("10.1.2.3"),
        "{log}"
    );
    let fingerprint = |log: &str| {
        let at = log.find("fingerprint=").expect("fingerprint logged") + "fingerprint=".len();
        log[at..at + 95].to_string()
    };
    let first = fingerprint(&log);
    assert!(
        first.split(':').count() == 32 && first.split(':').all(|b| b.len() == 2),
        "SHA-256 as AB:CD:...: {first}"
    );
    drop(server);

    // The second start keeps the CA clients already trust.
    let (_server, log) = serve(dir.path(), &args);
    assert!(
        !log.contains("made a private certificate authority"),
        "{log}"
    );
    assert_eq!(fingerprint(&log), first);
}

#[test]
fn tls_self_signed_beside_a_certificate_of_ones_own_is_refused() {
    let dir = tempfile::tempdir().expect("temp data dir");
    for args in [
        &[
            "--tls-self-signed",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ][..],
        &["--tls-name", "sync.example"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_spec-kitty-server"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("serve")
            .args(["--listen", "0"])
            .args(args)
            .env_remove("SPEC_KITTY_SERVER_LISTEN")
            .output()
            .expect("runs");
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--tls-self-signed"), "{args:?}: {stderr}");
        assert!(!dir.path().join("tls").exists(), "{args:?}: nothing made");
    }
}
