//! What one connection may cost: deadlines and a cap on open connections.
//!
//! hyper's own `header_read_timeout` starts again whenever it waits for a
//! request head, so it cannot tell a kept-alive connection waiting for its
//! next request (which may wait [`ConnectionLimits::idle_timeout`]) from a
//! client trickling a head one line at a time (which gets
//! [`ConnectionLimits::header_read_timeout`]). This module keeps that
//! distinction itself: [`Guard`] wraps every accepted socket in a [`TimedIo`]
//! and the application in a [`Tracked`] service that share one [`Conn`],
//! which knows whether a request is being served.
//!
//! - Before its first request, a connection has `header_read_timeout` from
//!   its opening (the TLS handshake included) to send a whole head.
//! - Between requests it may sit idle for `idle_timeout`; once the next head
//!   starts arriving, `header_read_timeout` from its first byte.
//! - While a request is served there is no connection deadline (a board
//!   stream lasts hours); the request body instead must keep coming
//!   ([`ProgressBody`]) and the response must keep being read (a write that
//!   stalls for `body_timeout` fails).
//!
//! A deadline that passes fails the socket read with `TimedOut`, which
//! makes hyper close the connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{Request, Response};
use axum_server::accept::Accept;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionLimits;

/// After [`ConnectionLimits::body_timeout`], a request body must have
/// arrived at this average rate, so a client sending one byte a second
/// cannot hold a connection (and a buffer) open for hours.
pub const MIN_BODY_RATE: u64 = 1024;

/// Where a connection stands, shared by its socket and its requests.
struct Activity {
    /// Requests being served (more than one only on HTTP/2).
    requests: usize,
    /// Whether a request has been served: idle waits are then kept-alive
    /// waits.
    served: bool,
    /// When the connection opened or its last response ended.
    waiting_since: Instant,
    /// When the next request's head started to arrive.
    head_started: Option<Instant>,
    /// The socket reader's last waker: woken when a request ends, so a read
    /// that went pending under an earlier deadline (or none) picks up the
    /// idle one.
    parked: Option<Waker>,
}

/// One connection's shared state. Holding the connection-cap permit here
/// releases it when both the socket and the service are gone.
pub struct Conn {
    limits: ConnectionLimits,
    activity: Mutex<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    fn new(limits: ConnectionLimits, permit: OwnedSemaphorePermit) -> Arc<Conn> {
        Arc::new(Conn {
            limits,
            activity: Mutex::new(Activity {
                requests: 0,
                served: false,
                waiting_since: Instant::now(),
                head_started: None,
                parked: None,
            }),
            _permit: permit,
        })
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        // The lock is never held across code that can panic; a poisoned
        // lock still holds consistent data.
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the connection must have made progress, or `None` while a
    /// request is being served.
    fn deadline(&self) -> Option<Instant> {
        let a = self.activity();
        if a.requests > 0 {
            return None;
        }
        if let Some(started) = a.head_started {
            return Some(started + self.limits.header_read_timeout);
        }
        let wait = if a.served {
            self.limits.idle_timeout
        } else {
            self.limits.header_read_timeout
        };
        Some(a.waiting_since + wait)
    }

    fn bytes_read(&self) {
        let mut a = self.activity();
        if a.requests == 0 && a.head_started.is_none() {
            // A first request's head counts from the connection's opening.
            a.head_started = Some(if a.served {
                Instant::now()
            } else {
                a.waiting_since
            });
        }
    }

    fn park(&self, waker: &Waker) {
        self.activity().parked = Some(waker.clone());
    }

    fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut a = self.activity();
        a.requests += 1;
        a.head_started = None;
        RequestGuard {
            conn: Arc::clone(self),
        }
    }
}

/// Marks a request as served for as long as it lives: dropped when the
/// response body ends or the request is abandoned.
struct RequestGuard {
    conn: Arc<Conn>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut a = self.conn.activity();
        a.requests = a.requests.saturating_sub(1);
        if a.requests == 0 {
            a.served = true;
            a.waiting_since = Instant::now();
            if let Some(waker) = a.parked.take() {
                waker.wake();
            }
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

/// Polls `timer` set to `deadline` (made or moved as needed); ready when
/// the deadline has passed.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() != deadline {
        sleep.as_mut().reset(deadline);
    }
    sleep.as_mut().poll(cx).is_ready()
}

/// A socket with the connection's deadlines.
pub struct TimedIo<T> {
    inner: T,
    conn: Arc<Conn>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Since when writes have been refused (the client reads nothing).
    write_stalled: Option<Instant>,
}

impl<T> TimedIo<T> {
    fn new(inner: T, conn: Arc<Conn>) -> TimedIo<T> {
        TimedIo {
            inner,
            conn,
            read_timer: None,
            write_timer: None,
            write_stalled: None,
        }
    }

