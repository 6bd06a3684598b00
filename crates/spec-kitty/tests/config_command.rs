//! `spec-kitty config list|get|set` over `~/.spec-kitty/config.toml`.

use crate::common;

use common::{Client, code, describe, stderr, stdout};

fn write_config(client: &Client, text: &str) {
    std::fs::create_dir_all(client.dir()).expect("home dir");
    std::fs::write(client.config_path(), text).expect("write config");
}

#[test]
fn list_shows_every_key_with_its_value_and_source() {
    let client = Client::new();
    let out = client.run(&["config", "list"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["KEY", "VALUE", "SOURCE"], "{text}");
    assert!(
        lines.contains(&vec!["sync.server_url", "(unset)", "default"]),
        "{text}"
    );
    assert!(
        lines.contains(&vec!["sync.max_queue_size", "100000", "default"]),
        "{text}"
    );

    write_config(
        &client,
        "[sync]\nserver_url = \"https://sync.example.com\"\nmax_queue_size = 7\n",
    );
    let out = client.run(&["config", "list"]);
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec!["sync.server_url", "https://sync.example.com", "file"]),
        "{text}"
    );
    assert!(
        lines.contains(&vec!["sync.max_queue_size", "7", "file"]),
        "{text}"
    );
}

#[test]
fn set_checks_each_value_and_keeps_the_rest_of_the_file() {
    let client = Client::new();
    write_config(
        &client,
        "# written by the Python client\n[sync]\nother_key = \"kept\" # note\n\n[extra]\nx = 1\n",
    );

    // The server URL follows the rules of `sync server`.
    let out = client.run(&[
        "config",
        "set",
        "sync.server_url",
        "https://sync.example.com/api/v1",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        "sync.server_url set to https://sync.example.com"
    );
    let out = client.run(&[
        "config",
        "set",
        "sync.server_url",
        "http://sync.example.com",
    ]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stderr(&out).contains("plain http"), "{}", describe(&out));
    let out = client.run(&[
        "config",
        "set",
        "sync.server_url",
        "https://bob:hunter22@sync.example.com",
    ]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(!stderr(&out).contains("hunter22"), "{}", describe(&out));

    for bad in ["0", "-3", "many", "1.5"] {
        let out = client.run(&["config", "set", "sync.max_queue_size", bad]);
        assert_eq!(code(&out), 2, "{bad}: {}", describe(&out));
        assert!(
            stderr(&out).contains("sync.max_queue_size"),
            "{}",
            describe(&out)
        );
    }
    let out = client.run(&["config", "set", "sync.max_queue_size", "50000"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));

    let out = client.run(&["config", "get", "sync.server_url"]);
    assert_eq!(
        (code(&out), stdout(&out)),
        (0, "https://sync.example.com\n".to_string())
    );
    let out = client.run(&["config", "get", "sync.max_queue_size"]);
    assert_eq!((code(&out), stdout(&out)), (0, "50000\n".to_string()));
    // `sync server` reads what `config set` wrote.
    let out = client.run(&["sync", "server"]);
    assert_eq!(stdout(&out).trim(), "https://sync.example.com");

    let text = std::fs::read_to_string(client.config_path()).expect("config");
    for kept in [
        "# written by the Python client",
        "other_key = \"kept\" # note",
        "[extra]",
        "x = 1",
    ] {
        assert!(text.contains(kept), "lost {kept:?}: {text}");
    }
    let parsed: toml_edit::DocumentMut = text.parse().expect("still TOML");
    assert_eq!(parsed["sync"]["max_queue_size"].as_integer(), Some(50000));
    assert_eq!(Client::mode(&client.config_path()), 0o600);
}

#[test]
fn an_unknown_key_is_bad_usage_with_a_suggestion() {
    let client = Client::new();
    for (key, meant) in [
        ("server_url", "sync.server_url"),
        ("sync.server_ur", "sync.server_url"),
        ("sync.max_queue", "sync.max_queue_size"),
    ] {
        for args in [vec!["config", "get", key], vec!["config", "set", key, "1"]] {
            let out = client.run(&args);
            assert_eq!(code(&out), 2, "{args:?}: {}", describe(&out));
            assert!(
                stderr(&out).contains(&format!("Did you mean '{meant}'?")),
                "{args:?}: {}",
                describe(&out)
            );
        }
    }
    assert!(
        !client.config_path().exists(),
        "a refused set writes nothing"
    );

    let out = client.run(&["config", "get", "sync.server_url"]);
    assert_eq!(code(&out), 1, "unset, no default: {}", describe(&out));
    assert!(stderr(&out).contains("not set"), "{}", describe(&out));
}
