//! A session revoked on the server's Sessions page: the client logged in
//! with the real binary is listed there (client, address), and once its
//! family is revoked its next refresh is refused, which `sync status
//! --check` reports as "Session expired".

use crate::common;

use common::{Client, TestServer, code, describe, no_redirects, page_cookie, stdout};

#[test]
fn a_session_revoked_on_the_page_makes_the_client_say_session_expired() {
    let server = TestServer::with_alice();
    let client = Client::new();
    client.login(server.url(), "alice");
    let base = server.url().to_string();
    let cookie = page_cookie(&base, "");

    let mut response = no_redirects()
        .get(format!("{base}/sessions"))
        .header("Cookie", &cookie)
        .call()
        .expect("page answered");
    assert_eq!(response.status().as_u16(), 200);
    let html = response.body_mut().read_to_string().expect("html");
    assert!(html.contains("spec-kitty/"), "the client is named: {html}");
    assert!(html.contains("127.0.0.1"), "its address is shown: {html}");
    let family = html
        .split("data-family=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a session row")
        .to_string();

    // Without a session the form changes nothing.
    let refused = no_redirects()
        .post(format!("{base}/sessions/{family}/revoke"))
        .header("Origin", &base)
        .send(&b""[..])
        .expect("answered");
    assert_eq!(refused.status().as_u16(), 401);
    let check = client.run(&["sync", "status", "--check"]);
    assert_eq!(code(&check), 0, "still connected: {}", describe(&check));

    let revoked = no_redirects()
        .post(format!("{base}/sessions/{family}/revoke"))
        .header("Origin", &base)
        .header("Cookie", &cookie)
        .send(&b""[..])
        .expect("answered");
    assert!(revoked.status().is_redirection(), "{}", revoked.status());

    // The access token still works until it expires; then the refresh is
    // refused.
    client.expire_access();
    let check = client.run(&["sync", "status", "--check"]);
    assert_eq!(code(&check), 4, "{}", describe(&check));
    assert!(
        stdout(&check).starts_with("Session expired:"),
        "{}",
        describe(&check)
    );
}
