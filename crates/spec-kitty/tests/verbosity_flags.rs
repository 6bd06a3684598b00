//! `-q`, `-v` and `-vv` against the real server: what each adds or drops,
//! and that the HTTP trace of `-vv` never shows a token or a password.

use crate::common;

use common::{Client, PASSWORD, TestServer, code, describe, password_login, stderr, stdout};

#[test]
fn vv_traces_every_request_without_any_secret() {
    let server = TestServer::with_alice();
    let client = Client::new();
    let out = password_login(
        client.cmd().arg("-vv"),
        server.url(),
        "alice",
        PASSWORD,
        &[],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let login_trace = stderr(&out);
    assert!(
        login_trace.contains(&format!("http: POST {}/api/v1/token/ -> 200", server.url())),
        "{}",
        describe(&out)
    );
    assert!(!login_trace.contains(PASSWORD), "{login_trace}");
    let access = client.stored("tokens", "access");
    let refresh = client.stored("tokens", "refresh");
    assert!(!login_trace.contains(&access) && !login_trace.contains(&refresh));

    // An expired access token: the check refreshes, then probes the batch
    // endpoint with the new access token.
    client.expire_access();
    let out = client.run(&["-vv", "sync", "status", "--check"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let trace = stderr(&out);
    assert!(
        trace.contains(&format!(
            "http: POST {}/api/v1/token/refresh/ -> 200",
            server.url()
        )),
        "{}",
        describe(&out)
    );
    assert!(
        trace.contains(&format!(
            "http: POST {}/api/v1/events/batch/ -> 200",
            server.url()
        )),
        "{}",
        describe(&out)
    );
    let new_access = client.stored("tokens", "access");
    let new_refresh = client.stored("tokens", "refresh");
    for secret in [&access, &refresh, &new_access, &new_refresh] {
        assert!(
            !trace.contains(secret.as_str()),
            "a token in the trace: {trace}"
        );
    }
    assert!(
        !trace.to_ascii_lowercase().contains("authorization"),
        "{trace}"
    );
    assert!(!trace.contains("Bearer"), "{trace}");

    // -vv keeps the -v lines.
    assert!(trace.contains("spec-kitty: server: "), "{trace}");
}

#[test]
fn v_names_the_server_and_the_files_and_traces_nothing() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let out = client.run(&["sync", "status", "-v"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("spec-kitty: server: {}", server.url())),
        "{}",
        describe(&out)
    );
    assert!(err.contains("spec-kitty: credentials: "), "{err}");
    assert!(err.contains("spec-kitty: config: "), "{err}");
    assert!(err.contains("spec-kitty: queue: "), "{err}");
    assert!(!err.contains("http: "), "{err}");

    // Without -v: none of it.
    let out = client.run(&["sync", "status"]);
    assert!(!stderr(&out).contains("spec-kitty: "), "{}", describe(&out));
}

#[test]
fn q_keeps_results_and_errors_and_refuses_v() {
    let server = TestServer::with_alice();
    let client = Client::new();
    let out = client.run(&["-q", "sync", "server", server.url()]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Sync server set to"),
        "results stay: {}",
        describe(&out)
    );

    // An error still goes to stderr, with its exit code.
    let out = client.run(&["-q", "auth", "token"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("error:"), "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));

    let out = client.run(&["-q", "-v", "sync", "status"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
}
