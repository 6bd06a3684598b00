//! `serve --tls-self-signed`: https in one flag, for a team without a
//! public certificate.
//!
//! The first start makes a private certificate authority in
//! `DATA_DIR/tls/` (`ca.pem`, and `ca-key.pem` readable by the server's
//! user only); clients trust it once with `SSL_CERT_FILE=.../ca.pem`, the
//! way curl, the Python client and ours all read it. Every start then
//! issues a fresh server certificate from that CA, in memory only, for the
//! names the server answers to (localhost, the loopback addresses, the
//! machine's host name, the listen address and every `--tls-name`). So a
//! new name or an expiring certificate never needs the clients to trust
//! anything new, and no server key lies on disk to go stale or leak.
//!
//! The CA is a real CA (`CA:TRUE`, allowed to sign certificates, no
//! intermediates) and the server certificate a real end-entity
//! (`CA:FALSE`, server authentication): what strict verifiers such as
//! rustls's webpki require, unlike the one certificate `openssl req -x509`
//! makes for both roles.

use std::fmt::Write as _;
use std::fs::{self, DirBuilder};
use std::io::{ErrorKind, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The directory under the data directory that holds the CA.
pub const TLS_DIR: &str = "tls";
/// The CA certificate clients point `SSL_CERT_FILE` at.
pub const CA_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// How long the CA is valid: long, since every client trusts it by hand.
const CA_LIFETIME: Duration = Duration::days(3650);
/// How long one server certificate is valid. Issued again at every start,
/// so only a server left running for over a year would see it expire;
/// 397 days is the most browsers accept.
const SERVER_LIFETIME: Duration = Duration::days(397);
/// Slack on `not_before` for clients whose clocks run a little behind.
const CLOCK_SLACK: Duration = Duration::hours(1);

/// Why the self-signed certificate could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SelfSignedError {
    #[error("cannot write the private CA in {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the private CA {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the private CA in {dir} is damaged ({detail}); move the directory aside to make a new one (every client must then trust the new ca.pem)"
    )]
    Corrupt { dir: PathBuf, detail: String },
    #[error("'{name}' cannot be a name in a certificate: {detail}")]
    Name { name: String, detail: String },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

/// A server certificate issued from the private CA, in PEM, held in memory.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA file clients trust.
    pub ca_file: PathBuf,
    /// SHA-256 of the CA certificate, `AB:CD:...` as `openssl x509
    /// -fingerprint -sha256` prints it, so a user can compare before
    /// trusting it.
    pub ca_fingerprint: String,
    /// The names the server certificate is valid for.
    pub names: Vec<String>,
    /// Whether this start made the CA.
    pub created: bool,
}

/// The CA's distinguished name, derived from its key, so the name can be
/// recomputed from `ca-key.pem` alone when issuing (no certificate parser
/// needed) and two servers' CAs never share a name.
fn ca_name(key: &KeyPair) -> DistinguishedName {
    let digest = Sha256::digest(key.subject_public_key_info());
    let mut id = String::new();
    for byte in &digest[..6] {
        let _ = write!(id, "{byte:02x}");
    }
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "spec-kitty-server");
    name.push(
        DnType::CommonName,
        format!("spec-kitty-server private CA {id}"),
    );
    name
}

fn ca_params(key: &KeyPair, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_name(key);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - CLOCK_SLACK;
    params.not_after = now + CA_LIFETIME;
    params
}

/// The names a server certificate covers: loopback, the host name, the
/// listen address when it is a specific one, and `extra`.
pub fn names_for(listen: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = host_name() {
        names.push(host);
    }
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.extend(extra.iter().map(|n| n.trim().to_string()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.to_ascii_lowercase()));
    names
}

/// This machine's host name, when it has a usable one.
fn host_name() -> Option<String> {
    let text = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = text.trim();
    let usable = !name.is_empty()
        && name != "localhost"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    usable.then(|| name.to_string())
}

/// Loads the private CA from `data_dir` (making it on first use) and issues
/// a server certificate for `names`.
pub fn issue(data_dir: &Path, names: &[String]) -> Result<Issued, SelfSignedError> {
    // Names first: a name no certificate can hold must not leave a new CA
    // behind.
    let subject_alt_names = names
        .iter()
        .map(|name| san(name))
        .collect::<Result<_, _>>()?;
    let now = OffsetDateTime::now_utc();
    let (ca_key, ca_pem, created) = load_or_create_ca(data_dir, now)?;
    let dir = data_dir.join(TLS_DIR);
    let issuer = Issuer::new(ca_params(&ca_key, now), ca_key);

    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names;
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SLACK;
    params.not_after = now + SERVER_LIFETIME;
    let key = KeyPair::generate().map_err(|e| SelfSignedError::Generate(e.to_string()))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| SelfSignedError::Generate(e.to_string()))?;

    let ca_der = rustls_pki_der(&ca_pem).ok_or_else(|| SelfSignedError::Corrupt {
        dir: dir.clone(),
        detail: format!("{CA_FILE} holds no certificate"),
    })?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_file: dir.join(CA_FILE),
        ca_fingerprint: fingerprint(&ca_der),
        names: names.to_vec(),
        created,
    })
}