    fn write_outcome<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.write_stalled = None;
            return poll;
        }
        let since = *self.write_stalled.get_or_insert_with(Instant::now);
        if expired(
            &mut self.write_timer,
            since + self.conn.limits.body_timeout,
            cx,
        ) {
            return Poll::Ready(Err(timed_out("the client stopped reading the response")));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Woken when a request ends, to move the deadline from the
                // one set before the request to the idle one.
                this.conn.park(cx.waker());
                match this.conn.deadline() {
                    None => Poll::Pending,
                    Some(deadline) => {
                        if expired(&mut this.read_timer, deadline, cx) {
                            Poll::Ready(Err(timed_out(
                                "the connection was idle or sent its request too slowly",
                            )))
                        } else {
                            Poll::Pending
                        }
                    }
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write_outcome(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_outcome(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.write_outcome(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.write_outcome(cx, poll)
    }
}

/// Why a request body could not be read: it stalled. Handlers answer it
/// with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no data for {0:?} or under 1 KiB/s on average")]
pub struct BodyStalled(pub Duration);

/// A request body that must keep coming: no gap longer than the body
/// timeout, and on average [`MIN_BODY_RATE`] once the timeout has passed.
/// The clock runs only while the handler waits for data, so a handler busy
/// elsewhere is never blamed on the client.
pub struct ProgressBody<B> {
    inner: B,
    timeout: Duration,
    started: Option<Instant>,
    last: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> ProgressBody<B> {
    pub fn new(inner: B, timeout: Duration) -> ProgressBody<B> {
        ProgressBody {
            inner,
            timeout,
            started: None,
            last: None,
            received: 0,
            timer: None,
        }
    }

    fn deadline(&self, now: Instant) -> Instant {
        let started = self.started.unwrap_or(now);
        let last = self.last.unwrap_or(now);
        let by_rate = started
            + self.timeout
            + Duration::from_millis(self.received.saturating_mul(1000) / MIN_BODY_RATE);
        (last + self.timeout).min(by_rate)
    }
}

impl<B> http_body::Body for ProgressBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        let now = Instant::now();
        this.started.get_or_insert(now);
        this.last.get_or_insert(now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                this.last = Some(Instant::now());
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline(now);
                if expired(&mut this.timer, deadline, cx) {
                    Poll::Ready(Some(Err(Box::new(BodyStalled(this.timeout)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as served until it ends.
struct GuardedBody {
    inner: Body,
    guard: Option<RequestGuard>,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(poll, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard = None;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The application, with each request counted on its connection and its
/// body watched for progress.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> tower_service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let guard = self.conn.request_started();
        let timeout = self.conn.limits.body_timeout;
        let request = request.map(|body| Body::new(ProgressBody::new(body, timeout)));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| {
                Body::new(GuardedBody {
                    inner,
                    guard: Some(guard),
                })
            }))
        })
    }
}

/// The acceptor of every connection: refuses connections over the cap,
/// then hands the socket (with its deadlines) to `inner` (TLS or nothing).
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
}

impl<A> Guard<A> {
    pub fn new(inner: A, limits: ConnectionLimits) -> Guard<A> {
        Guard {
            inner,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
        }
    }
}

impl<A> Guard<A> {
    /// The same guard (the same cap, the same count) over another
    /// acceptor: TLS, once its certificate is loaded.
    pub fn with_acceptor<B>(self, inner: B) -> Guard<B> {
        Guard {
            inner,
            limits: self.limits,
            slots: self.slots,
        }
    }

    /// A handle that counts this acceptor's open connections (for the
    /// metrics): the cap's permits that are out.
    pub fn open_connections(&self) -> OpenConnections {
        OpenConnections {
            slots: Arc::clone(&self.slots),
            max: self.limits.max_connections,
        }
    }
}

/// The open connections of one [`Guard`], read from its cap's permits
/// rather than counted again: a connection holds its permit until both its
/// socket and its service are gone.
#[derive(Clone)]
pub struct OpenConnections {
    slots: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    pub fn count(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }
}

/// Why a connection was closed on arrival.
#[derive(Debug, thiserror::Error)]
#[error("connection limit reached ({0} open); closing a new connection")]
pub struct AtCapacity(pub usize);

impl<A, S> Accept<TcpStream, S> for Guard<A>
where
    A: Accept<TimedIo<TcpStream>, Tracked<S>>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            let error = io::Error::other(AtCapacity(self.limits.max_connections));
            return Box::pin(std::future::ready(Err(error)));
        };
        if let Err(e) = stream.set_nodelay(true) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let conn = Conn::new(self.limits, permit);
        let io = TimedIo::new(stream, Arc::clone(&conn));
        let service = Tracked {
            inner: service,
            conn,
        };
        Box::pin(self.inner.accept(io, service))
    }
}
