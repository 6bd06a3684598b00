//! Batch ingest: decoding the events of a batch, and the rules that decide
//! what a batch may write.

pub mod decode;
pub mod rules;
