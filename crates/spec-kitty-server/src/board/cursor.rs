//! Cursors: opaque positions in a project's event sequence.
//!
//! Each project numbers its events in commit order: the ingest transaction
//! takes the project's row lock before it numbers a batch, so a transaction
//! holding a smaller number always commits before one holding a larger
//! number, on every backend and across instances. A reader that has seen
//! number N can therefore never be overtaken by an event that commits late
//! with a number below N. The text form is versioned so it can change
//! without breaking clients that kept one.

const PREFIX: &str = "c1.";

/// The cursor of sequence number `seq` (0: before the first event).
pub fn encode(seq: i64) -> String {
    format!("{PREFIX}{seq}")
}

/// Reads a cursor this server handed out; `None` for anything else.
pub fn decode(text: &str) -> Option<i64> {
    let digits = text.trim().strip_prefix(PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(decode(&encode(0)), Some(0));
        assert_eq!(decode(&encode(12345)), Some(12345));
        for bad in [
            "",
            "12",
            "c1.",
            "c1.-3",
            "c1.x",
            "c2.5",
            "c1.99999999999999999999",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
