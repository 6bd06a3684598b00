//! Databases made by earlier servers open with this one and keep their
//! data: SQLite kept its version in `PRAGMA user_version` (it still does);
//! PostgreSQL kept it in a table `spec_kitty_schema`, which the server
//! adopts into sqlx's `_sqlx_migrations` without running migration 1 again.

use crate::pg_support;

use spec_kitty_server::store::{self, StoreError};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn an_existing_sqlite_database_opens_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(include_str!("../migrations/sqlite/0001_initial.sql"))
            .expect("old schema");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute(
            "INSERT INTO teams (slug, created_at) VALUES ('legacy', 1)",
            [],
        )
        .expect("team");
    }
    let rt = runtime();
    let url = format!("sqlite://{}", path.display());
    for _ in 0..2 {
        let store = rt.block_on(store::open(&url)).expect("opens");
        let teams = rt.block_on(store.list_teams()).expect("teams");
        assert_eq!(
            teams.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
            ["legacy"]
        );
    }
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 6, "migrated to the latest schema (sessions)");
}

/// Makes a database as the server before sqlx's migrator left it.
async fn legacy_postgres(url: &str, version: i64) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(include_str!("../migrations/postgres/0001_initial.sql"))
        .execute(&mut conn)
        .await
        .expect("old schema");
    sqlx::raw_sql(
        "CREATE TABLE spec_kitty_schema (version BIGINT NOT NULL);
         INSERT INTO teams (slug, created_at) VALUES ('legacy', 1);",
    )
    .execute(&mut conn)
    .await
    .expect("old bookkeeping");
    for v in 1..=version {
        sqlx::query("INSERT INTO spec_kitty_schema (version) VALUES ($1)")
            .bind(v)
            .execute(&mut conn)
            .await
            .expect("version");
    }
}

#[test]
fn an_existing_postgres_database_is_adopted_and_keeps_its_data() {
    let Some(db) = pg_support::TempDb::create() else {
        return;
    };
    let rt = runtime();
    rt.block_on(legacy_postgres(&db.url, 1));
    for _ in 0..2 {
        let store = rt.block_on(store::open(&db.url)).expect("opens");
        let teams = rt.block_on(store.list_teams()).expect("teams");
        assert_eq!(
            teams.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
            ["legacy"]
        );
    }
    let applied: Vec<(i64, bool)> = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("applied")
    });
    assert_eq!(
        applied,
        [
            (1, true),
            (2, true),
            (3, true),
            (4, true),
            (5, true),
            (6, true)
        ],
        "1 adopted, then 2 (the board) to 6 (sessions) applied"
    );
}

#[test]
fn a_postgres_database_from_a_newer_server_is_refused() {
    let Some(db) = pg_support::TempDb::create() else {
        return;
    };
    let rt = runtime();
    rt.block_on(legacy_postgres(&db.url, 7));
    match rt.block_on(store::open(&db.url)) {
        Err(StoreError::SchemaTooNew { found: 7, known: 6 }) => {}
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a newer schema opened"),
    }
}

#[test]
fn a_server_started_on_a_database_from_before_the_board_builds_the_board() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let project = "550e8400-e29b-41d4-a716-446655440000";
    let event = serde_json::json!({
        "event_id": "01HV5Z3K8Y6Q2W9E4R7T1N0M3P", "event_type": "WPStatusChanged",
        "aggregate_id": "001-x/WP01",
        "payload": {"feature_slug": "001-x", "wp_id": "WP01", "from_lane": "planned",
                    "to_lane": "doing", "actor": "alice"},
        "timestamp": "2026-02-12T10:15:00+00:00", "node_id": "n1", "lamport_clock": 3,
        "project_uuid": project, "project_slug": "old"
    });
    {
        let conn = rusqlite::Connection::open(data.join("spec-kitty.db")).expect("open");
        conn.execute_batch(include_str!("../migrations/sqlite/0001_initial.sql"))
            .expect("old schema");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute_batch(&format!(
            "INSERT INTO teams (id, slug, created_at) VALUES (1, 'acme', 1);
             INSERT INTO projects (id, uuid, slug, team_id, created_at) VALUES (1, '{project}', 'old', 1, 1);
             INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at)
             VALUES ('01HV5Z3K8Y6Q2W9E4R7T1N0M3P', 'WPStatusChanged', '001-x/WP01', 1, 1, 1, 'n1', 3, '2026-02-12T10:15:00+00:00', 'doing', '{}', 1);",
            event.to_string().replace('\'', "''")
        ))
        .expect("old rows");
    }
    let server = spec_kitty_server::BackgroundServer::start(
        &spec_kitty_server::ServerConfig::for_data_dir(&data),
    )
    .expect("server starts");
    let found = server
        .block_on(server.store.team_project("acme", project))
        .expect("lookup")
        .expect("the old project, still acme's");
    let board = server
        .block_on(server.store.board(&found))
        .expect("board")
        .into_document();
    let cards: Vec<(&str, &str)> = board
        .features
        .iter()
        .flat_map(|f| f.work_packages.iter())
        .map(|c| (c.wp_id.as_str(), c.lane.as_str()))
        .collect();
    assert_eq!(cards, [("WP01", "doing")], "{board:?}");
    assert_eq!(board.cursor, "c1.1", "old events are numbered");
}

/// A version-2 SQLite database with `users` rows (and their team).
fn sqlite_v2_with_users(path: &std::path::Path, users: &[&str]) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(include_str!("../migrations/sqlite/0001_initial.sql"))
        .expect("schema 1");
    conn.execute_batch(include_str!("../migrations/sqlite/0002_board.sql"))
        .expect("schema 2");
    conn.pragma_update(None, "user_version", 2)
        .expect("version");
    conn.execute(
        "INSERT INTO teams (id, slug, created_at) VALUES (1, 'acme', 1)",
        [],
    )
    .expect("team");
    for name in users {
        conn.execute(
            "INSERT INTO users (username, password_hash, team_id, created_at) VALUES (?1, 'x', 1, 1)",
            [name],
        )
        .expect("user");
    }
}

#[test]
fn sqlite_migration_3_folds_usernames_to_lower_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.db");
    sqlite_v2_with_users(&path, &["Alice", "bob"]);
    let rt = runtime();
    let store = rt
        .block_on(store::open(&format!("sqlite://{}", path.display())))
        .expect("opens");
    let found = rt
        .block_on(store.find_user("ALICE"))
        .expect("lookup")
        .expect("found case-insensitively");
    assert_eq!(found.username, "alice");
}

#[test]
fn sqlite_migration_3_refuses_usernames_that_differ_only_in_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.db");
    sqlite_v2_with_users(&path, &["alice", "Alice"]);
    let rt = runtime();
    let message = match rt.block_on(store::open(&format!("sqlite://{}", path.display()))) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened despite the clash"),
    };
    assert!(
        message.contains("alice (id 1), Alice (id 2)"),
        "names both: {message}"
    );
    assert!(message.contains("Rename all but one"), "{message}");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2, "nothing migrated");
}

#[test]
fn postgres_migration_3_refuses_usernames_that_differ_only_in_case() {
    let Some(db) = pg_support::TempDb::create() else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        legacy_postgres(&db.url, 1).await;
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::raw_sql(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'x', 1), ('Alice', 'x', 1);",
        )
        .execute(&mut conn)
        .await
        .expect("users");
    });
    let message = match rt.block_on(store::open(&db.url)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened despite the clash"),
    };
    assert!(message.contains("alice (id 1), Alice (id 2)"), "{message}");
}
