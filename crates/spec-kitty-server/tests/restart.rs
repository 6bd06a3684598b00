//! A restart on the same data directory keeps users, events and the
//! signing key.

use crate::common;

use spec_kitty_server::BackgroundServer;
use spec_kitty_server::config::ServerConfig;

use common::{PASSWORD, agent, events, get, login_ok, new_project, post_batch};

#[test]
fn restart_keeps_users_events_and_signing_key() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let config = ServerConfig::for_data_dir(dir.path());
    let client = agent();
    let batch = events(&new_project(), 20);

    let (access, key_before) = {
        let server = BackgroundServer::start(&config).expect("first start");
        common::add_acme_alice(&server);
        let (access, _) = login_ok(&client, &server.url, "alice", PASSWORD);
        let reply = post_batch(&client, &server.url, &access, &batch);
        assert_eq!(reply.statuses(), ["success"; 20], "{}", reply.text);
        let key = std::fs::read_to_string(dir.path().join("signing-key")).expect("key file");
        (access, key)
        // The server stops here.
    };

    let server = BackgroundServer::start(&config).expect("second start");
    let key_after = std::fs::read_to_string(dir.path().join("signing-key")).expect("key file");
    assert_eq!(key_before, key_after, "the signing key is kept");

    let health = get(
        &client,
        &format!("{}/api/v1/sync/health/", server.url),
        Some(&access),
    );
    assert_eq!(
        health.status, 200,
        "a token issued before the restart still works: {}",
        health.text
    );
    assert_eq!(
        server
            .block_on(server.store.event_count())
            .expect("event count"),
        20
    );
    let reply = post_batch(&client, &server.url, &access, &batch);
    assert_eq!(
        reply.statuses(),
        ["duplicate"; 20],
        "the events are still stored: {}",
        reply.text
    );
    // And the user can still log in.
    login_ok(&client, &server.url, "alice", PASSWORD);
}
