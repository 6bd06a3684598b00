//! The server's one clock reading, so every timestamp it stores or signs
//! comes from the same place (and tests have one thing to look for).

/// Unix time in seconds, UTC.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A stored unix time as `2026-11-29 14:05 UTC`, for lists and pages.
pub fn minute(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| at.to_string())
}
