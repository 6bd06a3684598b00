//! https for the client: rustls (ring) with the system's roots plus
//! `SSL_CERT_FILE`, and one rule webpki alone does not have.
//!
//! A self-signed certificate made the usual way (`openssl req -x509`) is
//! marked `CA:TRUE` and serves as its own end-entity. webpki refuses that
//! (`CaUsedAsEndEntity`) even when the user trusted exactly that
//! certificate with `SSL_CERT_FILE`, while curl and the Python client
//! accept it; our advice to "point SSL_CERT_FILE at it" was what the user
//! had already done. [`PinningVerifier`] accepts such a certificate when
//! the server presents exactly one of the certificates of `SSL_CERT_FILE`,
//! still checking its validity period and that it names the host. Every
//! other certificate goes through webpki unchanged.
//!
//! ureq 3 has no hook for a certificate verifier, so https goes through
//! [`TlsConnector`], a small ureq connector over a rustls
//! `ClientConnection` built with that verifier.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// The system bundles read beside `SSL_CERT_FILE`, so a private CA adds to
/// the public roots instead of hiding them.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Why no TLS configuration could be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

/// The rustls configuration every https request of this process uses.
pub fn client_config() -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pinned = pinned_certificates();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if std::env::var_os("SSL_CERT_FILE").is_some() {
        // `load_native_certs` read SSL_CERT_FILE instead of the system
        // bundle; add the bundle back.
        if let Some(bundle) = SYSTEM_BUNDLES
            .iter()
            .find_map(|path| std::fs::read(path).ok())
        {
            roots.add_parsable_certificates(
                CertificateDer::pem_slice_iter(&bundle).filter_map(Result::ok),
            );
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            TlsSetupError(format!(
                "no trusted certificates to check https servers with ({e}); install the system's CA bundle or point SSL_CERT_FILE at a PEM file"
            ))
        })?;
    let verifier = PinningVerifier { webpki, pinned };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of `SSL_CERT_FILE`, the ones a user trusted by name.
fn pinned_certificates() -> Vec<CertificateDer<'static>> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Vec::new();
    };
    match std::fs::read(path) {
        Ok(pem) => CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// webpki, plus: a `CA:TRUE` certificate presented as the server's own is
/// accepted when it is byte for byte one the user pinned in
/// `SSL_CERT_FILE`, valid now and issued for the host.
#[derive(Debug)]
pub struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

/// Whether webpki refused `error` only because a CA certificate was used
/// as an end-entity. webpki checks the validity period before the CA flag
/// (`check_issuer_independent_properties`), so a certificate refused for
/// this reason is within its validity period; the test
/// `an_expired_pinned_self_signed_certificate_is_refused` holds that order
/// to account.
fn ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(error)
                if ca_used_as_end_entity(&error)
                    && self
                        .pinned
                        .iter()
                        .any(|pin| pin.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The ureq connector that wraps a connection in TLS for https URLs
/// (after the TCP and proxy connectors of the chain).
#[derive(Debug)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("the URL names no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            ureq::Error::Tls("the URL's host cannot be checked against a certificate")
        })?;
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        conn.complete_io(&mut socket)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, socket),
        })))
    }
}

/// One TLS connection, as ureq's [`Transport`].
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let read = self.stream.read(input)?;
        self.buffers.input_appended(read);
        Ok(read > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
