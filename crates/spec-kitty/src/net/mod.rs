//! The network: the blocking HTTP client and `sync status --check`.

pub mod board;
pub mod http;
pub mod probe;
pub mod tls;
