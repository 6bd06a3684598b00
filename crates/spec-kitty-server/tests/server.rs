//! The server's black-box tests, one binary for the crate: each module is
//! what used to be its own test target. One binary links the server once
//! instead of once per file (about 40 MiB each), which is most of the disk
//! a test build takes and much of its link time.
//!
//! Run one file's tests by its module name: `cargo test -p
//! spec-kitty-server --test server board_api::`.

mod common;
mod pg_support;

mod accept_queue;
mod admin_cli;
mod auth;
mod backup;
mod batch;
mod board_api;
mod board_browser;
mod board_postgres;
mod board_stream;
mod body_budget;
mod connections;
mod device_flow;
mod log_pipe;
mod metrics;
mod personal_tokens;
mod postgres_instances;
mod restart;
mod schema_upgrade;
mod serve_cli;
mod store_contract;
mod strictness;
mod tls;
mod token_revoke;
mod tokens;
