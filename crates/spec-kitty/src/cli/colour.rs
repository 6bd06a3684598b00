//! `--color auto|always|never` and `NO_COLOR`, decided once per process.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum When {
    /// Only on a terminal, and only when `NO_COLOR` is unset or empty
    Auto,
    /// Always, even into a pipe (for `less -R`)
    Always,
    /// Never
    Never,
}

static CHOICE: OnceLock<When> = OnceLock::new();

/// Records the `--color` choice; the first call wins.
pub fn set(when: When) {
    let _ = CHOICE.set(when);
}

/// Whether to colour what goes to standard output. `auto` follows
/// <https://no-color.org>: `NO_COLOR` present and not empty turns colour
/// off; an explicit `--color always` wins over it, as the user asked.
pub fn stdout() -> bool {
    match CHOICE.get().copied().unwrap_or(When::Auto) {
        When::Always => true,
        When::Never => false,
        When::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}
