//! Password hashing with argon2id.
//!
//! Hashing is deliberately slow, so callers on the async executor run these
//! functions through `spawn_blocking`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("could not gather randomness for a salt: {0}")]
    Random(String),
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// Hashes a password into a PHC string (`$argon2id$...`).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a stored hash. A malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A valid hash of a random password, verified against when the username is
/// unknown, so that "no such user" takes as long as "wrong password".
///
/// Made once; the server makes it at start-up ([`crate::http::app::router`]) so
/// a failure stops the server there. An empty or predictable decoy would
/// defeat the timing protection it exists for, so there is no fallback.
///
/// # Panics
///
/// If the system has no randomness or argon2 cannot hash, neither of which
/// happens on a working system.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).expect("no randomness for the decoy password hash");
        hash(&crate::hex::encode(&random)).expect("could not hash the decoy password")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let stored = hash("correct horse").expect("hashes");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse", &stored));
        assert!(!verify("wrong horse", &stored));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(hash("correct horse").expect("hashes"), stored, "salted");
        assert!(!verify("", decoy_hash()));
    }
}
