//! Work-package files (contract section 7): YAML front matter between `---`
//! lines, then a Markdown body ending in an `## Activity Log`.
//!
//! These files are written by people and agents, so they are edited by
//! lines, never re-serialized: a lane change rewrites only the `lane:` value
//! (its quoting and comment stay), appends one `history` entry and one
//! Activity Log line, and leaves every other byte as it was, CRLF endings
//! included. The body may contain `---` lines: only the first two delimit
//! the front matter.

use super::yaml_line::{bare, quote, scalar, value_span};

/// Why a work-package file cannot be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WpError {
    #[error("it does not start with YAML front matter (a '---' line)")]
    NoFrontMatter,
    #[error("its front matter has no closing '---' line")]
    Unterminated,
    #[error("its front matter has no 'lane:' line")]
    NoLane,
    #[error("its 'dependencies:' is not a list of work package ids ({found})")]
    DependenciesNotAList { found: String },
    #[error(
        "its 'dependencies:' lists '{entry}', which is not a work package id (WP and two or more digits, like WP01)"
    )]
    BadDependency { entry: String },
}

/// The front-matter values `list-tasks` and `move-task` need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub work_package_id: Option<String>,
    pub title: Option<String>,
    pub lane: Option<String>,
    pub assignee: Option<String>,
    pub agent: Option<String>,
    /// Timestamp of the last `history` entry.
    pub last_change: Option<String>,
}

/// One `history` entry to append.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub timestamp: String,
    pub lane: String,
    pub agent: String,
    pub shell_pid: String,
    pub action: String,
}

/// A parsed file: its text split into lines (each with its ending).
pub struct WpFile<'a> {
    lines: Vec<&'a str>,
    /// Index of the closing `---` line.
    close: usize,
    newline: &'static str,
}

fn is_delimiter(line: &str) -> bool {
    bare(line).trim_end() == "---"
}

/// A top-level `key:` line (no indentation).
fn top_key(line: &str) -> Option<&str> {
    let text = bare(line);
    if text.starts_with([' ', '\t', '-', '#']) {
        return None;
    }
    let (key, _) = text.split_once(':')?;
    (!key.is_empty() && !key.contains(' ')).then_some(key)
}

impl<'a> WpFile<'a> {
    pub fn parse(text: &'a str) -> Result<WpFile<'a>, WpError> {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let first = lines.first().ok_or(WpError::NoFrontMatter)?;
        if !is_delimiter(first.trim_start_matches('\u{feff}')) {
            return Err(WpError::NoFrontMatter);
        }
        let close = lines
            .iter()
            .skip(1)
            .position(|l| is_delimiter(l))
            .map(|i| i + 1)
            .ok_or(WpError::Unterminated)?;
        let newline = if first.ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        Ok(WpFile {
            lines,
            close,
            newline,
        })
    }

    fn front(&self) -> impl Iterator<Item = (usize, &'a str)> + '_ {
        self.lines[1..self.close]
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, *l))
    }

    fn find_key(&self, key: &str) -> Option<usize> {
        self.front()
            .find(|(_, l)| top_key(l) == Some(key))
            .map(|(i, _)| i)
    }

    fn top_value(&self, key: &str) -> Option<String> {
        let index = self.find_key(key)?;
        let text = bare(self.lines[index]);
        let (start, end) = value_span(text, key.len() + 1);
        let value = scalar(&text[start..end]);
        (!value.is_empty()).then_some(value)
    }

    /// The values of interest.
    pub fn fields(&self) -> Fields {
        let last_change = self
            .front()
            .filter_map(|(_, l)| {
                let t = bare(l).trim_start().trim_start_matches("- ").trim_start();
                let rest = t.strip_prefix("timestamp:")?;
                let (s, e) = value_span(rest, 0);
                Some(scalar(&rest[s..e]))
            })
            .last();
        Fields {
            work_package_id: self.top_value("work_package_id"),
            title: self.top_value("title"),
            lane: self.top_value("lane"),
            assignee: self.top_value("assignee"),
            agent: self.top_value("agent"),
            last_change,
        }
    }

