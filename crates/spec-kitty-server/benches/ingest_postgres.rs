//! Ingest throughput of the real server on PostgreSQL, next to a raw
//! PostgreSQL baseline in the same run.
//!
//! `cargo bench -p spec-kitty-server --bench ingest_postgres`
//!
//! PostgreSQL is named by `SPEC_KITTY_TEST_DATABASE_URL` (an admin URL;
//! default `postgres://postgres@127.0.0.1:5432/postgres`). Every measured
//! phase gets a fresh database (`sk_bench_<ulid>`), dropped afterwards.
//!
//! 1. Builds 100,000 valid `WPStatusChanged` events and pre-compresses them
//!    into 1000-event gzip batches (the same events as `benches/ingest.rs`).
//! 2. Raw baseline: the same rows inserted straight into the `events` table
//!    of a database migrated by the real store, 1000 per transaction.
//! 3. HTTP ingest on 127.0.0.1, one instance: one sender, then four
//!    concurrent senders with 25,000 events each.
//! 4. Two instances on one database, the four senders split two and two.
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a quick
//! smoke run over 4,000 events, which notes and skips an unreachable
//! PostgreSQL instead of failing.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};
use sqlx::Connection;

const ENV: &str = "SPEC_KITTY_TEST_DATABASE_URL";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The raw baseline's insert: one multi-row `INSERT ... SELECT FROM UNNEST`
/// of column arrays per 1000-row transaction, the same shape as the store's
/// own batch insert. It is the fastest plain way to insert many rows with
/// sqlx (one statement and one round trip per batch, no per-row binds);
/// only `COPY` is faster, and the store does not use it. Unlike the store
/// it needs no `ON CONFLICT`/`RETURNING` (the ids are known to be new).
const RAW_INSERT_SQL: &str = "INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at)
     SELECT e.event_id, 'WPStatusChanged', e.aggregate_id, e.project_id, 1, 1, e.node_id, e.lamport, e.ts, e.lane, e.body, $8
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $9::text[])
          AS e(event_id, aggregate_id, project_id, node_id, lamport, ts, lane, body)";

/// One event, as JSON and as the row the server would store.
#[path = "../tests/pg_support/mod.rs"]
mod pg_support;
mod support;

use support::{
    BATCH, BoxResult, PASSWORD, Prepared, SENDERS, agent, ingest_load, login, send_concurrently,
};

fn runtime() -> BoxResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn admin_connection(admin_url: &str) -> BoxResult<sqlx::PgConnection> {
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::PgConnection::connect(admin_url),
    )
    .await
    .map_err(|_| "timed out connecting to PostgreSQL")??;
    Ok(conn)
}

/// Whether PostgreSQL answers at the admin URL; the error says why not.
fn reachable(admin_url: &str) -> BoxResult<()> {
    runtime()?.block_on(async {
        let conn = admin_connection(admin_url).await?;
        conn.close().await?;
        Ok(())
    })
}

