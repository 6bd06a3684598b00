//! "Did you mean ...?" for lane names and work-package ids: a typo should
//! cost one glance at the error, not a search through the list of names.

/// The edit distance between `a` and `b` counting a swap of two adjacent
/// characters as one edit (`doign` is one edit from `doing`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The candidate closest to `given` (case-insensitive), if it is close
/// enough to be a typo of it: at most two edits, and fewer than half the
/// characters of the shorter name.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given = given.trim().to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&given, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d > 0 && *d <= 2 && *d * 2 < given.chars().count().min(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The work package `given` most likely means: the same number written
/// differently (`WP1`, `wp001`, `1` for `WP01`), else a near spelling.
pub fn work_package<'a>(given: &str, available: &'a [String]) -> Option<&'a str> {
    let number = |id: &str| -> Option<u64> {
        let upper = id.trim().to_ascii_uppercase();
        upper.strip_prefix("WP").unwrap_or(&upper).parse().ok()
    };
    if let Some(wanted) = number(given)
        && let Some(found) = available.iter().find(|id| number(id) == Some(wanted))
    {
        return Some(found.as_str());
    }
    closest(given, available.iter().map(String::as_str))
}

/// " Did you mean 'X'?" or nothing, to append to an error message.
pub fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" Did you mean '{s}'?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes() {
        let lanes = spec_kitty_protocol::Lane::VALID_NAMES;
        assert_eq!(closest("doign", lanes), Some("doing"));
        assert_eq!(closest("Plannd", lanes), Some("planned"));
        assert_eq!(closest("for-review", lanes), Some("for_review"));
        assert_eq!(closest("xyz", lanes), None);
        assert_eq!(closest("doing", lanes), None, "not a typo");
    }

    #[test]
    fn work_packages() {
        let ids = vec!["WP01".to_string(), "WP02".to_string(), "WP10".to_string()];
        assert_eq!(work_package("WP1", &ids), Some("WP01"));
        assert_eq!(work_package("wp001", &ids), Some("WP01"));
        assert_eq!(work_package("WP7", &ids), None);
        assert_eq!(work_package("WP3", &ids), None);
    }
}