    /// The `dependencies:` list, in flow form (`[]`, `["WP01", WP02]`) or
    /// block form (`- "WP01"` lines below the key); empty when absent.
    /// Every entry must be a work package id: the board links cards by it.
    pub fn dependencies(&self) -> Result<Vec<String>, WpError> {
        let Some(at) = self.find_key("dependencies") else {
            return Ok(Vec::new());
        };
        let text = bare(self.lines[at]);
        let rest = &text["dependencies:".len()..];
        let (start, end) = value_span(rest, 0);
        let value = &rest[start..end];
        let entries: Vec<String> = if let Some(inner) = value.strip_prefix('[') {
            let close = inner
                .rfind(']')
                .ok_or_else(|| WpError::DependenciesNotAList {
                    found: value.to_string(),
                })?;
            inner[..close]
                .split(',')
                .map(|item| scalar(item.trim()))
                .filter(|item| !item.is_empty())
                .collect()
        } else if start == end {
            self.block_items(at)
        } else {
            return Err(WpError::DependenciesNotAList {
                found: value.to_string(),
            });
        };
        match entries
            .iter()
            .find(|e| !spec_kitty_protocol::validate::is_wp_id(e))
        {
            Some(bad) => Err(WpError::BadDependency { entry: bad.clone() }),
            None => Ok(entries),
        }
    }

    /// The `- item` lines of a block list under the key on line `at`.
    fn block_items(&self, at: usize) -> Vec<String> {
        let mut items = Vec::new();
        for index in at + 1..self.close {
            let line = bare(self.lines[index]);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some(item) = trimmed.strip_prefix('-') else {
                break;
            };
            if !(item.is_empty() || item.starts_with([' ', '\t'])) {
                break;
            }
            let (start, end) = value_span(item, 0);
            items.push(scalar(&item[start..end]));
        }
        items
    }

    /// The file's text after a move to `lane`: the lane value, one
    /// `history` entry and one Activity Log line change, nothing else.
    pub fn moved(
        &self,
        lane: &str,
        entry: &HistoryEntry,
        log_line: &str,
    ) -> Result<String, WpError> {
        let lane_at = self.find_key("lane").ok_or(WpError::NoLane)?;
        let mut out: Vec<String> = self.lines.iter().map(|l| (*l).to_string()).collect();
        out[lane_at] = self.lane_line(lane_at, lane);
        self.append_history(&mut out, entry);
        self.append_log_line(&mut out, log_line);
        Ok(out.concat())
    }

    /// The `lane:` line with a new value, keeping its quotes and comment.
    fn lane_line(&self, lane_at: usize, lane: &str) -> String {
        let line = self.lines[lane_at];
        let text = bare(line);
        let (start, end) = value_span(text, "lane".len() + 1);
        let old = &text[start..end];
        let replacement = match old.chars().next() {
            Some('"') => quote(lane),
            Some('\'') => format!("'{}'", lane.replace('\'', "''")),
            _ => lane.to_string(),
        };
        let spacer = if start == "lane:".len() { " " } else { "" };
        format!(
            "{}{spacer}{replacement}{}{}",
            &text[..start],
            &text[end..],
            &line[text.len()..]
        )
    }

    /// Appends one entry at the end of the `history` list (creating it).
    fn append_history(&self, out: &mut [String], entry: &HistoryEntry) {
        let nl = self.newline;
        let (after, block) = match self.find_key("history") {
            Some(at) => {
                let text = bare(self.lines[at]);
                let after = text["history:".len()..].trim();
                let inline_empty = after.starts_with("[]");
                let mut last = at;
                let mut dash_indent: Option<usize> = None;
                let mut key_indent: Option<usize> = None;
                for index in at + 1..self.close {
                    let l = bare(self.lines[index]);
                    if l.trim().is_empty() || l.trim_start().starts_with('#') {
                        continue;
                    }
                    let lead = l.len() - l.trim_start().len();
                    let item = l.trim_start().starts_with("- ") || l.trim_start() == "-";
                    if lead == 0 && !item {
                        break;
                    }
                    if item && dash_indent.is_none() {
                        dash_indent = Some(lead);
                        let after_dash = &l.trim_start()[1..];
                        // A bare `-` line says nothing about the key column.
                        if !after_dash.trim().is_empty() {
                            key_indent =
                                Some(lead + 1 + (after_dash.len() - after_dash.trim_start().len()));
                        }
                    }
                    last = index;
                }
                let dash = dash_indent.unwrap_or(2);
                let keys = key_indent.unwrap_or(dash + 2);
                let block = history_block(entry, dash, keys, nl);
                if inline_empty {
                    // `history: []  # note` becomes `history:  # note`.
                    let rest = &after["[]".len()..];
                    let kept = if rest.trim_start().starts_with('#') {
                        rest
                    } else {
                        ""
                    };
                    out[at] = format!("history:{kept}{nl}");
                    (at, block)
                } else {
                    (last, block)
                }
            }
            None => (
                self.close - 1,
                format!("history:{nl}{}", history_block(entry, 2, 4, nl)),
            ),
        };
        if !out[after].ends_with('\n') {
            out[after].push_str(nl);
        }
        out[after].push_str(&block);
    }

