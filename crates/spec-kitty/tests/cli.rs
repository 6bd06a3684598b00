//! The client's black-box tests, one binary for the crate: each module is
//! what used to be its own test target. One binary links the server and
//! the client once instead of once per file (about 40 MiB each), which is
//! most of the disk a test build takes and much of its link time.
//!
//! `queue_large` is the exception: it measures the peak memory of the
//! children of its own process (`getrusage(RUSAGE_CHILDREN)`), which the
//! other tests' children would disturb, so it is a binary of its own
//! (tests/drain_memory.rs).
//!
//! Run one file's tests by its module name: `cargo test -p spec-kitty
//! --test cli queue_kill::`.

mod common;
mod python_client;
mod queue_support;
mod support;
mod tasks_support;

mod auth_commands;
mod auth_logout;
mod board_cli;
mod cli_conventions;
mod concurrent_refresh;
mod config_command;
mod credentials_busy;
mod env_token;
mod queue_drain;
mod queue_files;
mod queue_interrupt;
mod queue_kill;
mod queue_parking;
mod queue_python;
mod queue_tools;
mod queue_window;
mod sessions_page;
mod status_check;
mod sync_server;
mod tasks_concurrent;
mod tasks_e2e;
mod tasks_file_roundtrip;
mod tasks_lanes;
mod tasks_list;
mod tasks_project;
mod tls_trust;
mod verbosity_flags;
mod web_login;
