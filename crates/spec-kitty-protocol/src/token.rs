//! Log-in and refresh messages (contract section 1).
//!
//! Token responses are parsed tolerantly because servers in the field differ:
//! lifetimes arrive as numbers or strings, under `access_lifetime` or the
//! `expires_in` aliases, or not at all.

use serde::{Deserialize, Deserializer, Serialize};

/// The access-token lifetime assumed when a server does not state one.
pub const DEFAULT_ACCESS_LIFETIME: u64 = 900;
/// The refresh-token lifetime assumed when a server does not state one.
pub const DEFAULT_REFRESH_LIFETIME: u64 = 604_800;

/// `POST /api/v1/token/` request body.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    // Never let a password reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/token/refresh/` request body.
#[derive(Clone, Serialize, Deserialize)]
pub struct RefreshRequest {
    pub refresh: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { refresh: <redacted> }")
    }
}

/// A `200` answer to log-in or refresh.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access: String,
    /// Absent from older servers' refresh answers: keep the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    #[serde(
        default = "default_access",
        alias = "expires_in",
        deserialize_with = "lifetime"
    )]
    pub access_lifetime: u64,
    #[serde(
        default = "default_refresh",
        alias = "refresh_expires_in",
        deserialize_with = "lifetime"
    )]
    pub refresh_lifetime: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_slug: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access", &"<redacted>")
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("team_slug", &self.team_slug)
            .finish()
    }
}

fn default_access() -> u64 {
    DEFAULT_ACCESS_LIFETIME
}

fn default_refresh() -> u64 {
    DEFAULT_REFRESH_LIFETIME
}

/// Accepts `900`, `900.0`, `"900"` and `null` (the default is not known
/// here, so `null` is read as zero seconds: already expired, which makes
/// the client refresh rather than trust a token of unknown life).
fn lifetime<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
        Null(()),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Int(n) => Ok(n),
        Raw::Float(f) if f.is_finite() && f >= 0.0 => Ok(f as u64),
        Raw::Text(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
            .ok_or_else(|| serde::de::Error::custom(format!("lifetime is not a number: {text:?}"))),
        Raw::Float(f) => Err(serde::de::Error::custom(format!(
            "lifetime must be a non-negative number, found {f}"
        ))),
        Raw::Null(()) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> TokenResponse {
        serde_json::from_str(json).expect("token response parses")
    }

    #[test]
    fn full_response() {
        let t = parse(
            r#"{"access":"a","refresh":"r","access_lifetime":900,"refresh_lifetime":604800,"team_slug":"acme"}"#,
        );
        assert_eq!(t.access, "a");
        assert_eq!(t.refresh.as_deref(), Some("r"));
        assert_eq!((t.access_lifetime, t.refresh_lifetime), (900, 604_800));
        assert_eq!(t.team_slug.as_deref(), Some("acme"));
    }

    #[test]
    fn lifetimes_as_strings_and_aliases() {
        let t = parse(r#"{"access":"a","expires_in":"300","refresh_expires_in":"7200"}"#);
        assert_eq!((t.access_lifetime, t.refresh_lifetime), (300, 7200));
        let t = parse(r#"{"access":"a","access_lifetime":60.0,"refresh_lifetime":" 120 "}"#);
        assert_eq!((t.access_lifetime, t.refresh_lifetime), (60, 120));
    }

    #[test]
    fn missing_fields_take_defaults() {
        let t = parse(r#"{"access":"a"}"#);
        assert_eq!(t.refresh, None);
        assert_eq!(t.access_lifetime, DEFAULT_ACCESS_LIFETIME);
        assert_eq!(t.refresh_lifetime, DEFAULT_REFRESH_LIFETIME);
        assert_eq!(t.team_slug, None);
    }

    #[test]
    fn nonsense_lifetime_is_an_error() {
        assert!(
            serde_json::from_str::<TokenResponse>(r#"{"access":"a","expires_in":"soon"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<TokenResponse>(r#"{"access":"a","expires_in":-5}"#).is_err()
        );
        assert!(serde_json::from_str::<TokenResponse>(r#"{"refresh":"r"}"#).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let t = parse(r#"{"access":"SECRET-A","refresh":"SECRET-R"}"#);
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        let login = LoginRequest {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
