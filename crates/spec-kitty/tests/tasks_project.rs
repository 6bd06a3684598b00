//! Which feature a move applies to, the project identity in
//! `.kittify/config.yaml` (contract section 6), and the queued event's
//! envelope: valid, ULID ids, project and team, git branch and commit, with
//! or without credentials and with no server at all.

use crate::tasks_support;

use serde_json::Value;
use tasks_support::{
    FEATURE, Project, assert_nothing_queued, code, describe, read, stderr, text, wp_text,
};
use yaml_rust2::YamlLoader;

const SHA: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn two_features() -> Project {
    let project = Project::new();
    project.write_wp(
        "001-alpha",
        "WP01-a.md",
        &wp_text("WP01", "Alpha one", "planned"),
    );
    project.write_wp(
        "002-beta",
        "WP01-b.md",
        &wp_text("WP01", "Beta one", "planned"),
    );
    project
}

fn wp_path(project: &Project, feature: &str, file: &str) -> std::path::PathBuf {
    project
        .root
        .join("kitty-specs")
        .join(feature)
        .join("tasks")
        .join(file)
}

// ---------------------------------------------------------------------------
// Feature selection
// ---------------------------------------------------------------------------

#[test]
fn one_feature_needs_no_flag_and_subfolders_find_the_project() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    let deep = project.root.join("kitty-specs").join(FEATURE).join("tasks");
    let out = project
        .cmd_in(&deep)
        .args(["agent", "tasks", "move-task", "WP01", "--to", "claimed"])
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let event = project.only_event();
    assert_eq!(event["aggregate_id"], format!("{FEATURE}/WP01"));
    assert_eq!(event["git_branch"], Value::Null, "not a git repository");
    assert_eq!(event["head_commit_sha"], Value::Null);
}

#[test]
fn several_features_without_a_flag_are_an_error_listing_them() {
    let project = two_features();
    let before_a = read(&wp_path(&project, "001-alpha", "WP01-a.md"));
    let before_b = read(&wp_path(&project, "002-beta", "WP01-b.md"));
    let out = project.move_task("WP01", "claimed", &[]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("001-alpha") && err.contains("002-beta"),
        "{err}"
    );
    assert!(err.contains("--feature"), "says how to choose: {err}");
    assert_eq!(read(&wp_path(&project, "001-alpha", "WP01-a.md")), before_a);
    assert_eq!(read(&wp_path(&project, "002-beta", "WP01-b.md")), before_b);
    assert_nothing_queued(&project);
}