    /// Appends one line at the end of the Activity Log (creating it).
    fn append_log_line(&self, out: &mut [String], log_line: &str) {
        let nl = self.newline;
        let heading = (self.close + 1..self.lines.len())
            .rev()
            .find(|&i| bare(self.lines[i]).trim_end() == "## Activity Log");
        match heading {
            Some(h) => {
                let section_end = (h + 1..self.lines.len())
                    .find(|&i| {
                        bare(self.lines[i]).starts_with("# ")
                            || bare(self.lines[i]).starts_with("## ")
                    })
                    .unwrap_or(self.lines.len());
                // After the last entry (and its indented continuation
                // lines), not after a rule or note that follows the list.
                let last_entry = (h + 1..section_end)
                    .rev()
                    .find(|&i| bare(self.lines[i]).starts_with("- "))
                    .map(|entry| {
                        (entry + 1..section_end)
                            .take_while(|&i| {
                                let l = bare(self.lines[i]);
                                l.starts_with([' ', '\t']) && !l.trim().is_empty()
                            })
                            .last()
                            .unwrap_or(entry)
                    });
                let last = last_entry.or_else(|| {
                    (h + 1..section_end)
                        .rev()
                        .find(|&i| !bare(self.lines[i]).trim().is_empty())
                });
                match last {
                    Some(last) => {
                        if !out[last].ends_with('\n') {
                            out[last].push_str(nl);
                        }
                        out[last].push_str(&format!("{log_line}{nl}"));
                    }
                    None => {
                        if !out[h].ends_with('\n') {
                            out[h].push_str(nl);
                        }
                        out[h].push_str(&format!("{nl}{log_line}{nl}"));
                    }
                }
            }
            None => {
                let last = out.len() - 1;
                if !out[last].ends_with('\n') {
                    out[last].push_str(nl);
                }
                out[last].push_str(&format!("{nl}## Activity Log{nl}{nl}{log_line}{nl}"));
            }
        }
    }
}

