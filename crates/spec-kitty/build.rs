//! Puts the commit and build date into `--version`; see
//! build-support/version.rs, shared by both binaries.

include!("../../build-support/version.rs");
