//! Timestamps as the contract writes and reads them.
//!
//! We always write ISO 8601 with an explicit `+00:00` offset, and read the
//! three forms found in the wild: an offset, a trailing `Z`, and a naive
//! value (no offset) which the Python client writes from `utcnow()` and
//! which means UTC.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A timestamp that is none of the accepted ISO 8601 forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO 8601 timestamp: '{0}'")]
pub struct BadTimestamp(pub String);

/// Parses an ISO 8601 timestamp with an offset, a `Z`, or naive (UTC).
pub fn parse(value: &str) -> Result<OffsetDateTime, BadTimestamp> {
    let trimmed = value.trim();
    if let Ok(parsed) = OffsetDateTime::parse(trimmed, &Rfc3339) {
        return Ok(parsed);
    }
    // Python's isoformat() may also use a space separator.
    let normalized = trimmed.replacen(' ', "T", 1);
    if let Ok(parsed) = OffsetDateTime::parse(&normalized, &Rfc3339) {
        return Ok(parsed);
    }
    let naive_with_fraction =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(&normalized, naive_with_fraction)
        .or_else(|_| PrimitiveDateTime::parse(&normalized, naive))
        .map(|dt| dt.assume_utc())
        .map_err(|_| BadTimestamp(value.to_string()))
}

/// Formats as ISO 8601 in UTC with a `+00:00` offset and microseconds when
/// there are any, the way the Python client's `isoformat()` does.
pub fn format(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    let result = if utc.microsecond() == 0 {
        utc.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
        ))
    } else {
        utc.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        ))
    };
    // Formatting a valid date with a fixed description cannot fail; fall
    // back to RFC 3339 rather than panic if it ever did.
    result.unwrap_or_else(|_| utc.format(&Rfc3339).unwrap_or_default())
}

/// How long ago `stamp` was, as people say it: "just now", "5m ago",
/// "3h ago", "2d ago" (the board's page, its script and the terminal board
/// all say it this way); `""` for a stamp that does not parse.
pub fn ago(stamp: &str, now: OffsetDateTime) -> String {
    let Ok(at) = parse(stamp) else {
        return String::new();
    };
    let secs = (now - at).whole_seconds().max(0);
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{}m ago", secs / 60),
        3600..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// The current time, formatted by [`format`].
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offset_z_and_naive_forms_as_the_same_instant() {
        let offset = parse("2026-02-12T10:15:00+00:00").expect("offset");
        let zulu = parse("2026-02-12T10:15:00Z").expect("zulu");
        let naive = parse("2026-02-12T10:15:00").expect("naive");
        let shifted = parse("2026-02-12T12:15:00+02:00").expect("shifted");
        assert_eq!(offset, zulu);
        assert_eq!(offset, naive);
        assert_eq!(offset, shifted);
    }

    #[test]
    fn reads_python_utcnow_microseconds() {
        let t = parse("2026-02-12T10:15:00.123456").expect("python naive");
        assert_eq!(t.microsecond(), 123_456);
        assert_eq!(t.offset(), UtcOffset::UTC);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("yesterday").is_err());
        assert!(parse("2026-13-40T00:00:00Z").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn writes_plus_zero_offset_and_round_trips() {
        let t = parse("2026-02-12T12:15:00+02:00").expect("parse");
        assert_eq!(format(t), "2026-02-12T10:15:00+00:00");
        let micro = parse("2026-02-12T10:15:00.000001Z").expect("parse");
        assert_eq!(format(micro), "2026-02-12T10:15:00.000001+00:00");
        assert_eq!(parse(&format(micro)), Ok(micro));
    }
}