fn history_block(entry: &HistoryEntry, dash: usize, keys: usize, nl: &str) -> String {
    let d = " ".repeat(dash);
    // The first key sits after the dash in the same column as the others,
    // or the entry is not one YAML mapping (`-   timestamp:` lists).
    let p = " ".repeat(keys.saturating_sub(dash + 1).max(1));
    let k = " ".repeat(dash + 1 + p.len());
    format!(
        "{d}-{p}timestamp: {}{nl}{k}lane: {}{nl}{k}agent: {}{nl}{k}shell_pid: {}{nl}{k}action: {}{nl}",
        quote(&entry.timestamp),
        quote(&entry.lane),
        quote(&entry.agent),
        quote(&entry.shell_pid),
        quote(&entry.action)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "---\nwork_package_id: \"WP03\"\ntitle: \"Fix sync\"\nlane: \"planned\"  # DO NOT EDIT - use move-task\nassignee: \"\"\nhistory:\n  - timestamp: \"2026-02-12T12:00:00Z\"\n    lane: \"planned\"\n    agent: \"system\"\n    shell_pid: \"\"\n    action: \"Prompt generated\"\n---\n\n# WP03\n\nSome text\n---\nmore\n\n## Activity Log\n\n- 2026-02-12T12:00:00Z – system – lane=planned – Prompt created.\n";

    fn entry() -> HistoryEntry {
        HistoryEntry {
            timestamp: "2026-03-01T09:00:00Z".into(),
            lane: "in_progress".into(),
            agent: "alice".into(),
            shell_pid: "42".into(),
            action: "Moved to in_progress".into(),
        }
    }

    const LOG: &str = "- 2026-03-01T09:00:00Z – alice – lane=in_progress – Moved";

    #[test]
    fn fields_are_read() {
        let wp = WpFile::parse(SEED).expect("parses");
        let f = wp.fields();
        assert_eq!(f.work_package_id.as_deref(), Some("WP03"));
        assert_eq!(f.lane.as_deref(), Some("planned"));
        assert_eq!(f.assignee, None);
        assert_eq!(f.last_change.as_deref(), Some("2026-02-12T12:00:00Z"));
    }

    #[test]
    fn a_move_changes_only_the_lane_value_and_appends_two_entries() {
        let wp = WpFile::parse(SEED).expect("parses");
        let out = wp.moved("in_progress", &entry(), LOG).expect("moves");
        let expected = SEED
            .replace("lane: \"planned\"  # DO NOT EDIT", "lane: \"in_progress\"  # DO NOT EDIT")
            .replace(
                "    action: \"Prompt generated\"\n",
                "    action: \"Prompt generated\"\n  - timestamp: \"2026-03-01T09:00:00Z\"\n    lane: \"in_progress\"\n    agent: \"alice\"\n    shell_pid: \"42\"\n    action: \"Moved to in_progress\"\n",
            )
            + LOG
            + "\n";
        assert_eq!(out, expected);
        assert_eq!(
            WpFile::parse(&out)
                .expect("reparses")
                .fields()
                .lane
                .as_deref(),
            Some("in_progress")
        );
    }

    #[test]
    fn crlf_unquoted_and_empty_history() {
        let text = "---\r\nlane: planned # note\r\nhistory: []\r\n---\r\nbody\r\n";
        let out = WpFile::parse(text)
            .expect("parses")
            .moved("done", &entry(), LOG)
            .expect("moves");
        assert!(out.starts_with("---\r\nlane: done # note\r\nhistory:\r\n  - timestamp: \"2026-03-01T09:00:00Z\"\r\n"), "{out:?}");
        assert!(out.ends_with("body\r\n\r\n## Activity Log\r\n\r\n- 2026-03-01T09:00:00Z – alice – lane=in_progress – Moved\r\n"), "{out:?}");
        assert!(
            !out.replace("\r\n", "").contains('\n'),
            "only CRLF endings: {out:?}"
        );
    }

    #[test]
    fn dependencies_in_flow_and_block_form() {
        let deps = |front: &str| {
            let text = format!("---\nlane: planned\n{front}---\nbody\n");
            WpFile::parse(&text).expect("parses").dependencies()
        };
        assert_eq!(deps(""), Ok(vec![]));
        assert_eq!(deps("dependencies: []\n"), Ok(vec![]));
        assert_eq!(
            deps("dependencies: [\"WP01\", 'WP02', WP10]  # note\n"),
            Ok(vec!["WP01".into(), "WP02".into(), "WP10".into()])
        );
        assert_eq!(
            deps("dependencies:\n  - \"WP01\"\n  # c\n  - WP02\nhistory: []\n"),
            Ok(vec!["WP01".into(), "WP02".into()])
        );
        assert_eq!(
            deps("dependencies:\n- WP03\ntitle: x\n"),
            Ok(vec!["WP03".into()])
        );
        assert_eq!(deps("dependencies:\ntitle: x\n"), Ok(vec![]));
        assert_eq!(
            deps("dependencies: [\"WP1\"]\n"),
            Err(WpError::BadDependency {
                entry: "WP1".into()
            })
        );
        assert_eq!(
            deps("dependencies:\n  - setup\n"),
            Err(WpError::BadDependency {
                entry: "setup".into()
            })
        );
        assert_eq!(
            deps("dependencies: WP01\n"),
            Err(WpError::DependenciesNotAList {
                found: "WP01".into()
            })
        );
    }

    #[test]
    fn single_quotes_and_missing_lane() {
        let text = "---\nlane: 'for_review'\n---\n";
        let out = WpFile::parse(text)
            .expect("parses")
            .moved("done", &entry(), LOG)
            .expect("moves");
        assert!(
            out.starts_with("---\nlane: 'done'\nhistory:\n  - timestamp:"),
            "{out}"
        );
        let missing = WpFile::parse("---\ntitle: x\n---\n").expect("parses");
        assert_eq!(
            missing.moved("done", &entry(), LOG).err(),
            Some(WpError::NoLane)
        );
        assert_eq!(
            WpFile::parse("no front matter").err(),
            Some(WpError::NoFrontMatter)
        );
        assert_eq!(
            WpFile::parse("---\nlane: x\n").err(),
            Some(WpError::Unterminated)
        );
    }
}
