//! `spec-kitty-server`: the self-hostable team sync server.
//!
//! The binary is a thin shell over this library, so tests and benchmarks
//! start the very same server in-process ([`serve::BackgroundServer`]).
//!
//! Layers, each depending only on those after it: [`cli`] (the command
//! line) → [`http`] (router, routes, listener) → [`admin`] and [`ingest`]
//! (the rules) → [`auth`] (tokens, passwords, signing key) → [`store`]
//! (SQLite and PostgreSQL behind one trait). [`config`] holds the settings.

pub mod admin;
pub mod auth;
pub mod board;
pub mod cli;
pub mod clock;
pub mod config;
pub mod hex;
pub mod http;
pub mod ingest;
pub mod store;
pub mod web;

// The paths these modules had before the layers were folders; tests,
// benchmarks and the client crate's tests use them.
pub use auth::{passwords, signing_key, tokens};
pub use http::{api_error, app, routes, serve};

pub use config::ServerConfig;
pub use serve::{BackgroundServer, RunningServer, ServeError, start};
