//! Batch ingest: the rules that decide what a batch may write.

pub mod rules;
