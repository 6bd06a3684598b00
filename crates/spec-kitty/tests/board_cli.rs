//! `spec-kitty board` and `spec-kitty agent tasks publish` through the
//! real binary, against the real server started in-process (contract
//! section 8, "The client's side").

use crate::tasks_support;

use serde_json::Value;
use tasks_support::{
    Canned, FIRST_STATUS_REASON, FakeServer, Project, TestServer, code, describe, stderr, stdout,
    wp_text,
};

const PASSWORD: &str = "password123";
const ALPHA: &str = "001-alpha";
const BETA: &str = "002-beta";

/// One work package of the test project: (feature, wp, title, lane in the
/// file, lane the board shows, dependencies).
type Fixture = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const WORK_PACKAGES: [Fixture; 6] = [
    (ALPHA, "WP01", "Set up the crate", "planned", "planned", &[]),
    (
        ALPHA,
        "WP02",
        "Build the parser",
        "in_progress",
        "doing",
        &["WP01"],
    ),
    (
        ALPHA,
        "WP03",
        "Review the parser",
        "for_review",
        "for_review",
        &["WP01", "WP02"],
    ),
    (ALPHA, "WP04", "Ship it", "done", "done", &[]),
    (BETA, "WP01", "Blocked on design", "blocked", "doing", &[]),
    (BETA, "WP02", "Beta planning", "planned", "planned", &[]),
];

/// A server with team `acme` (alice) and team `other` (bob).
fn server() -> TestServer {
    let server = TestServer::start();
    server.add_team("acme");
    server.add_user_with_password("alice", PASSWORD, "acme");
    server.add_team("other");
    server.add_user_with_password("bob", PASSWORD, "other");
    server
}

/// The work-package file: dependencies in flow form for one, block form
/// for the other, as people write both.
fn wp_file(wp: &str, title: &str, lane: &str, deps: &[&str]) -> String {
    let text = wp_text(wp, title, lane);
    match deps {
        [] => text,
        [one] => text.replace("dependencies: []", &format!("dependencies: [\"{one}\"]")),
        many => {
            let block: String = many.iter().map(|d| format!("\n  - \"{d}\"")).collect();
            text.replace("dependencies: []", &format!("dependencies:{block}"))
        }
    }
}

/// The project of [`WORK_PACKAGES`], not yet published.
fn project() -> Project {
    let project = Project::new();
    for (feature, wp, title, lane, _, deps) in WORK_PACKAGES {
        project.write_wp(
            feature,
            &format!("{wp}-{}.md", lane.replace('_', "-")),
            &wp_file(wp, title, lane, deps),
        );
    }
    project
}

fn login(project: &Project, server: &TestServer, user: &str) {
    let out = tasks_support::password_login(&mut project.cmd(), server.url(), user, PASSWORD, &[]);
    assert_eq!(code(&out), 0, "log-in: {}", describe(&out));
}

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.run(args);
    assert_eq!(code(&out), 0, "{args:?}: {}", describe(&out));
    stdout(&out)
}

/// Logged in as alice, published and synced.
fn synced(server: &TestServer) -> Project {
    let project = project();
    login(&project, server, "alice");
    let printed = ok(&project, &["agent", "tasks", "publish"]);
    assert_eq!(
        printed.trim(),
        "Queued 2 features, 6 work packages, 4 first lane changes. Run spec-kitty sync now to upload."
    );
    ok(&project, &["sync", "now"]);
    project
}

fn credential(project: &Project, table: &str, key: &str) -> String {
    let text = std::fs::read_to_string(project.client_dir().join("credentials"))
        .expect("credentials file");
    let doc: toml_edit::DocumentMut = text.parse().expect("credentials are TOML");
    doc[table][key].as_str().expect("a string").to_string()
}

fn expire_access(project: &Project) {
    let path = project.client_dir().join("credentials");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path)
        .expect("credentials file")
        .parse()
        .expect("TOML");
    doc["tokens"]["access_expires_at"] = toml_edit::value("2020-01-01T00:00:00+00:00");
    std::fs::write(&path, doc.to_string()).expect("write credentials");
}

