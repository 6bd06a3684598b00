//! `spec-kitty sync server [URL]`: show or set `[sync] server_url` in
//! `~/.spec-kitty/config.toml`.

use crate::common;

use common::{Client, code, describe, stderr, stdout};

#[test]
fn unset_server_says_how_to_set_one() {
    let client = Client::new();
    let out = client.run(&["sync", "server"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("spec-kitty sync server https://sync.example.com"),
        "{}",
        describe(&out)
    );
    assert!(!client.config_path().exists(), "showing writes nothing");
}

#[test]
fn set_then_show_drops_the_trailing_slash() {
    let client = Client::new();
    let out = client.run(&["sync", "server", "https://sync.example.com/"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim(),
        "Sync server set to https://sync.example.com"
    );

    let out = client.run(&["sync", "server"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(stdout(&out), "https://sync.example.com\n");

    let config = std::fs::read_to_string(client.config_path()).expect("config written");
    let doc: toml_edit::DocumentMut = config.parse().expect("config is TOML");
    assert_eq!(
        doc["sync"]["server_url"].as_str(),
        Some("https://sync.example.com")
    );
    assert_eq!(Client::mode(&client.dir()), 0o700);
}

#[test]
fn plain_http_is_refused_except_to_this_machine() {
    let client = Client::new();
    for refused in [
        "http://sync.example.com",
        "http://10.0.0.5:8000",
        "ftp://sync.example.com",
        "sync.example.com",
    ] {
        let out = client.run(&["sync", "server", refused]);
        assert_eq!(code(&out), 2, "{refused}: {}", describe(&out));
        assert!(
            stderr(&out).contains("Example: https://sync.example.com"),
            "{refused}: an example of a good URL is shown: {}",
            describe(&out)
        );
        assert!(!client.config_path().exists(), "{refused} was not stored");
    }

    for (accepted, stored) in [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ] {
        let out = client.run(&["sync", "server", accepted]);
        assert_eq!(code(&out), 0, "{accepted}: {}", describe(&out));
        let out = client.run(&["sync", "server"]);
        assert_eq!(stdout(&out).trim(), stored, "{}", describe(&out));
    }
}

#[test]
fn setting_keeps_comments_and_other_keys() {
    let client = Client::new();
    std::fs::create_dir_all(client.dir()).expect("dir");
    let original = "# my spec-kitty settings\n[sync]\n# where events go\nserver_url = \"https://old.example.com\" # old one\nmax_queue_size = 5000 # small disk\n\n[other]\nkey = \"value\"\n";
    std::fs::write(client.config_path(), original).expect("write config");

    let out = client.run(&["sync", "server", "https://new.example.com"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));

    let text = std::fs::read_to_string(client.config_path()).expect("read config");
    for kept in [
        "# my spec-kitty settings",
        "# where events go",
        "max_queue_size = 5000 # small disk",
        "[other]",
        "key = \"value\"",
    ] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
    assert!(
        text.contains("server_url = \"https://new.example.com\""),
        "{text}"
    );
    assert!(!text.contains("old.example.com"), "{text}");
}

#[test]
fn the_api_path_is_dropped_and_other_paths_are_refused() {
    let client = Client::new();
    for (given, stored) in [
        (
            "https://sync.example.com/api/v1",
            "https://sync.example.com",
        ),
        (
            "https://sync.example.com/api/v1/",
            "https://sync.example.com",
        ),
        ("http://127.0.0.1:8000/api/v1/", "http://127.0.0.1:8000"),
    ] {
        let out = client.run(&["sync", "server", given]);
        assert_eq!(code(&out), 0, "{given}: {}", describe(&out));
        let out = client.run(&["sync", "server"]);
        assert_eq!(stdout(&out).trim(), stored, "{}", describe(&out));
    }
    let out = client.run(&["sync", "server", "https://sync.example.com/board"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("without a path (/board)"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_url_with_a_user_and_password_is_refused_and_not_stored() {
    let client = Client::new();
    let out = client.run(&["sync", "server", "https://alice:s3cret@sync.example.com"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("must not contain a user name or password"),
        "{}",
        describe(&out)
    );
    assert!(!client.config_path().exists(), "nothing stored");
    assert!(
        !stderr(&out).contains("s3cret"),
        "the password is not echoed"
    );
}
