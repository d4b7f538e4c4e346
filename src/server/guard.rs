//! How long one connection may hold what it holds: the watchdog every connection runs beside
//! hyper (the per-listener connection limit is in [`conn`](super::conn)).
//!
//! hyper times out HTTP/1.1 request headers and HTTP/2 keep-alive pings; nothing else. The
//! watchdog adds, for both protocols:
//! - a first request within the header timeout (HTTP/2: a client that completes TLS and never
//!   sends the preface, or only the preface, is closed);
//! - an idle timeout (no request in flight): HTTP/2 gets a GOAWAY;
//! - a write-stall cap: a response not delivered (the client stopped reading, or holds its
//!   HTTP/2 flow-control window at zero) while no write makes progress is closed;
//! - during a shutdown, HTTP/1.1 connections idle for [`DRAIN_IDLE`] are closed (the ones that
//!   get a request first answer it with `Connection: close`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// During a shutdown, how long an HTTP/1.1 connection may sit idle before it is closed.
pub const DRAIN_IDLE: Duration = Duration::from_millis(1000);

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub first_request: Duration,
    pub idle: Duration,
    pub write_stall: Duration,
}

/// Why the watchdog closes a connection (each is a `request_errors_total` cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No request within the header timeout (HTTP/2 preface or first headers).
    FirstRequestTimeout,
    /// No request in flight for the idle timeout: closed gracefully (GOAWAY).
    IdleTimeout,
    /// A response not delivered, no write progress for the write-stall cap.
    WriteStall,
    /// Shutting down, and the connection idle: closed gracefully.
    Drained,
}

impl Verdict {
    pub fn cause(self) -> Option<&'static str> {
        match self {
            Verdict::FirstRequestTimeout => Some("first_request_timeout"),
            Verdict::IdleTimeout => Some("idle_timeout"),
            Verdict::WriteStall => Some("write_stall"),
            Verdict::Drained => None,
        }
    }

    /// Whether the connection is asked to close (GOAWAY, or close when idle) rather than dropped.
    pub fn graceful(self) -> bool {
        matches!(self, Verdict::IdleTimeout | Verdict::Drained)
    }
}

// === Activity ===

/// What one connection is doing, shared by its IO wrapper, its responses and its watchdog.
/// Times are milliseconds since the connection was accepted.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    requests: AtomicU64,
    /// Requests whose response has not been delivered (or dropped) yet.
    in_flight: AtomicUsize,
    /// Responses handed to hyper and not yet delivered.
    undelivered: AtomicUsize,
    /// When the last request ended (or the connection started).
    last_idle_ms: AtomicU64,
    /// When the undelivered responses last made progress: one became pending with none
    /// before, or one was delivered.
    delivery_progress_ms: AtomicU64,
    /// When a write first returned `Pending` (0: not blocked).
    write_blocked_ms: AtomicU64,
    /// Shutting down: HTTP/1.1 responses carry `Connection: close`.
    pub draining: AtomicBool,
    drain_start_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            undelivered: AtomicUsize::new(0),
            last_idle_ms: AtomicU64::new(0),
            delivery_progress_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_start_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        // At least 1: 0 means "not set" for `write_blocked_ms`.
        (self.start.elapsed().as_millis() as u64).max(1)
    }

    /// A request has arrived; the guard ends it when dropped.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            activity: self.clone(),
            responded: false,
        }
    }

    /// Marks the shutdown's start.
    pub fn drain(&self) {
        self.drain_start_ms.store(self.now_ms(), Ordering::Relaxed);
        self.draining.store(true, Ordering::Release);
    }

    /// The verdict at this moment, if any.
    pub fn verdict(&self, limits: &Limits, h2: bool) -> Option<Verdict> {
        let now = self.now_ms();
        let ms = |d: Duration| d.as_millis() as u64;
        let blocked = self.write_blocked_ms.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked) >= ms(limits.write_stall) {
            return Some(Verdict::WriteStall);
        }
        let undelivered = self.undelivered.load(Ordering::Acquire) > 0;
        let progress = self.delivery_progress_ms.load(Ordering::Relaxed);
        if undelivered && now.saturating_sub(progress) >= ms(limits.write_stall) {
            return Some(Verdict::WriteStall);
        }
        let requests = self.requests.load(Ordering::Relaxed);
        if h2 && requests == 0 && now >= ms(limits.first_request) {
            return Some(Verdict::FirstRequestTimeout);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle_since = self.last_idle_ms.load(Ordering::Relaxed);
        if self.draining.load(Ordering::Acquire) && !h2 {
            let since = idle_since.max(self.drain_start_ms.load(Ordering::Relaxed));
            if now.saturating_sub(since) >= ms(DRAIN_IDLE) {
                return Some(Verdict::Drained);
            }
        }
        if requests > 0 && now.saturating_sub(idle_since) >= ms(limits.idle) {
            return Some(Verdict::IdleTimeout);
        }
        None
    }
}

// === RequestGuard ===

/// One request in flight; then its response until delivered. Dropped: the request is over.
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
    responded: bool,
}

impl RequestGuard {
    /// The handler answered: the response body is now hyper's to deliver (called once, by
    /// [`GuardedBody::new`]).
    fn responded(&mut self) {
        self.responded = true;
        let a = &self.activity;
        if a.undelivered.fetch_add(1, Ordering::AcqRel) == 0 {
            a.delivery_progress_ms.store(a.now_ms(), Ordering::Relaxed);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.activity;
        let now = a.now_ms();
        if self.responded {
            a.undelivered.fetch_sub(1, Ordering::AcqRel);
            a.delivery_progress_ms.store(now, Ordering::Relaxed);
        }
        a.last_idle_ms.store(now, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

// === GuardedBody ===

/// A response body that ends its request when delivered (its last frame taken) or dropped.
pub struct GuardedBody<B> {
    inner: B,
    guard: Option<RequestGuard>,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, mut guard: RequestGuard) -> Self {
        guard.responded();
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === Tracked ===

/// The connection's socket (TLS or not), noting when writes block and unblock.
pub struct Tracked<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    pub fn new(inner: IO, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    fn note(&self, pending: bool) {
        let blocked = &self.activity.write_blocked_ms;
        if pending {
            if blocked.load(Ordering::Relaxed) == 0 {
                blocked.store(self.activity.now_ms(), Ordering::Relaxed);
            }
        } else {
            blocked.store(0, Ordering::Relaxed);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(polled.is_pending());
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How often the watchdog looks: a quarter of the shortest limit, between 20 ms and 1 s. An
/// HTTP/1.1 connection that is `draining` counts [`DRAIN_IDLE`] among the limits (only then).
pub fn tick(limits: &Limits, draining: bool) -> Duration {
    let mut shortest = limits.first_request.min(limits.idle).min(limits.write_stall);
    if draining {
        shortest = shortest.min(DRAIN_IDLE);
    }
    (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}
