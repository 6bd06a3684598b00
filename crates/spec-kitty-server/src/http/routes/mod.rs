//! Route handlers, one module per part of the contract.

pub mod auth;
pub mod authenticated;
pub mod batch;
pub mod board;
pub mod device;
pub mod health;
pub mod revoke;
