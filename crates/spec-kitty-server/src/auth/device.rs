//! Device authorization codes (RFC 8628): a long secret device code for
//! the polling client, and a short user code for a person to type.
//!
//! The user code is 8 letters from an alphabet of 20 consonants (no vowels,
//! so no words; no look-alikes such as 0/O or 1/I/L), shown `XXXX-XXXX`:
//! 20^8 (about 2^34.6) codes, of which a handful are live at once, and
//! guesses are throttled. Both codes are stored as SHA-256 only.

use sha2::{Digest, Sha256};

use crate::hex;

/// The letters of a user code.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Letters in a user code (without the dash).
pub const USER_CODE_LEN: usize = 8;

/// How long a pair of codes lives, in seconds.
pub const LIFETIME: i64 = 600;

/// No randomness could be had from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a device code: {0}")]
pub struct NoRandomness(String);

fn random(bytes: &mut [u8]) -> Result<(), NoRandomness> {
    getrandom::fill(bytes).map_err(|e| NoRandomness(e.to_string()))
}

/// A new device code: 256 random bits in hex.
pub fn device_code() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    random(&mut bytes)?;
    Ok(hex::encode(&bytes))
}

/// A new user code, `XXXX-XXXX`. Bytes of 240 and over are drawn again,
/// so every letter is equally likely.
pub fn user_code() -> Result<String, NoRandomness> {
    let mut letters = Vec::with_capacity(USER_CODE_LEN);
    while letters.len() < USER_CODE_LEN {
        let mut bytes = [0u8; 16];
        random(&mut bytes)?;
        for b in bytes {
            if b < 240 && letters.len() < USER_CODE_LEN {
                letters.push(ALPHABET[usize::from(b % 20)]);
            }
        }
    }
    let text = String::from_utf8_lossy(&letters).into_owned();
    Ok(format!("{}-{}", &text[..4], &text[4..]))
}

/// A typed user code in its canonical form (upper case, no dash or
/// spaces), or `None` when it cannot be one.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// A canonical user code shown as `XXXX-XXXX`.
pub fn display_user_code(canonical: &str) -> String {
    if canonical.len() == USER_CODE_LEN {
        format!("{}-{}", &canonical[..4], &canonical[4..])
    } else {
        canonical.to_string()
    }
}

/// The stored form of either code (the user code canonical).
pub fn hash(code: &str) -> String {
    hex::encode(&Sha256::digest(code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_have_the_shape_and_normalize() {
        let code = user_code().expect("random");
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        let canonical = normalize_user_code(&code).expect("valid");
        assert_eq!(display_user_code(&canonical), code);
        assert_eq!(
            normalize_user_code(&code.to_lowercase().replace('-', " ")),
            Some(canonical)
        );
        assert_eq!(normalize_user_code("BCDF-GHJ0"), None, "no digits");
        assert_eq!(normalize_user_code("BCDF-GHJ"), None, "too short");
        assert_eq!(normalize_user_code("ABCD-EFGH"), None, "no vowels");
        assert_ne!(
            device_code().expect("random"),
            device_code().expect("random")
        );
    }
}
