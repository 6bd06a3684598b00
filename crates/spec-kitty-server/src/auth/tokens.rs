//! JWT access and refresh tokens.
//!
//! HS256 with the server's own key, and nothing else: the algorithm is
//! pinned on both signing and verification, so a token that claims another
//! algorithm (or `none`) is refused before its claims are read. Expiry is
//! checked with no leeway. Each token carries its kind, so a refresh token
//! never works as an access token and the other way round.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::store::User;

/// Which of the two tokens a JWT is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The claims of both kinds of token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Username.
    pub sub: String,
    /// User id in the store.
    pub uid: i64,
    /// The user's team when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// Refresh tokens only: the rotation family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

/// Why a token was refused. Deliberately coarse: the client only needs to
/// know it must refresh or log in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token invalid")]
    Invalid,
    #[error("token is of the wrong kind")]
    WrongKind,
}

/// A token could not be signed. HS256 over these claims cannot fail in
/// practice; if it ever does, the request fails loudly (500) instead of
/// handing out an empty token.
#[derive(Debug, thiserror::Error)]
#[error("could not sign a token: {0}")]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

/// A freshly issued pair.
pub struct Issued {
    pub access: String,
    pub refresh: String,
    pub refresh_jti: String,
    pub family: String,
    pub refresh_expires_at: i64,
}

/// Signs and verifies tokens with one key.
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_lifetime: u64,
    pub refresh_lifetime: u64,
}

impl Signer {
    /// Fails only on an empty secret, which no key file can produce.
    pub fn new(
        secret: &[u8],
        access_lifetime: u64,
        refresh_lifetime: u64,
    ) -> Result<Signer, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Signer {
            encoding: EncodingKey::from_secret(secret).map_err(|_| TokenError::Invalid)?,
            decoding: DecodingKey::from_secret(secret).map_err(|_| TokenError::Invalid)?,
            validation,
            access_lifetime,
            refresh_lifetime,
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        Ok(encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Issues an access token and a refresh token; `family` continues an
    /// existing rotation family, `None` starts a new one (a log-in).
    pub fn issue(&self, user: &User, family: Option<&str>, now: i64) -> Result<Issued, SignError> {
        let family = family.map_or_else(|| ulid::Ulid::new().to_string(), str::to_string);
        let access = Claims {
            sub: user.username.clone(),
            uid: user.id,
            team: user.team.clone(),
            typ: TokenKind::Access,
            iat: now,
            exp: now + self.access_lifetime as i64,
            jti: ulid::Ulid::new().to_string(),
            fam: None,
        };
        let refresh_jti = ulid::Ulid::new().to_string();
        let refresh_expires_at = now + self.refresh_lifetime as i64;
        let refresh = Claims {
            typ: TokenKind::Refresh,
            exp: refresh_expires_at,
            jti: refresh_jti.clone(),
            fam: Some(family.clone()),
            ..access.clone()
        };
        Ok(Issued {
            access: self.sign(&access)?,
            refresh: self.sign(&refresh)?,
            refresh_jti,
            family,
            refresh_expires_at,
        })
    }

    /// Verifies signature, algorithm, expiry and kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        if data.claims.typ != kind {
            return Err(TokenError::WrongKind);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: 7,
            username: "alice".into(),
            password_hash: String::new(),
            disabled: false,
            team: Some("acme".into()),
        }
    }

    use crate::clock::now_secs as now;

    #[test]
    fn issued_tokens_verify_as_their_kind_only() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 900, 3600).expect("key");
        let issued = signer.issue(&user(), None, now()).expect("signs");
        let access = signer
            .verify(&issued.access, TokenKind::Access)
            .expect("access verifies");
        assert_eq!((access.sub.as_str(), access.uid), ("alice", 7));
        assert_eq!(access.team.as_deref(), Some("acme"));
        let refresh = signer
            .verify(&issued.refresh, TokenKind::Refresh)
            .expect("refresh verifies");
        assert_eq!(refresh.fam.as_deref(), Some(issued.family.as_str()));
        assert_eq!(refresh.jti, issued.refresh_jti);
        assert_eq!(
            signer.verify(&issued.refresh, TokenKind::Access).err(),
            Some(TokenError::WrongKind)
        );
        assert_eq!(
            signer.verify(&issued.access, TokenKind::Refresh).err(),
            Some(TokenError::WrongKind)
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 900, 3600).expect("key");
        let old = signer.issue(&user(), None, now() - 10_000).expect("signs");
        assert_eq!(
            signer.verify(&old.access, TokenKind::Access).err(),
            Some(TokenError::Expired)
        );
        let other = Signer::new(b"another-key-another-key-another!", 900, 3600).expect("key");
        let foreign = other.issue(&user(), None, now()).expect("signs");
        assert_eq!(
            signer.verify(&foreign.access, TokenKind::Access).err(),
            Some(TokenError::Invalid)
        );
        assert_eq!(
            signer.verify("not.a.jwt", TokenKind::Access).err(),
            Some(TokenError::Invalid)
        );
    }
}
