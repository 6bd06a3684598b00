//! `spec-kitty-server`: the self-hostable team sync server.
//!
//! The binary is a thin shell over this library, so tests and benchmarks
//! start the very same server in-process ([`serve::BackgroundServer`]).

pub mod admin;
pub mod api_error;
pub mod app;
pub mod board;
pub mod config;
pub mod passwords;
pub mod routes;
pub mod serve;
pub mod signing_key;
pub mod store;
pub mod tokens;
pub mod web;

pub use config::ServerConfig;
pub use serve::{BackgroundServer, RunningServer, ServeError, start};
