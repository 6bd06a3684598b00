//! The server's one clock reading, so every timestamp it stores or signs
//! comes from the same place (and tests have one thing to look for).

/// Unix time in seconds, UTC.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