fn san(name: &str) -> Result<SanType, SelfSignedError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let refuse = |detail: &str| SelfSignedError::Name {
        name: name.to_string(),
        detail: detail.to_string(),
    };
    // A host name: letters, digits, '-' and '.', and a leading `*.` for a
    // wildcard. Anything else would make a certificate no client matches.
    let host = name.strip_prefix("*.").unwrap_or(name);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        return Err(refuse(
            "use a host name (letters, digits, '-' and '.') or an IP address",
        ));
    }
    let dns = name
        .try_into()
        .map_err(|e: rcgen::Error| refuse(&e.to_string()))?;
    Ok(SanType::DnsName(dns))
}

/// The DER of the first certificate in a PEM text.
fn rustls_pki_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|der| der.to_vec())
}

/// `AB:CD:...`, upper-case hex pairs of the SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The CA key and certificate PEM, made on first use. A new CA is written
/// into a private directory beside `tls/` and renamed into place, so a
/// crash (or a second server starting at the same moment) never leaves a
/// key without its certificate: the rename either lands whole or, when
/// another start won, ours is dropped and theirs used.
fn load_or_create_ca(
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<(KeyPair, String, bool), SelfSignedError> {
    let dir = data_dir.join(TLS_DIR);
    if let Some((key, pem)) = load_ca(&dir)? {
        return Ok((key, pem, false));
    }
    let key = KeyPair::generate().map_err(|e| SelfSignedError::Generate(e.to_string()))?;
    let cert = ca_params(&key, now)
        .self_signed(&key)
        .map_err(|e| SelfSignedError::Generate(e.to_string()))?;
    let staged = data_dir.join(format!(".{TLS_DIR}.{}", std::process::id()));
    let write_error = |source| SelfSignedError::Write {
        path: dir.clone(),
        source,
    };
    let _ = fs::remove_dir_all(&staged);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&staged)
        .map_err(write_error)?;
    let written = write_file(&staged.join(CA_KEY_FILE), &key.serialize_pem(), 0o600)
        .and_then(|()| write_file(&staged.join(CA_FILE), &cert.pem(), 0o644));
    if let Err(source) = written {
        let _ = fs::remove_dir_all(&staged);
        return Err(write_error(source));
    }
    match fs::rename(&staged, &dir) {
        Ok(()) => Ok((key, cert.pem(), true)),
        Err(e) if dir.exists() => {
            // Another start made it first (or `tls/` exists without a CA
            // in it, which `load_ca` reports below).
            let _ = fs::remove_dir_all(&staged);
            match load_ca(&dir)? {
                Some((key, pem)) => Ok((key, pem, false)),
                None => Err(write_error(e)),
            }
        }
        Err(source) => {
            let _ = fs::remove_dir_all(&staged);
            Err(write_error(source))
        }
    }
}

/// The CA in `dir`, or `None` when there is none yet.
fn load_ca(dir: &Path) -> Result<Option<(KeyPair, String)>, SelfSignedError> {
    let key_path = dir.join(CA_KEY_FILE);
    let key_pem = match fs::read_to_string(&key_path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SelfSignedError::Read {
                path: key_path,
                source,
            });
        }
    };
    let cert_path = dir.join(CA_FILE);
    let cert_pem = fs::read_to_string(&cert_path).map_err(|source| SelfSignedError::Read {
        path: cert_path,
        source,
    })?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| SelfSignedError::Corrupt {
        dir: dir.to_path_buf(),
        detail: format!("{CA_KEY_FILE}: {e}"),
    })?;
    Ok(Some((key, cert_pem)))
}

fn write_file(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_made_once_and_every_start_issues_from_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = names_for("127.0.0.1".parse().expect("ip"), &["sync.example".into()]);
        let first = issue(dir.path(), &names).expect("first start");
        assert!(first.created);
        let second = issue(dir.path(), &names).expect("second start");
        assert!(!second.created);
        assert_eq!(first.ca_fingerprint, second.ca_fingerprint);
        assert_ne!(
            first.key_pem, second.key_pem,
            "a fresh server key each start"
        );
        let key_mode = fs::metadata(dir.path().join(TLS_DIR).join(CA_KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        assert!(names.iter().any(|n| n == "sync.example"));
        assert_eq!(
            first.ca_fingerprint.len(),
            32 * 3 - 1,
            "{}",
            first.ca_fingerprint
        );
    }

    #[test]
    fn a_damaged_ca_key_is_named_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = names_for("127.0.0.1".parse().expect("ip"), &[]);
        issue(dir.path(), &names).expect("first start");
        let key = dir.path().join(TLS_DIR).join(CA_KEY_FILE);
        fs::write(&key, "not a key").expect("damage");
        let err = issue(dir.path(), &names).err().expect("refused");
        assert!(matches!(err, SelfSignedError::Corrupt { .. }), "{err}");
        assert_eq!(fs::read_to_string(&key).expect("kept"), "not a key");
    }

    #[test]
    fn a_name_that_cannot_be_in_a_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = issue(dir.path(), &["bad name!".into()])
            .err()
            .expect("refused");
        assert!(matches!(err, SelfSignedError::Name { .. }), "{err}");
        assert!(!dir.path().join(TLS_DIR).exists(), "no CA made for it");
    }
}