#[test]
fn feature_flag_chooses_by_full_name_number_or_slug() {
    let project = two_features();
    project.move_ok("WP01", "claimed", &["--feature", "002-beta"]);
    project.move_ok("WP01", "claimed", &["--feature", "001"]);
    project.move_ok("WP01", "in_progress", &["--feature", "beta"]);
    let ids: Vec<String> = project
        .events()
        .iter()
        .map(|e| text(e, "/aggregate_id").to_string())
        .collect();
    assert_eq!(ids, ["002-beta/WP01", "001-alpha/WP01", "002-beta/WP01"]);
    let events = project.events();
    assert_eq!(events[0]["payload"]["feature_slug"], "002-beta");
    assert_eq!(events[1]["payload"]["feature_slug"], "001-alpha");

    let out = project.move_task("WP01", "done", &["--feature", "003-gamma"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("003-gamma") && err.contains("001-alpha") && err.contains("002-beta"),
        "{err}"
    );
    assert_eq!(project.events().len(), 3);
}

#[test]
fn a_git_branch_named_after_a_feature_chooses_it() {
    let project = two_features();
    project.git_branch("002-beta", SHA);
    project.move_ok("WP01", "claimed", &[]);
    let event = project.only_event();
    assert_eq!(event["aggregate_id"], "002-beta/WP01");
    assert_eq!(event["payload"]["feature_slug"], "002-beta");
    assert_eq!(event["git_branch"], "002-beta");
    assert_eq!(event["head_commit_sha"], SHA);
    let beta = read(&wp_path(&project, "002-beta", "WP01-b.md"));
    assert!(beta.contains("lane: \"claimed\""), "{beta}");
    let alpha = read(&wp_path(&project, "001-alpha", "WP01-a.md"));
    assert!(alpha.contains("lane: \"planned\""), "{alpha}");
}

#[test]
fn a_work_package_branch_of_a_feature_chooses_it() {
    // Worktree branches are named `<feature>-WPnn`.
    let project = two_features();
    project.git_branch("001-alpha-WP01", SHA);
    project.move_ok("WP01", "claimed", &[]);
    let event = project.only_event();
    assert_eq!(event["aggregate_id"], "001-alpha/WP01");
    assert_eq!(event["git_branch"], "001-alpha-WP01");
    assert_eq!(event["head_commit_sha"], SHA);
}

#[test]
fn a_branch_named_after_no_feature_still_needs_the_flag() {
    let project = two_features();
    project.git_branch("main", SHA);
    let out = project.move_task("WP01", "claimed", &[]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("001-alpha, 002-beta"),
        "{}",
        describe(&out)
    );
    assert_nothing_queued(&project);
    project.move_ok("WP01", "claimed", &["--feature", "001-alpha"]);
    let event = project.only_event();
    assert_eq!(event["git_branch"], "main");
    assert_eq!(event["head_commit_sha"], SHA);
}

#[test]
fn a_detached_head_gives_the_commit_and_no_branch() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    std::fs::create_dir_all(project.root.join(".git")).expect(".git");
    std::fs::write(project.root.join(".git/HEAD"), format!("{SHA}\n")).expect("HEAD");
    project.move_ok("WP01", "claimed", &[]);
    let event = project.only_event();
    assert_eq!(event["git_branch"], Value::Null);
    assert_eq!(event["head_commit_sha"], SHA);
    assert!(spec_kitty_protocol::validate_event(&event).is_empty());
}

#[test]
fn no_project_is_an_error_that_says_so() {
    let project = Project::new();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = project
        .cmd_in(elsewhere.path())
        .args(["agent", "tasks", "move-task", "WP01", "--to", "claimed"])
        .output()
        .expect("runs");
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("kitty-specs"), "{}", describe(&out));
    assert_nothing_queued(&project);
}

// ---------------------------------------------------------------------------
// Project identity
// ---------------------------------------------------------------------------

struct Identity {
    uuid: String,
    slug: String,
    node_id: String,
}

fn identity_of(config: &str) -> Identity {
    let docs = YamlLoader::load_from_str(config)
        .unwrap_or_else(|e| panic!("config.yaml is not valid YAML ({e}):\n{config}"));
    let project = &docs[0]["project"];
    let get = |key: &str| {
        project[key]
            .as_str()
            .unwrap_or_else(|| panic!("project.{key} missing in:\n{config}"))
            .to_string()
    };
    Identity {
        uuid: get("uuid"),
        slug: get("slug"),
        node_id: get("node_id"),
    }
}

fn assert_event_identity(event: &Value, identity: &Identity) {
    assert_eq!(event["project_uuid"], identity.uuid.as_str());
    assert_eq!(event["project_slug"], identity.slug.as_str());
    assert_eq!(event["node_id"], identity.node_id.as_str());
}

#[test]
fn identity_is_created_on_the_first_move_and_reused() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    assert!(!project.config_path().exists());
    project.move_ok("WP01", "claimed", &[]);

    let config = read(&project.config_path());
    let identity = identity_of(&config);
    let uuid = uuid::Uuid::parse_str(&identity.uuid).expect("project.uuid is a UUID");
    assert_eq!(uuid.get_version_num(), 4, "UUID v4");
    assert_eq!(identity.slug, "myproj", "from the folder name");
    assert_eq!(identity.node_id.len(), 12, "{}", identity.node_id);
    assert!(
        identity
            .node_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "12 hex chars: {}",
        identity.node_id
    );
    assert_event_identity(&project.only_event(), &identity);

    // Later moves read it back and leave the file alone.
    project.move_ok("WP01", "in_progress", &[]);
    project.move_ok("WP01", "for_review", &[]);
    assert_eq!(read(&project.config_path()), config, "config untouched");
    let events = project.events();
    assert_eq!(events.len(), 3);
    for event in &events {
        assert_event_identity(event, &identity);
    }
}

