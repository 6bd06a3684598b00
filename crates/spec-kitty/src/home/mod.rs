//! Where the client keeps its files (`~/.spec-kitty`), its configuration
//! and how files are replaced atomically.

pub mod atomic;
pub mod config;
pub mod paths;

pub use paths::Home;
