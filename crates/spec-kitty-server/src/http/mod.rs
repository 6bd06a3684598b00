//! The HTTP layer: the router and its state, the error answers, the route
//! handlers, and starting the listener (with or without TLS). It depends
//! on `auth`, `ingest` and `store`; nothing below it depends on it.

pub mod api_error;
pub mod app;
pub mod body;
pub mod conn;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod self_signed;
pub mod serve;
