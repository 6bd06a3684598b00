//! A fresh PostgreSQL database per test, when the run names a server.
//!
//! Tests that need PostgreSQL read `SPEC_KITTY_TEST_DATABASE_URL` (an admin
//! URL such as `postgres://postgres@127.0.0.1:5432/postgres`). Without it
//! they run on SQLite only; CI always sets it (see `scripts/test`).

#![allow(dead_code)]

use sqlx::Connection;

/// The environment variable naming the PostgreSQL server for tests.
pub const ENV: &str = "SPEC_KITTY_TEST_DATABASE_URL";

/// A database created for one test and dropped after it.
pub struct TempDb {
    admin_url: String,
    name: String,
    pub url: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

/// Replaces the database name (the last path segment) of a URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

impl TempDb {
    /// A new empty database, or `None` when no server is configured.
    pub fn create() -> Option<TempDb> {
        let admin_url = std::env::var(ENV).ok().filter(|u| !u.is_empty())?;
        let name = format!("sk_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        runtime().block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("{ENV} is set but PostgreSQL is unreachable: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
        });
        let url = with_database(&admin_url, &name);
        Some(TempDb {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Best effort: a leftover test database is harmless.
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            })
        })
        .join();
    }
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
