//! https the ways people set it up by hand: `serve --tls-self-signed`, and
//! a self-signed certificate made like `openssl req -x509` does (one
//! certificate marked `CA:TRUE`, serving as its own end-entity) pinned
//! with `SSL_CERT_FILE`. Real server, real client binary, real TLS.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use spec_kitty_server::config::Tls;

use crate::common::{self, Client, TestServer, code, describe};
use crate::python_client;

/// A self-signed certificate as `openssl req -x509` makes it: `CA:TRUE`,
/// for `names`, valid from `not_before` to `not_after` (days from now).
/// Returns the certificate and key files.
fn openssl_style(
    dir: &Path,
    names: &[&str],
    not_before: i64,
    not_after: i64,
) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(not_before);
    params.not_after = now + time::Duration::days(not_after);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

fn server_with(cert: &Path, key: &Path) -> TestServer {
    TestServer::with_alice_over(Tls::Files {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })
}

/// A server started with `--tls-self-signed`, and the CA file it made for
/// its clients.
fn self_signed_server() -> (TestServer, PathBuf) {
    let server = TestServer::with_alice_over(Tls::SelfSigned { names: Vec::new() });
    let ca = server.dir.path().join("data").join("tls").join("ca.pem");
    (server, ca)
}

#[test]
fn tls_self_signed_is_trusted_through_the_ca_file_the_server_made() {
    let (server, ca) = self_signed_server();
    assert!(server.url().starts_with("https://"), "{}", server.url());
    assert!(ca.exists(), "the CA clients trust is in the data dir");
    let client = Client::new();

    // Not trusted yet: refused as a certificate problem, with the fix.
    let out = client.login_trusting(server.url(), None);
    assert_eq!(code(&out), 8, "{}", describe(&out));
    assert!(
        common::stderr(&out).contains("tls/ca.pem"),
        "the file to trust is named: {}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());

    // Trusted through the CA file: log-in and the check work, for the
    // address and for localhost.
    let out = client.login_trusting(server.url(), Some(&ca));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    client.assert_connected_trusting(&ca);
    let by_name = server.url().replace("127.0.0.1", "localhost");
    let out = Client::new().login_trusting(&by_name, Some(&ca));
    assert_eq!(code(&out), 0, "{}", describe(&out));
}

#[test]
fn an_openssl_style_self_signed_certificate_pinned_in_ssl_cert_file_is_accepted() {
    let pki = tempfile::tempdir().expect("dir");
    let (cert, key) = openssl_style(pki.path(), &["localhost", "127.0.0.1"], -1, 30);
    let server = server_with(&cert, &key);
    let client = Client::new();
    let out = client.login_trusting(server.url(), Some(&cert));
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(client.credentials_path().exists());
}

#[test]
fn a_pinned_self_signed_certificate_for_another_host_is_refused() {
    let pki = tempfile::tempdir().expect("dir");
    let (cert, key) = openssl_style(pki.path(), &["sync.example"], -1, 30);
    let server = server_with(&cert, &key);
    let client = Client::new();
    let out = client.login_trusting(server.url(), Some(&cert));
    assert_eq!(code(&out), 8, "{}", describe(&out));
    assert!(
        common::stderr(&out).contains("not trusted"),
        "{}",
        describe(&out)
    );
    assert!(!client.credentials_path().exists());
}

/// webpki checks the validity period before it refuses a CA as an
/// end-entity; the client relies on that order (see `net/tls.rs`), and
/// this test holds it to account.
#[test]
fn an_expired_pinned_self_signed_certificate_is_refused() {
    let pki = tempfile::tempdir().expect("dir");
    let (cert, key) = openssl_style(pki.path(), &["localhost", "127.0.0.1"], -30, -1);
    let server = server_with(&cert, &key);
    let client = Client::new();
    let out = client.login_trusting(server.url(), Some(&cert));
    assert_eq!(code(&out), 8, "{}", describe(&out));
    assert!(!client.credentials_path().exists());
}

#[test]
fn a_self_signed_certificate_other_than_the_pinned_one_is_refused() {
    let pki = tempfile::tempdir().expect("dir");
    let (cert, key) = openssl_style(pki.path(), &["localhost", "127.0.0.1"], -1, 30);
    let server = server_with(&cert, &key);
    let other = tempfile::tempdir().expect("dir");
    let (pinned, _) = openssl_style(other.path(), &["localhost", "127.0.0.1"], -1, 30);
    let client = Client::new();
    let out = client.login_trusting(server.url(), Some(&pinned));
    assert_eq!(code(&out), 8, "{}", describe(&out));
    assert!(!client.credentials_path().exists());
}

/// The Python client 2.1.3 talks https only; `--tls-self-signed` must be
/// enough for it too, through the same `SSL_CERT_FILE`.
#[test]
fn the_python_client_logs_in_to_a_tls_self_signed_server_through_its_ca_file() {
    let Some(python) = python_client::real() else {
        eprintln!("skipped: the real Python client 2.1.3 is not available here");
        return;
    };
    let (server, ca) = self_signed_server();
    let url = server.url().replace("127.0.0.1", "localhost");
    let client = Client::new();
    let home = client.dir().parent().expect("HOME").to_path_buf();
    let out = python.login(&home, &url, "alice", common::PASSWORD, &ca);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        client.credentials_path().exists(),
        "the Python client saved its session: {}",
        describe(&out)
    );
    // Our client reads the session the Python client wrote, over the same
    // https.
    client.assert_connected_trusting(&ca);
}
