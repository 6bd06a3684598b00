//! Personal access tokens: long-lived bearer tokens for CI jobs and agents.
//!
//! A token is `skp_`, 40 hex digits of randomness (160 bits) and 8 hex
//! digits of checksum (the first 4 bytes of the SHA-256 of the random
//! part). The fixed prefix lets secret scanners find a leaked token; the
//! checksum lets the server refuse a mistyped or truncated token without a
//! database read. Only the SHA-256 of the whole token is stored: with 160
//! random bits a fast hash is enough, and lookup by hash leaks nothing
//! about the token through timing.

use sha2::{Digest, Sha256};

use crate::hex;

/// What every personal access token starts with.
pub const PREFIX: &str = "skp_";

/// Random bytes in a token.
const RANDOM_BYTES: usize = 20;

/// Hex digits of checksum at the end of a token.
const CHECK_DIGITS: usize = 8;

/// The length of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_BYTES * 2 + CHECK_DIGITS;

/// No randomness could be had from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a token: {0}")]
pub struct NoRandomness(String);

fn checksum(random_hex: &str) -> String {
    hex::encode(&Sha256::digest(random_hex.as_bytes())[..CHECK_DIGITS / 2])
}

/// A new token.
pub fn generate() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    let random = hex::encode(&bytes);
    Ok(format!("{PREFIX}{random}{}", checksum(&random)))
}

/// Whether `token` has the form of a token and its checksum matches.
pub fn well_formed(token: &str) -> bool {
    let Some(body) = token.strip_prefix(PREFIX) else {
        return false;
    };
    if token.len() != TOKEN_LEN
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let (random, check) = body.split_at(RANDOM_BYTES * 2);
    checksum(random) == check
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert!(a.starts_with(PREFIX) && a.len() == TOKEN_LEN, "{}", a.len());
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn a_flipped_digit_a_wrong_prefix_or_a_cut_are_refused() {
        let token = generate().expect("random");
        let mut flipped = token.clone().into_bytes();
        let i = PREFIX.len() + 5;
        flipped[i] = if flipped[i] == b'0' { b'1' } else { b'0' };
        assert!(!well_formed(&String::from_utf8(flipped).expect("ascii")));
        assert!(!well_formed(&token.replacen(PREFIX, "skq_", 1)));
        assert!(!well_formed(&token[..token.len() - 1]));
        assert!(!well_formed(&token.to_uppercase()));
        assert!(!well_formed(""));
    }
}
