//! The spec-kitty client: configuration, credentials, the token manager,
//! the HTTP client, the connectivity probe, the offline queue and its
//! drain, and the CLI on top of them.

pub mod atomic;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod git;
pub mod http;
pub mod identity;
pub mod outcome;
pub mod paths;
pub mod probe;
pub mod project;
pub mod python_queue;
pub mod queue;
pub mod sync;
pub mod tasks;
pub mod wp_file;
