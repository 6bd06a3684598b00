//! The spec-kitty client, grouped by domain. Dependencies point one way:
//! `cli` uses everything; `sync` uses `queue`, `session`, `net` and
//! `outcome`; `outcome` maps the errors of `session` and `net`; `net::probe`
//! and `net::board` use `session`; `session` uses `net::http` and `home`; `queue` uses
//! `home`; `tasks` uses `home`, `queue` and the credentials (for the team);
//! `home` uses nothing else of the crate.
//!
//! - [`home`]: `~/.spec-kitty` paths, `config.toml`, atomic file writes
//! - [`session`]: the credentials file and the token manager
//! - [`net`]: the HTTP client, the connectivity probe and the board fetch
//! - [`board_view`]: the team board drawn for a terminal
//! - [`queue`]: the offline event queue, its schema, the Python queue import
//! - [`sync`]: draining the queue to the server
//! - [`tasks`]: the project, its identity, work-package files, git, moves
//! - [`outcome`]: every way talking to the server ends, with exit codes
//! - [`cli`]: the clap commands; library errors become messages here

pub mod board_view;
pub mod cli;
pub mod home;
pub mod net;
pub mod outcome;
pub mod queue;
pub mod session;
pub mod sync;
pub mod tasks;
pub mod verbosity;