#[test]
fn existing_config_keeps_its_keys_and_comments() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    let original = "# spec-kitty project settings, edited by hand\n\
agents:\n  available:\n    - claude   # the main one\n    - codex\nvcs:\n  type: git   # not jj\n\n# end of file\n";
    std::fs::create_dir_all(project.root.join(".kittify")).expect(".kittify");
    std::fs::write(project.config_path(), original).expect("config");
    project.move_ok("WP01", "claimed", &[]);

    let config = read(&project.config_path());
    assert!(
        config.starts_with(original),
        "every original byte kept, identity added after:\n{config}"
    );
    let docs = YamlLoader::load_from_str(&config).expect("valid YAML");
    assert_eq!(docs[0]["vcs"]["type"].as_str(), Some("git"));
    assert_eq!(docs[0]["agents"]["available"][1].as_str(), Some("codex"));
    let identity = identity_of(&config);
    assert_event_identity(&project.only_event(), &identity);

    project.move_ok("WP01", "done", &[]);
    assert_eq!(read(&project.config_path()), config);
    assert_eq!(project.events()[1]["project_uuid"], identity.uuid.as_str());
}

#[test]
fn a_partial_project_block_is_completed_in_place() {
    // As the Python client might leave it: a uuid, a comment, another key
    // in the block, and more keys after it.
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    let uuid = "2f1c0a6e-3b7d-4c1e-9a55-0d6b8e2f7a10";
    let original = format!(
        "project:\n  # made by spec-kitty 2.x\n  uuid: \"{uuid}\"\n  name: Legacy Name\nmission: software-dev   # default\n"
    );
    std::fs::create_dir_all(project.root.join(".kittify")).expect(".kittify");
    std::fs::write(project.config_path(), &original).expect("config");
    project.move_ok("WP01", "claimed", &[]);

    let config = read(&project.config_path());
    // Every original line is still there, in order.
    let mut new_lines = config.lines();
    for line in original.lines() {
        assert!(
            new_lines.any(|l| l == line),
            "line {line:?} kept in order:\n{config}"
        );
    }
    assert_eq!(config.lines().count(), original.lines().count() + 2);
    let docs = YamlLoader::load_from_str(&config).expect("valid YAML");
    assert_eq!(docs[0]["project"]["name"].as_str(), Some("Legacy Name"));
    assert_eq!(docs[0]["mission"].as_str(), Some("software-dev"));
    let identity = identity_of(&config);
    assert_eq!(identity.uuid, uuid, "the existing uuid is kept");
    assert_event_identity(&project.only_event(), &identity);
}

#[test]
fn a_complete_identity_is_read_and_the_file_left_alone() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    let original = "project:\n  uuid: 9d3c7f0e-5a41-4b8e-8f2a-61c0d4e7b9a3\n  slug: team-site   # chosen\n  node_id: 0a1b2c3d4e5f\n";
    std::fs::create_dir_all(project.root.join(".kittify")).expect(".kittify");
    std::fs::write(project.config_path(), original).expect("config");
    project.move_ok("WP01", "claimed", &[]);
    assert_eq!(read(&project.config_path()), original);
    assert_event_identity(
        &project.only_event(),
        &Identity {
            uuid: "9d3c7f0e-5a41-4b8e-8f2a-61c0d4e7b9a3".into(),
            slug: "team-site".into(),
            node_id: "0a1b2c3d4e5f".into(),
        },
    );
}

