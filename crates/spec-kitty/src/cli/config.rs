//! `spec-kitty config get|set|list`: the settings of
//! `~/.spec-kitty/config.toml`, checked per key. The file stays readable by
//! the Python client: other keys and comments are kept, and it is replaced
//! atomically with mode 0600.

use clap::Subcommand;

use super::output::{CliError, CliResult};
use crate::home::config::{Config, ConfigError, KEYS};
use crate::home::paths::{self, Home};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Show every known key, its value and where it comes from (file or default)
    #[command(after_help = "Example:\n  spec-kitty config list")]
    List,
    /// Print the value of one key
    #[command(
        after_help = "Exit 1 when the key is unset and has no default.\n\nExamples:\n  spec-kitty config get sync.server_url\n  spec-kitty config get sync.max_queue_size"
    )]
    Get {
        /// The key, e.g. sync.server_url (see `spec-kitty config list`)
        key: String,
    },
    /// Check and store the value of one key
    #[command(
        after_help = "sync.server_url follows the rules of `spec-kitty sync server`: https, or http to\nthis machine only; a trailing /api/v1 is dropped, other paths and user:password@ are refused.\nsync.max_queue_size is a whole number of events, at least 1.\n\nExamples:\n  spec-kitty config set sync.server_url https://sync.example.com\n  spec-kitty config set sync.max_queue_size 50000"
    )]
    Set {
        /// The key, e.g. sync.server_url
        key: String,
        /// The new value
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

pub fn run(home: &Home, command: ConfigCommand) -> CliResult {
    match command {
        ConfigCommand::List => list(home),
        ConfigCommand::Get { key } => get(home, &key),
        ConfigCommand::Set { key, value } => set(home, &key, &value),
    }
}

/// A refused key or value is bad usage (exit 2); a file that cannot be
/// read or written is a failure (exit 1).
fn config_error(e: ConfigError) -> CliError {
    match e {
        ConfigError::UnknownKey { .. } | ConfigError::BadValue { .. } | ConfigError::Url(_) => {
            CliError::new(2, e.to_string())
        }
        other => CliError::from(other),
    }
}

fn list(home: &Home) -> CliResult {
    let config = Config::load(home).map_err(config_error)?;
    crate::verbosity::verbose(format_args!("reading {}", paths::display(config.path())));
    let settings = config.list();
    let width = KEYS.iter().map(|k| k.len()).max().unwrap_or(0);
    let values: Vec<String> = settings
        .iter()
        .map(|s| s.value.clone().unwrap_or_else(|| "(unset)".into()))
        .collect();
    let value_width = values.iter().map(String::len).max().unwrap_or(0).max(5);
    println!("{:<width$}  {:<value_width$}  SOURCE", "KEY", "VALUE");
    for (setting, value) in settings.iter().zip(&values) {
        println!(
            "{:<width$}  {:<value_width$}  {}",
            setting.key,
            value,
            setting.source.as_str()
        );
    }
    Ok(0)
}

fn get(home: &Home, key: &str) -> CliResult {
    let config = Config::load(home).map_err(config_error)?;
    let setting = config.get(key).map_err(config_error)?;
    match setting.value {
        Some(value) => {
            println!("{value}");
            Ok(0)
        }
        None => Err(CliError::general(format!(
            "{} is not set and has no default. Set it with: spec-kitty config set {} VALUE",
            setting.key, setting.key
        ))),
    }
}

fn set(home: &Home, key: &str, value: &str) -> CliResult {
    let mut config = Config::load(home).map_err(config_error)?;
    let stored = config.set(key, value).map_err(config_error)?;
    config.save(home).map_err(config_error)?;
    crate::verbosity::verbose(format_args!("wrote {}", paths::display(config.path())));
    println!("{key} set to {stored}");
    Ok(0)
}