/// GET a read-API path with the stored access token, as JSON.
fn api_get(project: &Project, server: &TestServer, path: &str) -> Value {
    let token = credential(project, "tokens", "access");
    let mut response = ureq::get(&format!("{}{path}", server.url()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let text = response.body_mut().read_to_string().expect("body");
    serde_json::from_str(&text).expect("JSON")
}

fn project_uuid(project: &Project) -> String {
    let text = std::fs::read_to_string(project.config_path()).expect("config.yaml");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("uuid:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("project.uuid")
}

/// Every event the server stored for the project, through the feed.
fn feed(project: &Project, server: &TestServer) -> Vec<Value> {
    let uuid = project_uuid(project);
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after.map(|c| format!("?after={c}")).unwrap_or_default();
        let page = api_get(
            project,
            server,
            &format!("/api/v1/projects/{uuid}/events/{query}"),
        );
        events.extend(page["events"].as_array().expect("events").iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return events,
        }
    }
}

fn first_lane_changes(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "WPStatusChanged")
        .filter(|e| e["payload"]["reason"] == FIRST_STATUS_REASON)
        .collect()
}

#[test]
fn board_json_is_the_servers_board_with_every_work_package_in_its_lane() {
    let server = server();
    let project = synced(&server);
    let out = project.run(&["board", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    let uuid = project_uuid(&project);
    let served = api_get(
        &project,
        &server,
        &format!("/api/v1/projects/{uuid}/board/"),
    );
    assert_eq!(printed, served, "board --json is the server's document");

    assert_eq!(printed["project_uuid"], uuid.as_str());
    assert_eq!(
        printed["counts"],
        serde_json::json!({"planned": 2, "doing": 2, "for_review": 1, "done": 1})
    );
    let features = printed["features"].as_array().expect("features");
    assert_eq!(features.len(), 2, "{printed:#}");
    for (feature, wp, title, _, lane, deps) in WORK_PACKAGES {
        let card = features
            .iter()
            .find(|f| f["feature_slug"] == feature)
            .and_then(|f| f["work_packages"].as_array())
            .and_then(|cards| cards.iter().find(|c| c["wp_id"] == wp))
            .unwrap_or_else(|| panic!("{feature}/{wp} is on the board: {printed:#}"));
        assert_eq!(card["lane"], lane, "{feature}/{wp}: {card}");
        assert_eq!(card["title"], title, "{feature}/{wp}");
        assert_eq!(
            card["dependencies"],
            serde_json::json!(deps),
            "{feature}/{wp}"
        );
    }
}

#[test]
fn human_board_lists_lanes_and_cards_without_colour_off_a_terminal() {
    let server = server();
    let project = synced(&server);
    let text = ok(&project, &["board"]);
    assert!(!text.contains('\x1b'), "no ANSI codes when piped:\n{text}");
    let heading = |name: &str| {
        text.find(&format!("\n{name} ("))
            .unwrap_or_else(|| panic!("lane {name} listed:\n{text}"))
    };
    let lanes = [
        heading("Planned"),
        heading("Doing"),
        heading("For review"),
        heading("Done"),
    ];
    assert!(lanes.is_sorted(), "lanes in workflow order:\n{text}");
    assert!(
        text.contains("Planned (2)") && text.contains("Doing (2)"),
        "{text}"
    );
    for (feature, wp, title, _, lane, _) in WORK_PACKAGES {
        let line = text
            .lines()
            .find(|l| l.contains(title))
            .unwrap_or_else(|| panic!("{feature}/{wp} listed:\n{text}"));
        assert!(line.trim_start().starts_with(wp), "{line}");
        assert!(
            line.contains(feature),
            "several features: each card names its own: {line}"
        );
        let at = text.find(line).expect("line in text");
        let section = lanes
            .iter()
            .rposition(|start| *start < at)
            .expect("under a lane");
        let expected = ["planned", "doing", "for_review", "done"]
            .iter()
            .position(|l| *l == lane)
            .expect("a sync lane");
        assert_eq!(section, expected, "{feature}/{wp} under {lane}:\n{text}");
    }
}

#[test]
fn board_without_credentials_is_not_authenticated() {
    let project = project();
    ok(&project, &["agent", "tasks", "publish"]);
    let out = project.run(&["board"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains("spec-kitty auth login"),
        "{}",
        describe(&out)
    );
}

#[test]
fn board_with_the_server_stopped_is_unreachable() {
    let mut server = server();
    let project = synced(&server);
    server.stop();
    let out = project.run(&["board"]);
    assert_eq!(code(&out), 7, "{}", describe(&out));
    assert!(
        stderr(&out).contains("Server unreachable"),
        "{}",
        describe(&out)
    );
}

#[test]
fn board_of_a_user_removed_from_the_team_is_permission_denied() {
    let server = server();
    let project = synced(&server);
    server.remove_member("acme", "alice");
    let out = project.run(&["board"]);
    assert_eq!(code(&out), 6, "{}", describe(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        describe(&out)
    );
}

#[test]
fn an_expired_access_token_is_refreshed_transparently() {
    let server = server();
    let project = synced(&server);
    let before = server.refreshes();
    expire_access(&project);
    let out = project.run(&["board", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(server.refreshes(), before + 1, "one refresh");
    let board: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(board["counts"]["done"], 1, "{board:#}");
}

/// A real server cannot refuse a token it has just issued by refresh:
/// the fake one does, and records where the token went.
#[test]
fn a_401_after_one_refresh_is_authentication_failed_and_tokens_go_only_to_their_issuer() {
    let fake = FakeServer::start(|request| match request.path.as_str() {
        "/api/v1/token/refresh/" => Canned::new(
            200,
            r#"{"access": "fresh-access", "refresh": "fresh-refresh", "access_lifetime": 900, "refresh_lifetime": 604800, "team_slug": "acme"}"#,
        ),
        _ => Canned::new(401, r#"{"error": "Token expired or invalid"}"#),
    });
    let project = project();
    ok(&project, &["agent", "tasks", "publish"]);
    // The configured server is another one: the board still asks the issuer.
    ok(&project, &["sync", "server", "http://127.0.0.1:9"]);
    let later = |days: i64| {
        spec_kitty_protocol::timestamp::format(
            time::OffsetDateTime::now_utc() + time::Duration::days(days),
        )
    };
    std::fs::write(
        project.client_dir().join("credentials"),
        format!(
            "[tokens]\naccess = \"stale-access\"\nrefresh = \"good-refresh\"\naccess_expires_at = \"{}\"\nrefresh_expires_at = \"{}\"\n\n[user]\nusername = \"alice\"\nteam_slug = \"acme\"\n\n[server]\nurl = \"{}\"\n",
            later(1),
            later(7),
            fake.url
        ),
    )
    .expect("write credentials");

    let out = project.run(&["board"]);
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert!(
        stderr(&out).contains("Authentication failed"),
        "{}",
        describe(&out)
    );
    let seen: Vec<(String, Option<String>)> = fake
        .requests()
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.header("authorization").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".to_string(), Some("Bearer stale-access".to_string())),
            ("POST".to_string(), None),
            ("GET".to_string(), Some("Bearer fresh-access".to_string())),
        ],
        "one refresh, one retry"
    );
    let path = format!("/api/v1/projects/{}/board/", project_uuid(&project));
    assert_eq!(fake.requests()[0].path, path);
}

#[test]
fn another_teams_project_is_not_found_and_says_what_to_run() {
    let server = server();
    let theirs = project();
    login(&theirs, &server, "bob");
    ok(&theirs, &["agent", "tasks", "publish"]);
    ok(&theirs, &["sync", "now"]);

    let ours = synced(&server);
    let out = ours.run(&["board", "--project", &project_uuid(&theirs)]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("not on"), "{err}");
    assert!(
        err.contains("spec-kitty agent tasks publish") && err.contains("spec-kitty sync now"),
        "{err}"
    );
}

#[test]
fn bad_project_arguments_and_unpublished_projects_are_explained() {
    let project = project();
    let out = project.run(&["board", "--project", "not-a-uuid"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("--project must be a project UUID"),
        "{}",
        describe(&out)
    );

    let out = project.run(&["board"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("never published"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("spec-kitty agent tasks publish"),
        "{}",
        describe(&out)
    );
    assert!(!project.config_path().exists(), "board creates no identity");
}

#[test]
fn publishing_twice_sends_titles_again_but_never_a_second_first_lane_change() {
    let server = server();
    let project = synced(&server);
    let out = ok(
        &project,
        &["agent", "tasks", "publish", "--feature", ALPHA, "--json"],
    );
    let printed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(
        printed["queued"],
        serde_json::json!({"features": 1, "work_packages": 4, "first_lane_changes": 0})
    );
    let queued = project.all_events();
    assert_eq!(queued.len(), 5, "{queued:#?}");
    assert!(first_lane_changes(&queued).is_empty());
    ok(&project, &["sync", "now"]);

    let stored = feed(&project, &server);
    let firsts = first_lane_changes(&stored);
    assert_eq!(
        firsts.len(),
        4,
        "one first lane change per moved package: {firsts:#?}"
    );
    for first in &firsts {
        assert_eq!(first["payload"]["from_lane"], "planned", "{first}");
    }
    let created = stored
        .iter()
        .filter(|e| e["event_type"] == "WPCreated")
        .count();
    assert_eq!(created, 6 + 4, "titles are sent again");
}

#[test]
fn move_task_on_an_unpublished_feature_publishes_it_first() {
    let project = project();
    let out = project.move_task("WP01", "claimed", &["--feature", ALPHA]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("Published 001-alpha"),
        "{}",
        describe(&out)
    );
    let events = project.all_events();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let kind = e["event_type"].as_str().expect("type");
            (kind, e["aggregate_id"].as_str().expect("aggregate"))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("FeatureCreated", ALPHA),
            ("WPCreated", "001-alpha/WP01"),
            ("WPCreated", "001-alpha/WP02"),
            ("WPCreated", "001-alpha/WP03"),
            ("WPCreated", "001-alpha/WP04"),
            ("WPStatusChanged", "001-alpha/WP02"),
            ("WPStatusChanged", "001-alpha/WP03"),
            ("WPStatusChanged", "001-alpha/WP04"),
            ("WPStatusChanged", "001-alpha/WP01"),
        ],
        "the feature first, then the move"
    );
    let clocks: Vec<u64> = events
        .iter()
        .map(|e| e["lamport_clock"].as_u64().expect("clock"))
        .collect();
    assert!(clocks.is_sorted_by(|a, b| a < b), "{clocks:?}");
    let feature = &events[0]["payload"];
    assert_eq!(
        *feature,
        serde_json::json!({"feature_slug": ALPHA, "feature_number": "001", "target_branch": "main", "wp_count": 4})
    );
    let moved = events.last().expect("the move");
    assert_eq!(moved["payload"]["from_lane"], "planned");
    assert_eq!(moved["payload"]["to_lane"], "doing");
    assert_eq!(
        moved["payload"]["reason"],
        Value::Null,
        "a move, not a first lane change"
    );

    // Published once: the next move queues only itself, and a publish
    // queues no first lane change for the moved package.
    project.move_ok("WP02", "for_review", &["--feature", ALPHA]);
    assert_eq!(project.all_events().len(), events.len() + 1);
    ok(&project, &["agent", "tasks", "publish", "--feature", ALPHA]);
    assert_eq!(first_lane_changes(&project.all_events()).len(), 3);
}

#[test]
fn offline_publish_waits_in_the_queue_and_a_later_sync_delivers_it() {
    let server = server();
    let project = project();
    let printed = ok(
        &project,
        &["agent", "tasks", "publish", "--feature", "beta"],
    );
    assert!(
        printed.starts_with("Queued 1 feature, 2 work packages, 1 first lane change."),
        "{printed}"
    );
    let queued = project.all_events();
    assert_eq!(queued.len(), 4);
    assert!(
        queued.iter().all(|e| e.get("team_slug").is_none()),
        "logged out: no team"
    );
    for event in &queued {
        let errors = spec_kitty_protocol::validate_event(event);
        assert!(errors.is_empty(), "{event}: {errors:?}");
    }

    login(&project, &server, "alice");
    ok(&project, &["sync", "now"]);
    assert!(project.all_events().is_empty(), "delivered");
    let board: Value =
        serde_json::from_str(&ok(&project, &["board", "--json"])).expect("board JSON");
    assert_eq!(board["features"][0]["feature_slug"], BETA, "{board:#}");
    assert_eq!(board["features"][0]["work_packages"][0]["lane"], "doing");
    assert_eq!(
        board["features"][0]["work_packages"][0]["raw_lane"],
        "doing"
    );
}

#[test]
fn a_bad_dependency_names_the_file_and_queues_nothing() {
    let project = project();
    let path = project.write_wp(
        ALPHA,
        "WP05-bad.md",
        &wp_text("WP05", "Bad", "planned").replace("dependencies: []", "dependencies: [\"setup\"]"),
    );
    let out = project.run(&["agent", "tasks", "publish"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("WP05-bad.md") && err.contains("'setup'"),
        "{err}"
    );
    assert!(project.all_events().is_empty(), "nothing queued");

    // move-task still moves, and says why the feature was not published.
    let out = project.move_task("WP01", "claimed", &["--feature", ALPHA]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("not published"), "{}", describe(&out));
    assert_eq!(project.all_events().len(), 1, "only the move");
    drop(path);
}

#[test]
fn help_texts_describe_every_argument_with_examples() {
    let project = Project::new();
    let board = ok(&project, &["board", "--help"]);
    for needle in [
        "--project",
        "--json",
        "Examples:",
        "Exit codes:",
        "NO_COLOR",
    ] {
        assert!(
            board.contains(needle),
            "board --help lacks {needle}:\n{board}"
        );
    }
    let publish = ok(&project, &["agent", "tasks", "publish", "--help"]);
    for needle in [
        "--feature",
        "--json",
        "Examples:",
        "FeatureCreated",
        "WPCreated",
    ] {
        assert!(
            publish.contains(needle),
            "publish --help lacks {needle}:\n{publish}"
        );
    }
}

#[test]
fn color_always_and_never_override_the_terminal_test() {
    let server = server();
    let project = synced(&server);
    let text = ok(&project, &["board", "--color", "always"]);
    assert!(text.contains('\x1b'), "coloured into a pipe:\n{text}");
    let text = ok(&project, &["--color", "never", "board"]);
    assert!(!text.contains('\x1b'), "{text}");
}