/// A fresh database for one phase, dropped (with `FORCE`) on drop.
struct BenchDb {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(admin_url: &str) -> BoxResult<BenchDb> {
        let name = format!("sk_bench_{}", ulid::Ulid::new().to_string().to_lowercase());
        runtime()?.block_on(async {
            let mut conn = admin_connection(admin_url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            BoxResult::Ok(())
        })?;
        Ok(BenchDb {
            admin_url: admin_url.to_string(),
            url: pg_support::with_database(admin_url, &name),
            name,
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let dropped = runtime().and_then(|rt| {
            rt.block_on(async {
                let mut conn = admin_connection(&self.admin_url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                BoxResult::Ok(())
            })
        });
        if let Err(e) = dropped {
            eprintln!("note: could not drop bench database {}: {e}", self.name);
        }
    }
}

/// The same rows straight into PostgreSQL, 1000 per transaction, on a
/// database migrated by the real store.
fn raw_baseline(admin_url: &str, events: &[Prepared]) -> BoxResult<f64> {
    let bench_db = BenchDb::create(admin_url)?;
    let rt = runtime()?;
    rt.block_on(async {
        // Migrates with the server's own schema; the pool is closed again.
        drop(spec_kitty_server::store::open(&bench_db.url).await?);
        let mut conn = sqlx::PgConnection::connect(&bench_db.url).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let started = Instant::now();
        for chunk in events.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|e| e.event_id.as_str()).collect();
            let aggregates: Vec<&str> = chunk.iter().map(|e| e.aggregate_id.as_str()).collect();
            let projects: Vec<i64> = chunk.iter().map(|e| e.project as i64 + 1).collect();
            let nodes: Vec<&str> = chunk.iter().map(|e| e.node_id.as_str()).collect();
            let lamports: Vec<i64> = chunk.iter().map(|e| e.lamport).collect();
            let stamps: Vec<&str> = chunk.iter().map(|e| e.timestamp.as_str()).collect();
            let lanes: Vec<&str> = chunk.iter().map(|e| e.lane).collect();
            let bodies: Vec<&str> = chunk.iter().map(|e| e.body.as_str()).collect();
            let mut tx = conn.begin().await?;
            let inserted = sqlx::query(RAW_INSERT_SQL)
                .bind(&ids)
                .bind(&aggregates)
                .bind(&projects)
                .bind(&nodes)
                .bind(&lamports)
                .bind(&stamps)
                .bind(&lanes)
                .bind(now)
                .bind(&bodies)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted != chunk.len() as u64 {
                return Err(format!("raw insert stored {inserted} of {} rows", chunk.len()).into());
            }
            tx.commit().await?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        if stored != events.len() as i64 {
            return Err(format!("raw baseline stored {stored} of {} rows", events.len()).into());
        }
        Ok(events.len() as f64 / elapsed)
    })
}

/// `instances` servers on one fresh database, with team `acme` and
/// `SENDERS` users logged in; sender `i` talks to instance `i % instances`.
struct Cluster {
    servers: Vec<BackgroundServer>,
    /// (base URL, access token) per sender.
    senders: Vec<(String, String)>,
    _dirs: Vec<tempfile::TempDir>,
    _db: BenchDb,
}

impl Cluster {
    fn start(admin_url: &str, instances: usize, senders: usize) -> BoxResult<Cluster> {
        let bench_db = BenchDb::create(admin_url)?;
        let mut servers = Vec::with_capacity(instances);
        let mut dirs = Vec::with_capacity(instances);
        for _ in 0..instances {
            let dir = tempfile::tempdir()?;
            let mut config = ServerConfig::for_data_dir(dir.path());
            config.storage.database_url = bench_db.url.clone();
            servers.push(BackgroundServer::start(&config)?);
            dirs.push(dir);
        }
        let first = servers.first().ok_or("no instance")?;
        first.block_on(admin::add_team(&first.store, "acme"))?;
        let client = agent();
        let mut logged_in = Vec::with_capacity(senders);
        for i in 0..senders {
            let username = format!("user-{i}");
            first.block_on(admin::add_user(&first.store, &username, PASSWORD, "acme"))?;
            let base = servers[i % instances].url.clone();
            let token = login(&client, &base, &username)?;
            logged_in.push((base, token));
        }
        Ok(Cluster {
            servers,
            senders: logged_in,
            _dirs: dirs,
            _db: bench_db,
        })
    }

    /// Every instance sees exactly `expected` events (one shared database).
    fn check_stored(&self, expected: usize) -> BoxResult<()> {
        for (i, server) in self.servers.iter().enumerate() {
            let stored = server.block_on(server.store.event_count())?;
            if stored != expected as i64 {
                return Err(format!(
                    "instance {i}: the server stored {stored} of {expected} events"
                )
                .into());
            }
        }
        Ok(())
    }
}

/// Splits the batches evenly over the cluster's senders, sends them
/// concurrently and returns events per second.
fn ingest(cluster: &Cluster, batches: &[Vec<u8>], events: usize) -> BoxResult<f64> {
    let (successes, elapsed) = send_concurrently(&cluster.senders, batches)?;
    if successes != events {
        return Err(format!("{successes} of {events} events answered success").into());
    }
    cluster.check_stored(events)?;
    Ok(events as f64 / elapsed)
}

fn http_phase(
    admin_url: &str,
    instances: usize,
    senders: usize,
    batches: &[Vec<u8>],
    events: usize,
) -> BoxResult<f64> {
    let cluster = Cluster::start(admin_url, instances, senders)?;
    ingest(&cluster, batches, events)
}

fn run(full: bool) -> BoxResult<()> {
    let count = if full { 100_000 } else { 4_000 };
    let admin_url = std::env::var(ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string());

    let at = format!(
        ", PostgreSQL at {}",
        spec_kitty_server::store::postgres::redact(&admin_url)
    );
    let (events, batches) = ingest_load("ingest_postgres", count, full, &at)?;

    let raw = raw_baseline(&admin_url, &events)?;
    let one = http_phase(&admin_url, 1, 1, &batches, count)?;
    let four = http_phase(&admin_url, 1, SENDERS, &batches, count)?;
    let two_instances = http_phase(&admin_url, 2, SENDERS, &batches, count)?;

    println!();
    println!("| path                                         |   events/s | % of raw |");
    println!("|----------------------------------------------|-----------:|---------:|");
    let row = |name: &str, rate: f64| {
        println!(
            "| {name:<44} | {rate:>10.0} | {:>7.1}% |",
            rate / raw * 100.0
        );
    };
    row("raw PostgreSQL UNNEST INSERT, 1000 rows/tx", raw);
    row("HTTP ingest, 1 sender, 1 instance", one);
    row(&format!("HTTP ingest, {SENDERS} senders, 1 instance"), four);
    row(
        &format!("HTTP ingest, {SENDERS} senders, 2 instances"),
        two_instances,
    );
    Ok(())
}

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    let admin_url = std::env::var(ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string());
    if let Err(e) = reachable(&admin_url) {
        let where_ = spec_kitty_server::store::postgres::redact(&admin_url);
        if full {
            eprintln!("ingest_postgres benchmark: PostgreSQL at {where_} is unreachable: {e}");
            return ExitCode::FAILURE;
        }
        println!(
            "ingest_postgres smoke run skipped: PostgreSQL at {where_} is unreachable ({e}); set {ENV} to run it"
        );
        return ExitCode::SUCCESS;
    }
    match run(full) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_postgres benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