#[test]
fn a_broken_project_uuid_is_reported_and_nothing_changes() {
    let project = Project::with_feature();
    let wp = wp_text("WP01", "X", "planned");
    let path = project.write_wp(FEATURE, "WP01-x.md", &wp);
    let original = "project:\n  uuid: not-a-uuid\n";
    std::fs::create_dir_all(project.root.join(".kittify")).expect(".kittify");
    std::fs::write(project.config_path(), original).expect("config");
    let out = project.move_task("WP01", "claimed", &[]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not-a-uuid") && err.contains("config.yaml"),
        "{err}"
    );
    assert_eq!(read(&project.config_path()), original);
    assert_eq!(read(&path), wp, "the work package is not moved either");
    assert_nothing_queued(&project);
}

// ---------------------------------------------------------------------------
// The event envelope, logged in and out
// ---------------------------------------------------------------------------

fn assert_valid_envelope(event: &Value) {
    let errors = spec_kitty_protocol::validate_event(event);
    assert!(errors.is_empty(), "{errors:?} in {event:#}");
    for key in ["event_id", "correlation_id"] {
        let id = text(event, &format!("/{key}"));
        assert!(spec_kitty_protocol::validate::is_ulid(id), "{key} {id}");
        ulid::Ulid::from_string(id).unwrap_or_else(|e| panic!("{key} {id}: {e}"));
    }
    assert_eq!(event["event_type"], "WPStatusChanged");
    assert_eq!(event["schema_version"], "1.0.0");
    spec_kitty_protocol::timestamp::parse(text(event, "/timestamp")).expect("timestamp");
    assert!(event["lamport_clock"].as_u64().is_some_and(|c| c >= 1));
}

#[test]
fn logged_in_events_carry_the_team_and_the_user() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    project.write_credentials(Some("acme"));
    let out = project.move_task("WP01", "claimed", &[]);
    assert_eq!(
        code(&out),
        0,
        "works without reaching the server: {}",
        describe(&out)
    );
    let event = project.only_event();
    assert_valid_envelope(&event);
    assert_eq!(event["team_slug"], "acme");
    assert_eq!(event["payload"]["actor"], "alice", "the logged-in user");
    let identity = identity_of(&read(&project.config_path()));
    assert_event_identity(&event, &identity);

    // --agent names someone else; the team stays.
    project.move_ok("WP01", "in_progress", &["--agent", "claude"]);
    let second = &project.events()[1];
    assert_eq!(second["payload"]["actor"], "claude");
    assert_eq!(second["team_slug"], "acme");
}

#[test]
fn logged_in_without_a_team_sends_no_team_slug() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    project.write_credentials(None);
    project.move_ok("WP01", "claimed", &[]);
    let event = project.only_event();
    assert_valid_envelope(&event);
    assert!(event.get("team_slug").is_none(), "{event:#}");
    assert_eq!(event["payload"]["actor"], "alice");
}

#[test]
fn logged_out_with_no_server_the_event_waits_in_the_queue() {
    let project = Project::with_feature();
    let path = project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    assert!(
        !project.client_dir().exists(),
        "nothing on this machine yet"
    );
    let out = project.move_task("WP01", "claimed", &["--agent", "solo"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(read(&path).contains("lane: \"claimed\""));
    let event = project.only_event();
    assert_valid_envelope(&event);
    assert!(event.get("team_slug").is_none(), "{event:#}");
    assert_eq!(event["payload"]["actor"], "solo");
    assert!(
        !project.client_dir().join("credentials").exists(),
        "no credentials were made up"
    );
}

#[test]
fn a_corrupt_credentials_file_does_not_stop_local_work() {
    let project = Project::with_feature();
    project.write_wp(FEATURE, "WP01-x.md", &wp_text("WP01", "X", "planned"));
    std::fs::create_dir_all(project.client_dir()).expect("dir");
    let garbage = "this is [not toml\n";
    std::fs::write(project.client_dir().join("credentials"), garbage).expect("write");
    let out = project.move_task("WP01", "claimed", &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stderr(&out).contains("credentials"),
        "warns: {}",
        describe(&out)
    );
    let event = project.only_event();
    assert_valid_envelope(&event);
    assert!(event.get("team_slug").is_none());
    assert_eq!(
        read(&project.client_dir().join("credentials")),
        garbage,
        "the broken file is left for the user"
    );
}
