//! Serving https directly with a PEM certificate and key.

use crate::common;

use std::sync::Arc;

use spec_kitty_server::BackgroundServer;
use spec_kitty_server::config::{ServerConfig, Tls};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use common::PASSWORD;

/// A client trusting only `roots` (ureq is built without a default crypto
/// provider, so ring is passed explicitly).
fn tls_agent(roots: RootCerts) -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            TlsConfig::builder()
                .root_certs(roots)
                .unversioned_rustls_crypto_provider(provider)
                .build(),
        )
        .build()
        .new_agent()
}

#[test]
fn serves_https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");

    let mut config = ServerConfig::for_data_dir(&dir.path().join("data"));
    config.tls = Some(Tls::Files {
        cert: cert_path,
        key: key_path,
    });
    let server = BackgroundServer::start(&config).expect("https server starts");
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let cert = Certificate::from_der(certified.cert.der()).to_owned();
    let client = tls_agent(RootCerts::new_with_certs(&[cert]));
    let reply = common::get(&client, &format!("{}/healthz", server.url), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "ok");

    // The whole flow works over TLS: log in, then an authenticated probe.
    common::add_acme_alice(&server);
    let (access, _) = common::login_ok(&client, &server.url, "alice", PASSWORD);
    let reply = common::get(
        &client,
        &format!("{}/api/v1/sync/health/", server.url),
        Some(&access),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);

    // A client trusting some other certificate cannot connect.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("another certificate");
    let other = Certificate::from_der(stranger.cert.der()).to_owned();
    let untrusting = tls_agent(RootCerts::new_with_certs(&[other]));
    let refused = untrusting.get(format!("{}/healthz", server.url)).call();
    assert!(refused.is_err(), "an untrusted certificate must fail");
}

#[test]
fn unreadable_certificate_fails_to_start() {
    let dir = tempfile::tempdir().expect("temp data dir");
    let mut config = ServerConfig::for_data_dir(dir.path());
    config.tls = Some(Tls::Files {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("key.pem"),
    });
    let started = BackgroundServer::start(&config);
    assert!(started.is_err(), "missing certificate is a start error");
}
