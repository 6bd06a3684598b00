//! Connecting to PostgreSQL: pool settings, retrying an unreachable
//! database at start-up, and keeping passwords out of messages.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{PostgresStore, schema};
use crate::store::{StoreError, StoreResult};

/// How the pool connects.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// Hides the password of a database URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects (retrying until `settings.connect_timeout` while the
    /// database is unreachable) and migrates.
    pub async fn open(url: &str, settings: PoolSettings) -> StoreResult<PostgresStore> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Open {
            path: redact(url),
            reason: e.to_string(),
        })?;
        let deadline = tokio::time::Instant::now() + settings.connect_timeout;
        let mut wait = Duration::from_millis(250);
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(database = %redact(url), error = %e, "database unreachable; retrying in {} ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(StoreError::Open {
                        path: redact(url),
                        reason: format!(
                            "{e} (gave up after {} s; check the URL and that PostgreSQL is running)",
                            settings.connect_timeout.as_secs()
                        ),
                    });
                }
            }
        };
        schema::migrate(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:secret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
