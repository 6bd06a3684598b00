//! Reading and writing YAML scalars line by line, for the files people
//! edit by hand (work-package front matter, `.kittify/config.yaml`): a
//! value is found and replaced in place, so every other byte of the file,
//! comments and quoting included, stays as it was. Only what those files
//! use is understood: plain, `"double"` and `'single'` quoted scalars with
//! an optional ` # comment`.

/// The line without its line ending.
pub fn bare(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// The byte span of a scalar value within `text`: quotes included for a
/// quoted value, trailing comment and spaces excluded.
pub fn value_span(text: &str, start: usize) -> (usize, usize) {
    let rest = &text[start..];
    let skip = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let begin = start + skip;
    let value = &text[begin..];
    if let Some(inner) = value.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return (begin, begin + 1 + i + 1),
                _ => escaped = false,
            }
        }
        return (begin, text.len());
    }
    if let Some(inner) = value.strip_prefix('\'') {
        let bytes = inner.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return (begin, begin + 1 + i + 1);
            }
            i += 1;
        }
        return (begin, text.len());
    }
    let end = value.find(" #").unwrap_or(value.len());
    (begin, begin + value[..end].trim_end().len())
}

/// The value of a scalar, unquoted.
pub fn scalar(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return inner.replace("\\\"", "\"").replace("\\\\", "\\");
    }
    if let Some(inner) = raw.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    raw.to_string()
}

pub fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The unquoted value after `key:` on a line (`raw` is what follows the
/// colon), its comment and surrounding spaces dropped.
pub fn value_after_colon(raw: &str) -> String {
    let (start, end) = value_span(raw, 0);
    scalar(&raw[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_the_same_way_in_every_style() {
        assert_eq!(value_after_colon(" plain  # note"), "plain");
        assert_eq!(
            value_after_colon(" \"quoted # not a note\" # note"),
            "quoted # not a note"
        );
        assert_eq!(value_after_colon(" 'it''s'"), "it's");
        assert_eq!(value_after_colon(" \"a \\\"b\\\"\""), "a \"b\"");
        assert_eq!(value_after_colon(""), "");
    }

    #[test]
    fn quoting_round_trips() {
        for value in ["plain", "with \"quotes\"", "back\\slash", "12345"] {
            assert_eq!(scalar(&quote(value)), value);
        }
    }
}
