//! The PostgreSQL schema: versioned `.sql` files under
//! `migrations/postgres/`, applied by sqlx's [`Migrator`] (which records
//! them in `_sqlx_migrations` and holds an advisory lock while it runs, so
//! instances starting together migrate once).
//!
//! Databases made before the move to sqlx kept their version in a table
//! `spec_kitty_schema`. [`adopt_legacy`] records those versions as applied
//! (without running them again) the first time such a database is opened.

use std::borrow::Cow;

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{PgPool, SqlSafeStr};

use crate::store::{StoreError, StoreResult};

/// Serializes the adoption of a legacy database across instances.
const ADOPTION_LOCK: i64 = 0x5350_4b54_5359_4e43; // "SPKTSYNC"

/// The migrations, one per version, in order. Never edit a file that has
/// shipped (its checksum is recorded): add the next one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "board",
        include_str!("../../../migrations/postgres/0002_board.sql"),
    ),
    (
        3,
        "usernames",
        include_str!("../../../migrations/postgres/0003_usernames.sql"),
    ),
    (
        4,
        "access_tokens",
        include_str!("../../../migrations/postgres/0004_access_tokens.sql"),
    ),
    (
        5,
        "device_codes",
        include_str!("../../../migrations/postgres/0005_device_codes.sql"),
    ),
    (
        6,
        "sessions",
        include_str!("../../../migrations/postgres/0006_sessions.sql"),
    ),
];

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

fn known() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date, adopting a legacy database first.
pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let migrator = migrator();
    adopt_legacy(pool, &migrator).await?;
    migrator.run(pool).await.map_err(|e| match e {
        MigrateError::VersionMissing(found) => StoreError::SchemaTooNew {
            found,
            known: known(),
        },
        other => StoreError::Migrate(other),
    })
}

/// Marks the versions a legacy `spec_kitty_schema` table records as
/// applied, once, under an advisory lock (the session's, released before
/// the connection goes back to the pool).
async fn adopt_legacy(pool: &PgPool, migrator: &Migrator) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(ADOPTION_LOCK)
        .execute(&mut *conn)
        .await?;
    let adopted = adopt_locked(&mut conn, migrator).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ADOPTION_LOCK)
        .execute(&mut *conn)
        .await;
    adopted?;
    unlocked?;
    Ok(())
}

async fn adopt_locked(conn: &mut sqlx::PgConnection, migrator: &Migrator) -> StoreResult<()> {
    let (legacy, adopted): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('spec_kitty_schema') IS NOT NULL, to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !legacy || adopted {
        return Ok(());
    }
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM spec_kitty_schema")
        .fetch_one(&mut *conn)
        .await?;
    let version = version.unwrap_or(0);
    if version > known() {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known: known(),
        });
    }
    if version > 0 {
        tracing::info!(version, "recording the legacy schema version for sqlx");
        migrator.skip(&mut *conn, Some(version)).await?;
    }
    Ok(())
}
