//! Who the caller is: JWT access and refresh tokens, password hashing and
//! the signing key. No HTTP here; the routes call into it.

pub mod device;
pub mod passwords;
pub mod personal;
pub mod signing_key;
pub mod tokens;
