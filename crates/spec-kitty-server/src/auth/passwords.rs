//! Password hashing with argon2id.
//!
//! Hashing is deliberately slow, so callers on the async executor run these
//! functions through `spawn_blocking`.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
///
/// The argon2 working memory (19 MiB with the default parameters) comes
/// from [`WORK_MEMORY`] and goes back there, rather than being allocated
/// per check: with glibc's allocator, 19 MiB buffers allocated and freed
/// on ever-changing blocking threads were kept by the process, and the
/// abuse bench's log-in flood took the server to 2 GiB after 160 wrong
/// log-ins (32 MiB with jemalloc). Reused, the buffers number at most the
/// checks that ever ran at once (`--login-max-concurrent`).
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let mut blocks = WORK_MEMORY.take(params.block_count());
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut blocks,
    );
    WORK_MEMORY.give(blocks);
    // `Output` compares in constant time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// argon2 working memory kept between password checks.
static WORK_MEMORY: WorkMemory = WorkMemory {
    free: std::sync::Mutex::new(Vec::new()),
};

/// Buffers of argon2 blocks: one is taken per check and given back after,
/// so there are never more than the checks that ran at once.
struct WorkMemory {
    free: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl WorkMemory {
    fn take(&self, blocks: usize) -> Vec<Block> {
        let reused = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut buffer = reused.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        buffer
    }

    fn give(&self, buffer: Vec<Block>) {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(buffer);
    }
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

    #[test]
    fn reused_work_memory_gives_the_same_answers() {
        let first = hash("first password").expect("hashes");
        let second = hash("second password").expect("hashes");
        for _ in 0..3 {
            assert!(verify("first password", &first));
            assert!(!verify("first password", &second));
            assert!(verify("second password", &second));
            assert!(!verify("second passwore", &second));
        }
        // A hash with other parameters (smaller memory) still checks.
        let params = Params::new(1024, 1, 1, None).expect("params");
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"small",
                &SaltString::encode_b64(b"0123456789abcdef").expect("salt"),
            )
            .expect("hashes")
            .to_string();
        assert!(verify("small", &small));
        assert!(!verify("smaller", &small));
        assert!(!verify(
            "first password",
            "$argon2id$v=19$m=19456,t=2,p=1$bm9zYWx0$"
        ));
    }
}
