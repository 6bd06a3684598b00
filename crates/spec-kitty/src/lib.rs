//! The spec-kitty client: configuration, credentials, the token manager,
//! the HTTP client, the connectivity probe, the offline queue and its
//! drain, and the CLI on top of them.

pub mod atomic;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod http;
pub mod paths;
pub mod probe;
pub mod python_queue;
pub mod queue;
pub mod sync;
