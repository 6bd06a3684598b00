//! The `spec-kitty` command.

fn main() -> std::process::ExitCode {
    spec_kitty::cli::run()
}
