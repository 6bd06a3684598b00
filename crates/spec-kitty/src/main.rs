//! The `spec-kitty` command.

use clap::Parser;

/// spec-kitty: spec-driven development with authenticated team sync.
#[derive(Parser)]
#[command(name = "spec-kitty", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
