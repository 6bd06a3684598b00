//! The `spec-kitty-server` command; everything lives in the library
//! ([`spec_kitty_server::cli`]) so it is built and tested with it.

fn main() -> std::process::ExitCode {
    spec_kitty_server::cli::main()
}
