//! What a newcomer tries first: no arguments, `--version`, `--help`,
//! completions, and flags that only make sense together.

use crate::common;

use common::{Client, code, describe, stderr, stdout};

#[test]
fn no_arguments_prints_help_on_stdout_and_succeeds() {
    let client = Client::new();
    let out = client.run(&[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("Usage: spec-kitty"), "{text}");
    assert!(text.contains("Examples:"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", describe(&out));
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let client = Client::new();
    let out = client.run(&["--version"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let rest = text
        .trim()
        .strip_prefix(&format!(
            "spec-kitty {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
    let parts: Vec<&str> = date.split('-').collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{text}");
}

#[test]
fn completions_for_each_shell() {
    let client = Client::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = client.run(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", describe(&out));
        let text = stdout(&out);
        assert!(text.contains("spec-kitty"), "{shell}: {text}");
        assert!(text.contains("move-task"), "{shell} knows the subcommands");
    }
    let out = client.run(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(!client.dir().exists(), "completions touch nothing in HOME");
}

#[test]
fn timeout_without_check_is_refused() {
    let client = Client::new();
    let out = client.run(&["sync", "status", "--timeout", "3"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stderr(&out).contains("--check"), "{}", describe(&out));
    let out = client.run(&["sync", "status"]);
    assert_eq!(
        code(&out),
        0,
        "the default timeout alone is fine: {}",
        describe(&out)
    );
}

#[test]
fn every_command_help_has_examples() {
    let client = Client::new();
    for command in [
        &["auth", "login"][..],
        &["auth", "status"],
        &["auth", "token"],
        &["auth", "logout"],
        &["sync", "server"],
        &["sync", "status"],
        &["sync", "now"],
        &["sync", "diagnose"],
        &["sync", "import"],
        &["sync", "discard"],
        &["agent", "tasks", "move-task"],
        &["agent", "tasks", "list-tasks"],
        &["agent", "tasks", "publish"],
        &["board"],
        &["completions"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = client.run(&args);
        assert_eq!(code(&out), 0, "{command:?}: {}", describe(&out));
        assert!(
            stdout(&out).contains("Example"),
            "{command:?} --help has examples: {}",
            stdout(&out)
        );
    }
}
