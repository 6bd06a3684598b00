//! Prometheus metrics (`--metrics-listen`): what the server counts, and the
//! listener of their own that serves them, never the public one.
//!
//! The crate is `prometheus-client`, the Prometheus project's own client
//! for Rust, chosen over `metrics` + `metrics-exporter-prometheus` because:
//!
//! - its registry is a value each server owns, where `metrics` records into
//!   one process-global recorder: the test binary runs dozens of servers in
//!   one process, and their counts would mix;
//! - label sets are structs, so the label names are fixed at compile time
//!   and every value is built here from a bounded set (route templates,
//!   known methods, status codes, outcomes), never from what a client sent;
//! - it brings no HTTP server, runtime or global state of its own (two
//!   small crates besides: its derive macro and `dtoa`), and writes the
//!   OpenMetrics text Prometheus scrapes.
//!
//! Gauges of state kept elsewhere (open connections, database pool) are
//! read at scrape time from their owners rather than counted twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use spec_kitty_protocol::{EventResult, EventStatus};
use tokio::task::JoinHandle;

use crate::config::ConnectionLimits;
use crate::http::conn::{Guard, OpenConnections};
use crate::http::serve::ServeError;
use crate::store::Store;

/// The route label of a request no route matched: one label for every
/// unknown path, so requesting random URLs cannot grow the metrics.
pub const UNMATCHED: &str = "unmatched";

/// Connections the metrics listener keeps open at most: one Prometheus (or
/// two) scrapes it; more only costs the server.
pub const METRICS_MAX_CONNECTIONS: usize = 16;

/// Latency buckets in seconds, from a cached page (about a millisecond) to
/// a large batch or a log-in queued behind others (seconds).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The server's metrics; clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    events: Family<OutcomeLabels, Counter>,
    login_failures: Counter,
    login_throttled: Counter,
    open_connections: Gauge,
    pool: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("spec_kitty");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by route template",
            latency.clone(),
        );
        let events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "events_ingested",
            "Events received in batches, by outcome: success, duplicate or rejected",
            events.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "login_failures",
            "Log-ins refused for a wrong username or password (API and web page)",
            login_failures.clone(),
        );
        let login_throttled = Counter::default();
        registry.register(
            "login_throttled",
            "Log-ins refused unchecked because of too many recent failures",
            login_throttled.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Connections open on the public listener",
            open_connections.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections by state, in_use or idle (SQLite: reader handles; PostgreSQL: the connection pool)",
            pool.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Database connections the pool may open at most",
            pool_max.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                events,
                login_failures,
                login_throttled,
                open_connections,
                pool,
                pool_max,
            }),
        }
    }

    /// Counts one answered request.
    fn request(&self, route: String, method: &Method, status: StatusCode, elapsed: Duration) {
        let inner = &self.inner;
        inner
            .latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        inner
            .requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status: status.as_u16(),
            })
            .inc();
    }

    /// Counts the outcome of each event of an answered batch.
    pub fn events_ingested(&self, results: &[EventResult]) {
        let (mut success, mut duplicate, mut rejected) = (0, 0, 0);
        for result in results {
            match result.status {
                EventStatus::Success => success += 1,
                EventStatus::Duplicate => duplicate += 1,
                EventStatus::Rejected => rejected += 1,
            }
        }
        for (outcome, n) in [
            ("success", success),
            ("duplicate", duplicate),
            ("rejected", rejected),
        ] {
            if n > 0 {
                self.inner
                    .events
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(n);
            }
        }
    }

    /// Counts a log-in refused for wrong credentials.
    pub fn login_failed(&self) {
        self.inner.login_failures.inc();
    }

    /// Counts a log-in refused by the throttle.
    pub fn login_throttled(&self) {
        self.inner.login_throttled.inc();
    }

    /// The metrics as OpenMetrics text, with the gauges read now from
    /// their owners.
    fn encode(&self, sources: &Sources) -> Result<String, std::fmt::Error> {
        let inner = &self.inner;
        inner
            .open_connections
            .set(gauge_value(sources.connections.count()));
        let pool = sources.store.pool_use();
        inner
            .pool
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(gauge_value(pool.in_use));
        inner
            .pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(gauge_value(pool.idle));
        inner.pool_max.set(gauge_value(pool.max));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &inner.registry)?;
        Ok(text)
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The method as a label: the standard ones by name, any other as `other`
/// (a client may send any token as a method; it must not become a label).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware counting every request of the public router by its route
/// template ([`MatchedPath`], set by the router before this layer runs,
/// since `Router::layer` wraps each route), or [`UNMATCHED`].
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.request(route, &method, response.status(), started.elapsed());
    response
}

/// What a scrape reads besides the counters.
#[derive(Clone)]
struct Sources {
    metrics: Metrics,
    store: Arc<dyn Store>,
    connections: OpenConnections,
}

/// OpenMetrics text, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn scrape(State(sources): State<Sources>) -> Response {
    match sources.metrics.encode(&sources) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The metrics listener's routes: `GET /metrics`, nothing else.
fn router(sources: Sources) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(sources)
}

/// The metrics listener, running.
pub struct MetricsServer {
    pub addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` there, plain http, with the
    /// public listener's timeouts and at most [`METRICS_MAX_CONNECTIONS`]
    /// connections.
    pub fn start(
        addr: SocketAddr,
        limits: ConnectionLimits,
        metrics: Metrics,
        store: Arc<dyn Store>,
        connections: OpenConnections,
    ) -> Result<MetricsServer, ServeError> {
        let bind_error = |source| ServeError::Bind { addr, source };
        let listener = super::listener::bind(addr).map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let app = router(Sources {
            metrics,
            store,
            connections,
        });
        let limits = ConnectionLimits {
            max_connections: METRICS_MAX_CONNECTIONS,
            ..limits
        };
        let handle: Handle<SocketAddr> = Handle::new();
        let mut server = axum_server::from_tcp(listener).map_err(bind_error)?;
        server.http_builder().http1().header_read_timeout(None);
        let task = tokio::spawn(
            server
                .acceptor(Guard::new(DefaultAcceptor::new(), limits))
                .handle(handle.clone())
                .serve(app.into_make_service()),
        );
        Ok(MetricsServer {
            addr: bound,
            handle,
            task,
        })
    }

    /// Stops the listener, letting a scrape in flight finish (up to
    /// `grace`).
    pub async fn shutdown(self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = Method::from_bytes(b"BREW").expect("a method token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
