//! The one client test that needs a process of its own: `queue_large`
//! bounds the peak memory of `sync now` through the peak RSS of this
//! process's children, which any other test's children would raise.

mod queue_large;
mod queue_support;
mod support;
