//! Databases made by earlier servers open with this one and keep their
//! data: SQLite kept its version in `PRAGMA user_version` (it still does);
//! PostgreSQL kept it in a table `spec_kitty_schema`, which the server
//! adopts into sqlx's `_sqlx_migrations` without running migration 1 again.

mod pg_support;

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
    assert_eq!(version, 2, "migrated to the latest schema (the board)");
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
        [(1, true), (2, true)],
        "1 adopted, 2 (the board) applied"
    );
}

#[test]
fn a_postgres_database_from_a_newer_server_is_refused() {
    let Some(db) = pg_support::TempDb::create() else {
        return;
    };
    let rt = runtime();
    rt.block_on(legacy_postgres(&db.url, 3));
    match rt.block_on(store::open(&db.url)) {
        Err(StoreError::SchemaTooNew { found: 3, known: 2 }) => {}
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a newer schema opened"),
    }
}
