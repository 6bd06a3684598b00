//! The spec-kitty sync wire contract as Rust types.
//!
//! Both the `spec-kitty` client and `spec-kitty-server` depend on this crate,
//! so the two can never disagree about a field name, a lane or a validation
//! rule. It does no I/O and has no async: everything here is plain data and
//! pure functions, which keeps it cheap to test exhaustively.
//!
//! The contract itself is described in `shared/contract/sync-api.md`; each
//! module names the section it implements.

pub mod batch;
pub mod board;
pub mod error_body;
pub mod event;
pub mod fast;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
pub mod lanes;
pub mod paths;
pub mod timestamp;
pub mod token;
pub mod validate;

pub use batch::{BatchRequest, BatchResponse, EventResult, EventStatus, MAX_BATCH_EVENTS};
pub use error_body::ErrorBody;
pub use event::{Envelope, Event, FeatureCreated, WpCreated, WpStatusChanged};
pub use lanes::{Lane, SyncLane, UnknownLane};
pub use token::{LoginRequest, RefreshRequest, TokenResponse};
pub use validate::{FieldError, describe as describe_errors, validate_event};
