//! The spec-kitty client, grouped by domain. Dependencies point down this
//! list: `cli` uses everything; `sync` uses `queue`, `session` and `net`;
//! `session` uses `net` and `home`; `home` and `outcome` use nothing of the
//! crate but each other's types.
//!
//! - [`home`]: `~/.spec-kitty` paths, `config.toml`, atomic file writes
//! - [`session`]: the credentials file and the token manager
//! - [`net`]: the HTTP client and the connectivity probe
//! - [`queue`]: the offline event queue, its schema, the Python queue import
//! - [`sync`]: draining the queue to the server
//! - [`tasks`]: the project, its identity, work-package files, git, moves
//! - [`outcome`]: every way talking to the server ends, with exit codes
//! - [`cli`]: the clap commands; library errors become messages here

pub mod cli;
pub mod home;
pub mod net;
pub mod outcome;
pub mod queue;
pub mod session;
pub mod sync;
pub mod tasks;
