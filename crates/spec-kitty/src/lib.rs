//! The spec-kitty client library.
