//! A test fixture: a small stand-in for an Istio sidecar (Envoy) on 127.0.0.1, for the tests
//! that check how meshtrace's services behave behind one. Neither Envoy nor Istio is on the
//! test machines; this proxy does the few things of theirs that the tests look at, the way
//! Envoy does them, and nothing else (no TLS, no load balancing, no tracing of its own).
//!
//! ```text
//! client ──HTTP/1.1, HTTP/2 or gRPC──▶ Sidecar (127.0.0.1:random) ──▶ upstream (one address)
//! ```
//!
//! What it does, and where the behaviour comes from:
//!
//! - **Forwarding.** Each request goes to the one upstream with its method, path, headers, body
//!   and trailers. gRPC requests (`content-type: application/grpc…`) and requests that came over
//!   HTTP/2 go upstream over HTTP/2 with prior knowledge, everything else over HTTP/1.1. Every
//!   attempt opens a connection of its own to the upstream (Envoy pools them; for a test that
//!   only changes how many connections the upstream sees).
//! - **Attempt headers** (Envoy's router, `FilterUtility::setTimeoutHeaders`): each attempt
//!   carries `x-envoy-attempt-count: N` (1-based) and, when a timeout is configured,
//!   `x-envoy-expected-rq-timeout-ms` = the per-try timeout or what is left of the route
//!   timeout, whichever is smaller (1 when the route timeout is already used up; a per-try
//!   timeout not below the route timeout is ignored, as Envoy ignores it).
//! - **Timeouts.** The route timeout runs from when the request is ready to go upstream until
//!   the response has ended: before the response headers it ends in a `504 upstream request
//!   timeout` local reply, after them it resets the downstream stream (Envoy cannot send a 504
//!   any more either; this is what cuts long gRPC streams behind a route timeout). A per-try
//!   timeout abandons the attempt (its upstream connection is closed) and retries it if
//!   retries are left, else answers the same 504.
//! - **Retries** (`retries` is the number of retries, as in Envoy's `num_retries` and Istio's
//!   `attempts`): on an upstream 503 (`retry_on_503`), on `grpc-status: 14` in the response
//!   headers of a gRPC call (`retry_on_grpc_unavailable`), on a refused connection
//!   (`retry_on_connect_failure`), on a reset before the response headers (`retry_on_reset`),
//!   and always on a per-try timeout, with a fixed `retry_backoff` between attempts (Envoy's
//!   default is 25 ms base with jitter). When retries run out, the last upstream response is
//!   passed on as it is. With `retries > 0` the request body is read whole first so that it
//!   can be sent again (Envoy buffers for the same reason); with no retries it streams, so
//!   client- and bidi-streaming gRPC calls go through.
//! - **Responses from the upstream** get `x-envoy-upstream-service-time: <ms>` (from sending
//!   the attempt to its response headers) and `server: envoy`.
//! - **Local replies** (what Envoy answers by itself), switchable at run time with
//!   [`Sidecar::set_reply`]: see [`LocalReply`]. They carry `server: envoy` and never
//!   `x-envoy-upstream-service-time`: that header is what tells an upstream app's own 503
//!   from Envoy's. The same shapes are used for the sidecar's real failures (timeouts, refused
//!   or reset upstream connections). For gRPC requests they become trailers-only gRPC
//!   responses, as Envoy's `Http::Utility::prepareLocalReply` makes them: HTTP 200,
//!   `content-type: application/grpc`, `grpc-status` mapped from the HTTP status by gRPC's
//!   table (`Grpc::Utility::httpToGrpcStatus`: 400→13 INTERNAL, 401→16, 403→7, 404→12,
//!   429/502/503/504→14 UNAVAILABLE, else 2 UNKNOWN), `grpc-message` = the body text
//!   percent-encoded, one HEADERS frame with END_STREAM. A route or per-try timeout on a gRPC
//!   call is therefore UNAVAILABLE (14), not DEADLINE_EXCEEDED, unless
//!   [`SidecarConfig::grpc_timeout_deadline_exceeded`] asks for what Envoy does behind the
//!   runtime guard `envoy.reloadable_features.grpc_timeout_returns_deadline_exceeded`
//!   (envoyproxy/envoy#44479, fixing #10184).
//! - **Idle connections.** With `idle_timeout`, a client connection that carried no bytes in
//!   either direction for that long, with no request in flight on it, is ended the way
//!   [`IdleClose`] says: closed with a FIN (no HTTP/2 GOAWAY first), or blackholed (kept open,
//!   read and never answered). Bytes count as activity whatever they are, so HTTP/2 PINGs keep a
//!   connection alive, as they keep a NAT or load-balancer entry alive; tonic sends them while
//!   idle only with `http2_keep_alive_while_idle(true)`.
//!
//! Everything the sidecar does runs in tasks it owns: [`Sidecar::stop`] (or dropping it) ends
//! them all, closing the listener and every connection.
//!
//! Every test file is its own crate and uses only some of these helpers, so unused ones are
//! not an error here.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::Executor;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const ATTEMPT_COUNT: &str = "x-envoy-attempt-count";
pub const EXPECTED_RQ_TIMEOUT_MS: &str = "x-envoy-expected-rq-timeout-ms";
pub const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";
pub const OVERLOADED: &str = "x-envoy-overloaded";
pub const RATELIMITED: &str = "x-envoy-ratelimited";

/// The start of every reply Envoy makes when the upstream connection failed or was reset
/// before the response headers.
pub const CONNECT_ERROR_PREFIX: &str = "upstream connect error or disconnect/reset before headers.";

/// The reset reason Envoy reports for a refused upstream connection (Envoy 1.2x and later
/// print it like this; older ones said `connection failure`).
pub const REFUSED_REASON: &str =
    "remote connection failure, transport failure reason: delayed connect error: Connection refused";

/// The reset reason Envoy reports when the upstream closed the connection before answering.
pub const TERMINATION_REASON: &str = "connection termination";

// ---------------------------------------------------------------- configuration

/// What the sidecar does with a client connection that has been idle for
/// [`SidecarConfig::idle_timeout`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdleClose {
    /// Close the TCP connection (FIN), abruptly: no HTTP/2 GOAWAY first. A client that is
    /// writing a request just then sees the connection close under it ("transport is
    /// closing", "connection reset").
    #[default]
    Fin,
    /// Stop reading requests and never answer, leaving the TCP connection open: what a client
    /// sees when a middlebox or a restarted sidecar dropped the connection silently. Requests
    /// sent on it hang until the client gives up (its deadline, or an HTTP/2 keepalive
    /// timeout). The bytes are read and thrown away; the socket is closed when the client
    /// closes it or the sidecar stops.
    Blackhole,
}

/// How a [`Sidecar`] behaves. `Default` is Envoy with nothing configured: no timeouts, no
/// retries, no idle timeout. [`SidecarConfig::istio`] is an Istio sidecar's defaults.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// The route timeout (Envoy `route.timeout`, Istio `VirtualService` `timeout`).
    pub route_timeout: Option<Duration>,
    /// The per-try timeout (Envoy `retry_policy.per_try_timeout`, Istio `perTryTimeout`).
    pub per_try_timeout: Option<Duration>,
    /// Envoy's `max_grpc_timeout`: when set, a gRPC request's `grpc-timeout` header is its
    /// route timeout (capped at this value; zero means no cap; no header means no timeout),
    /// and each attempt's `grpc-timeout` is rewritten to its expected timeout.
    pub max_grpc_timeout: Option<Duration>,
    /// How many times a failed attempt is retried (so at most `retries + 1` attempts).
    pub retries: u32,
    /// Retry an upstream `503` (Envoy `retriable-status-codes` with 503, or `5xx`).
    pub retry_on_503: bool,
    /// Retry a gRPC response whose headers carry `grpc-status: 14` (Envoy `unavailable`).
    pub retry_on_grpc_unavailable: bool,
    /// Retry when the upstream refuses the connection (Envoy `connect-failure`).
    pub retry_on_connect_failure: bool,
    /// Retry when the upstream connection is reset before the response headers (`reset`).
    pub retry_on_reset: bool,
    /// The pause before each retry.
    pub retry_backoff: Duration,
    /// Answer gRPC timeouts with `grpc-status: 4` DEADLINE_EXCEEDED, as Envoy does with
    /// `envoy.reloadable_features.grpc_timeout_returns_deadline_exceeded` on; off (the
    /// default) they are 504 mapped to 14 UNAVAILABLE, which is what Istio sidecars do.
    pub grpc_timeout_deadline_exceeded: bool,
    /// Close (or blackhole, see `idle_close`) client connections idle for this long.
    pub idle_timeout: Option<Duration>,
    /// What happens to an idle client connection.
    pub idle_close: IdleClose,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        SidecarConfig {
            route_timeout: None,
            per_try_timeout: None,
            max_grpc_timeout: None,
            retries: 0,
            retry_on_503: false,
            retry_on_grpc_unavailable: false,
            retry_on_connect_failure: false,
            retry_on_reset: false,
            retry_backoff: Duration::from_millis(25),
            grpc_timeout_deadline_exceeded: false,
            idle_timeout: None,
            idle_close: IdleClose::Fin,
        }
    }
}

impl SidecarConfig {
    /// An Istio sidecar's defaults: 2 retries on `connect-failure,refused-stream,unavailable,
    /// cancelled,retriable-status-codes` (503), no route timeout.
    pub fn istio() -> Self {
        SidecarConfig {
            retries: 2,
            retry_on_503: true,
            retry_on_grpc_unavailable: true,
            retry_on_connect_failure: true,
            ..SidecarConfig::default()
        }
    }

    pub fn with_route_timeout(mut self, timeout: Duration) -> Self {
        self.route_timeout = Some(timeout);
        self
    }

    pub fn with_per_try_timeout(mut self, timeout: Duration) -> Self {
        self.per_try_timeout = Some(timeout);
        self
    }

    /// `retries` retries on 503 and gRPC UNAVAILABLE.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self.retry_on_503 = true;
        self.retry_on_grpc_unavailable = true;
        self
    }

    pub fn with_idle(mut self, timeout: Duration, close: IdleClose) -> Self {
        self.idle_timeout = Some(timeout);
        self.idle_close = close;
        self
    }
}

// ---------------------------------------------------------------- local replies

/// A reply Envoy makes itself, without (or instead of) an upstream response. Set one with
/// [`Sidecar::set_reply`] to have every request answered with it at once, the upstream
/// untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalReply {
    /// No healthy endpoint in the cluster: `503 no healthy upstream`.
    NoHealthyUpstream,
    /// The upstream connection failed or was reset before the response headers: `503
    /// upstream connect error or disconnect/reset before headers. reset reason: <reason>`
    /// (`connection failure`, `connection termination`, [`REFUSED_REASON`], ...).
    ConnectFailure { reason: String },
    /// The route or per-try timeout passed: `504 upstream request timeout`.
    UpstreamTimeout,
    /// A circuit breaker overflowed: `503` with `x-envoy-overloaded: true`, `reset reason:
    /// overflow`.
    Overloaded,
    /// The global rate limit service said no: `429` with `x-envoy-ratelimited: true`, no body.
    RateLimited,
    /// The local rate limit filter said no: `429 local_rate_limited`.
    LocalRateLimited,
}

impl LocalReply {
    pub fn connect_failure(reason: impl Into<String>) -> Self {
        LocalReply::ConnectFailure {
            reason: reason.into(),
        }
    }

    /// One of each kind, for table tests.
    pub fn all() -> Vec<LocalReply> {
        vec![
            LocalReply::NoHealthyUpstream,
            LocalReply::connect_failure("connection failure"),
            LocalReply::connect_failure(TERMINATION_REASON),
            LocalReply::UpstreamTimeout,
            LocalReply::Overloaded,
            LocalReply::RateLimited,
            LocalReply::LocalRateLimited,
        ]
    }

    /// The HTTP status of the plain (non-gRPC) reply.
    pub fn status(&self) -> StatusCode {
        match self {
            LocalReply::NoHealthyUpstream
            | LocalReply::ConnectFailure { .. }
            | LocalReply::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            LocalReply::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            LocalReply::RateLimited | LocalReply::LocalRateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The body of the plain reply (`text/plain`), which is also the gRPC reply's
    /// `grpc-message` (percent-encoded).
    pub fn body(&self) -> String {
        match self {
            LocalReply::NoHealthyUpstream => "no healthy upstream".into(),
            LocalReply::ConnectFailure { reason } => {
                format!("{CONNECT_ERROR_PREFIX} reset reason: {reason}")
            }
            LocalReply::UpstreamTimeout => "upstream request timeout".into(),
            LocalReply::Overloaded => format!("{CONNECT_ERROR_PREFIX} reset reason: overflow"),
            LocalReply::RateLimited => String::new(),
            LocalReply::LocalRateLimited => "local_rate_limited".into(),
        }
    }

    /// The headers this reply carries besides `server: envoy` (and the content headers).
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            LocalReply::Overloaded => &[(OVERLOADED, "true")],
            LocalReply::RateLimited => &[(RATELIMITED, "true")],
            _ => &[],
        }
    }

    /// The `grpc-status` of the gRPC form of this reply under `config`.
    pub fn grpc_status(&self, config: &SidecarConfig) -> i32 {
        self.rendered(config).grpc_status()
    }

    fn rendered(&self, config: &SidecarConfig) -> Rendered {
        let grpc_override = (*self == LocalReply::UpstreamTimeout
            && config.grpc_timeout_deadline_exceeded)
            .then_some(GRPC_DEADLINE_EXCEEDED);
        Rendered {
            status: self.status(),
            body: self.body(),
            extra: self.extra_headers(),
            grpc_override,
        }
    }
}

pub const GRPC_OK: i32 = 0;
pub const GRPC_UNKNOWN: i32 = 2;
pub const GRPC_DEADLINE_EXCEEDED: i32 = 4;
pub const GRPC_UNAVAILABLE: i32 = 14;

/// The gRPC status Envoy gives a local reply with this HTTP status (gRPC's
/// http-grpc-status-mapping.md, as Envoy's `Grpc::Utility::httpToGrpcStatus` has it).
pub fn grpc_status_for_http(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => GRPC_UNAVAILABLE,
        _ => GRPC_UNKNOWN,
    }
}

/// Percent-encodes a `grpc-message` as gRPC requires (and Envoy's `PercentEncoding::encode`
/// does): bytes outside `0x20..=0x7E`, and `%`, become `%XX`.
pub fn grpc_percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A local reply ready to be written as plain HTTP or as gRPC.
struct Rendered {
    status: StatusCode,
    body: String,
    extra: &'static [(&'static str, &'static str)],
    grpc_override: Option<i32>,
}

impl Rendered {
    fn upstream_timeout(config: &SidecarConfig) -> Self {
        LocalReply::UpstreamTimeout.rendered(config)
    }

    /// An upstream connection that failed (refused, reset) on the last of `attempts` attempts.
    fn connect_error(reason: &str, attempts: u32) -> Self {
        let retried = if attempts > 1 {
            "retried and the latest "
        } else {
            ""
        };
        Rendered {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: format!("{CONNECT_ERROR_PREFIX} {retried}reset reason: {reason}"),
            extra: &[],
            grpc_override: None,
        }
    }

    fn grpc_status(&self) -> i32 {
        self.grpc_override
            .unwrap_or_else(|| grpc_status_for_http(self.status))
    }

    fn into_response(self, grpc: bool) -> Response<ProxyBody> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::SERVER, HeaderValue::from_static("envoy"));
        for (name, value) in self.extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        let (status, body) = if grpc {
            // Trailers-only: everything in one HEADERS frame with END_STREAM.
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(self.grpc_status()));
            if !self.body.is_empty() {
                let message = grpc_percent_encode(&self.body);
                headers.insert(
                    "grpc-message",
                    HeaderValue::from_str(&message).expect("percent-encoded is a header value"),
                );
            }
            (StatusCode::OK, Payload::empty())
        } else {
            if !self.body.is_empty() {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                );
                headers.insert(
                    http::header::CONTENT_LENGTH,
                    HeaderValue::from(self.body.len()),
                );
            }
            (self.status, Payload::data(Bytes::from(self.body)))
        };
        let mut response = Response::new(ProxyBody::Local(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

// ---------------------------------------------------------------- what the sidecar records

/// What became of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Still waiting for the response headers (or the downstream request went away).
    Pending,
    /// The upstream answered; `grpc_status` if the response headers carried one.
    Response {
        status: StatusCode,
        grpc_status: Option<i32>,
    },
    /// Abandoned at the per-try timeout.
    PerTryTimeout,
    /// Abandoned at the route timeout.
    RouteTimeout,
    /// The upstream refused the connection.
    ConnectFailure,
    /// The upstream connection failed after connecting, before the response headers.
    Reset,
}

/// One attempt to send a request upstream.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Which downstream request it belongs to: 0 for the first the sidecar received, and so on.
    pub request: usize,
    /// 1 for the first attempt, +1 per retry (the `x-envoy-attempt-count` it carried).
    pub number: u32,
    /// When it was sent.
    pub at: Instant,
    /// Time since the request was ready to go upstream (the route timeout's clock).
    pub elapsed: Duration,
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// HTTP/1.1 or HTTP/2 to the upstream.
    pub version: Version,
    /// The headers sent upstream.
    pub headers: HeaderMap,
    pub outcome: AttemptOutcome,
}

impl Attempt {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn attempt_count(&self) -> Option<u32> {
        self.header(ATTEMPT_COUNT).and_then(|v| v.parse().ok())
    }

    pub fn expected_timeout_ms(&self) -> Option<u64> {
        self.header(EXPECTED_RQ_TIMEOUT_MS)
            .and_then(|v| v.parse().ok())
    }

    pub fn grpc_timeout(&self) -> Option<&str> {
        self.header("grpc-timeout")
    }
}

// ---------------------------------------------------------------- tasks

/// Every task the sidecar runs, so that stopping it ends them all.
struct Tasks {
    set: Mutex<JoinSet<()>>,
    closed: AtomicBool,
}

impl Tasks {
    fn set(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `task` unless the sidecar has stopped (then it is dropped unrun).
    fn spawn<F>(&self, task: F) -> Option<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut set = self.set();
        while set.try_join_next().is_some() {}
        Some(set.spawn(task))
    }
}

/// hyper's executor for the sidecar's HTTP/2 streams, on [`Tasks`].
#[derive(Clone)]
struct Exec(Arc<Tasks>);

impl<F> Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(async move {
            fut.await;
        });
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---------------------------------------------------------------- the sidecar

struct Shared {
    upstream: SocketAddr,
    config: SidecarConfig,
    tasks: Arc<Tasks>,
    reply: Mutex<Option<LocalReply>>,
    attempts: Mutex<Vec<Attempt>>,
    requests: AtomicUsize,
    accepted: AtomicUsize,
    closed: AtomicUsize,
    blackholed: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn record(&self, attempt: Attempt) -> usize {
        let mut attempts = lock(&self.attempts);
        attempts.push(attempt);
        attempts.len() - 1
    }

    fn set_outcome(&self, index: usize, outcome: AttemptOutcome) {
        if let Some(a) = lock(&self.attempts).get_mut(index) {
            a.outcome = outcome;
        }
    }
}

/// A sidecar stand-in on 127.0.0.1 in front of one upstream. See the module documentation.
pub struct Sidecar {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Sidecar {
    /// A sidecar on a free port of 127.0.0.1 forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, config: SidecarConfig) -> Sidecar {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let tasks = Arc::new(Tasks {
            set: Mutex::new(JoinSet::new()),
            closed: AtomicBool::new(false),
        });
        let shared = Arc::new(Shared {
            upstream,
            config,
            tasks: tasks.clone(),
            reply: Mutex::new(None),
            attempts: Mutex::default(),
            requests: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            blackholed: AtomicUsize::new(0),
        });
        tasks.spawn(accept_loop(listener, shared.clone()));
        Sidecar { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    pub fn config(&self) -> &SidecarConfig {
        &self.shared.config
    }

    /// From now on, answer every request with `reply` (the upstream untouched), or forward
    /// again with `None`.
    pub fn set_reply(&self, reply: Option<LocalReply>) {
        *lock(&self.shared.reply) = reply;
    }

    pub fn reply(&self) -> Option<LocalReply> {
        lock(&self.shared.reply).clone()
    }

    /// Every attempt so far, in the order sent.
    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.shared.attempts).clone()
    }

    /// The attempts of downstream request `request` (0 for the first), in order.
    pub fn attempts_of(&self, request: usize) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.request == request)
            .collect()
    }

    /// How many requests the sidecar received (answered locally or forwarded).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many client connections it accepted.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many client connections it closed for being idle ([`IdleClose::Fin`]).
    pub fn connections_closed(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// How many client connections it blackholed for being idle ([`IdleClose::Blackhole`]).
    pub fn connections_blackholed(&self) -> usize {
        self.shared.blackholed.load(Ordering::SeqCst)
    }

    /// Waits until `check` holds or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, check: impl Fn(&Sidecar) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Forgets the recorded attempts (request numbering goes on).
    pub fn clear(&self) {
        lock(&self.shared.attempts).clear();
    }

    pub fn is_running(&self) -> bool {
        !self.shared.tasks.closed.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection, client and upstream, and waits until all the
    /// sidecar's tasks have ended. Connections to its port are refused from then on.
    pub async fn stop(&self) {
        self.shared.tasks.closed.store(true, Ordering::SeqCst);
        loop {
            let mut set = std::mem::take(&mut *self.shared.tasks.set());
            if set.is_empty() {
                return;
            }
            set.shutdown().await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.shared.tasks.closed.store(true, Ordering::SeqCst);
        self.shared.tasks.set().abort_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        shared.tasks.spawn(serve_downstream(shared.clone(), tcp));
    }
}

// ---------------------------------------------------------------- client connections

/// Activity on one client connection.
struct ConnState {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl ConnState {
    fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    fn last(&self) -> Instant {
        *lock(&self.last)
    }
}

/// A request in flight on a connection; the connection is not idle while one is.
struct ActiveGuard(Arc<ConnState>);

impl ActiveGuard {
    fn new(conn: Arc<ConnState>) -> Self {
        conn.active.fetch_add(1, Ordering::SeqCst);
        conn.touch();
        ActiveGuard(conn)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one client connection: hyper (HTTP/1.1 or HTTP/2, as the client speaks) on one end
/// of an in-memory pipe, and a pump between the pipe and the socket that watches for idleness.
async fn serve_downstream(shared: Arc<Shared>, tcp: TcpStream) {
    let conn = Arc::new(ConnState {
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
    });
    let (outer, inner) = tokio::io::duplex(64 * 1024);
    let service = {
        let shared = shared.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let guard = ActiveGuard::new(conn.clone());
            async move { Ok::<_, Infallible>(handle(shared, guard, req).await) }
        })
    };
    let exec = Exec(shared.tasks.clone());
    let server = async move {
        let builder = auto::Builder::new(exec);
        let _ = builder.serve_connection(TokioIo::new(inner), service).await;
    };
    tokio::join!(server, pump(&shared, &conn, tcp, outer));
}

/// Copies bytes between the client socket and hyper's end of the pipe until either side
/// ends, or until the connection is idle, which ends it as `idle_close` says.
async fn pump(shared: &Shared, conn: &ConnState, mut client: TcpStream, pipe: DuplexStream) {
    let idle = {
        let (mut from_client, mut to_client) = client.split();
        let (mut from_hyper, mut to_hyper) = tokio::io::split(pipe);
        let up = copy(&mut from_client, &mut to_hyper, conn);
        let down = copy(&mut from_hyper, &mut to_client, conn);
        let both = async {
            tokio::pin!(up, down);
            tokio::select! {
                _ = &mut down => {}
                // The client finished sending: hyper may still be answering.
                _ = &mut up => down.await,
            }
        };
        let watchdog = async {
            match shared.config.idle_timeout {
                Some(timeout) => idle_watch(conn, timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = both => false,
            _ = watchdog => true,
        }
        // The pipe is dropped here: hyper sees it end.
    };
    if !idle {
        return;
    }
    match shared.config.idle_close {
        IdleClose::Fin => {
            shared.closed.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown().await;
        }
        IdleClose::Blackhole => {
            shared.blackholed.fetch_add(1, Ordering::SeqCst);
            let mut sink = [0u8; 4096];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

async fn copy<R, W>(from: &mut R, to: &mut W, conn: &ConnState)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        conn.touch();
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
        conn.touch();
    }
    let _ = to.shutdown().await;
}

/// Returns once the connection has carried no bytes for `timeout` with no request in flight.
async fn idle_watch(conn: &ConnState, timeout: Duration) {
    loop {
        let due = conn.last() + timeout;
        tokio::time::sleep_until(due.into()).await;
        if conn.active.load(Ordering::SeqCst) > 0 {
            conn.touch();
            continue;
        }
        if conn.last() + timeout <= Instant::now() {
            return;
        }
    }
}

// ---------------------------------------------------------------- requests

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn grpc_status_of(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses a `grpc-timeout` value (`1S`, `500m`, `100u`, ...).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The route timeout of one request (Envoy's `FilterUtility::finalTimeout`, old-style
/// timeouts): `grpc-timeout` capped by `max_grpc_timeout` for gRPC when that is set, else the
/// route's.
fn route_timeout(config: &SidecarConfig, headers: &HeaderMap, grpc: bool) -> Option<Duration> {
    if let (true, Some(max)) = (grpc, config.max_grpc_timeout) {
        let mut timeout = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(Duration::ZERO);
        if !max.is_zero() && (timeout.is_zero() || timeout > max) {
            timeout = max;
        }
        return (!timeout.is_zero()).then_some(timeout);
    }
    config.route_timeout
}

/// `x-envoy-expected-rq-timeout-ms` for an attempt `elapsed` into the request (Envoy's
/// `FilterUtility::setTimeoutHeaders`).
fn expected_timeout_ms(
    global: Option<Duration>,
    per_try: Option<Duration>,
    elapsed: Duration,
) -> Option<u64> {
    let expected = per_try.or(global)?.as_millis() as u64;
    match global {
        Some(global) => {
            let global = global.as_millis() as u64;
            let elapsed = elapsed.as_millis() as u64;
            Some(if elapsed >= global {
                1
            } else {
                expected.min(global - elapsed)
            })
        }
        None => Some(expected),
    }
}

const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.get("te").is_some_and(|te| te != "trailers") {
        headers.remove("te");
    }
}

/// The request body: read whole (so that it can be sent again) or streamed once.
enum Source {
    Buffered(Bytes, Option<HeaderMap>),
    Stream(Option<Incoming>),
}

impl Source {
    fn body(&mut self) -> UpBody {
        match self {
            Source::Buffered(data, trailers) => UpBody::Replay(Payload {
                data: Some(data.clone()),
                trailers: trailers.clone(),
            }),
            Source::Stream(body) => match body.take() {
                Some(body) => UpBody::Stream(body),
                None => UpBody::Replay(Payload::empty()),
            },
        }
    }
}

enum UpstreamError {
    Connect,
    Reset,
}

async fn handle(
    shared: Arc<Shared>,
    guard: ActiveGuard,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let request = shared.requests.fetch_add(1, Ordering::SeqCst);
    let grpc = is_grpc(req.headers());
    let reply = lock(&shared.reply).clone();
    if let Some(reply) = reply {
        return reply.rendered(&shared.config).into_response(grpc);
    }
    forward(&shared, request, guard, req, grpc).await
}

async fn forward(
    shared: &Arc<Shared>,
    request: usize,
    guard: ActiveGuard,
    req: Request<Incoming>,
    grpc: bool,
) -> Response<ProxyBody> {
    let config = &shared.config;
    let downstream_version = req.version();
    let h2 = grpc || downstream_version == Version::HTTP_2;
    let (parts, body) = req.into_parts();
    let mut source = if config.retries > 0 {
        match read_body(body).await {
            Ok((data, trailers)) => Source::Buffered(data, trailers),
            // The client went away mid-request; nobody reads this.
            Err(_) => return Rendered::connect_error(TERMINATION_REASON, 0).into_response(grpc),
        }
    } else {
        Source::Stream(Some(body))
    };

    let start = Instant::now();
    let global = route_timeout(config, &parts.headers, grpc);
    let per_try = config
        .per_try_timeout
        .filter(|p| global.is_none_or(|g| *p < g));
    let deadline = global.map(|g| start + g);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let uri: Uri = if h2 {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| shared.upstream.to_string());
        format!("http://{authority}{path}").parse().expect("uri")
    } else {
        path.parse().expect("path")
    };

    let mut number = 0u32;
    loop {
        number += 1;
        if number > 1 && !config.retry_backoff.is_zero() {
            let wake = Instant::now() + config.retry_backoff;
            if let Some(deadline) = deadline.filter(|d| wake >= *d) {
                tokio::time::sleep_until(deadline.into()).await;
                return Rendered::upstream_timeout(config).into_response(grpc);
            }
            tokio::time::sleep_until(wake.into()).await;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Rendered::upstream_timeout(config).into_response(grpc);
        }

        let elapsed = start.elapsed();
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        if !h2 && !headers.contains_key(http::header::HOST) {
            headers.insert(
                http::header::HOST,
                HeaderValue::from_str(&shared.upstream.to_string()).expect("host"),
            );
        }
        headers.insert(ATTEMPT_COUNT, HeaderValue::from(number));
        if let Some(ms) = expected_timeout_ms(global, per_try, elapsed) {
            headers.insert(EXPECTED_RQ_TIMEOUT_MS, HeaderValue::from(ms));
            if grpc && config.max_grpc_timeout.is_some() {
                headers.insert(
                    "grpc-timeout",
                    HeaderValue::from_str(&format!("{ms}m")).expect("grpc-timeout"),
                );
            }
        }
        let sent = Instant::now();
        let version = if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let index = shared.record(Attempt {
            request,
            number,
            at: sent,
            elapsed,
            method: parts.method.clone(),
            path: path.clone(),
            version,
            headers: headers.clone(),
            outcome: AttemptOutcome::Pending,
        });
        let mut upstream_req = Request::new(source.body());
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri.clone();
        *upstream_req.version_mut() = version;
        *upstream_req.headers_mut() = headers;

        let per_try_deadline = per_try.map(|p| sent + p);
        let try_deadline = match (deadline, per_try_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let attempt = send_upstream(&shared.tasks, shared.upstream, upstream_req, h2);
        let result = match try_deadline {
            Some(d) => tokio::time::timeout_at(d.into(), attempt).await.ok(),
            None => Some(attempt.await),
        };
        let retries_left = number <= config.retries;
        match result {
            None => {
                let route_fired = deadline.is_some() && try_deadline == deadline;
                shared.set_outcome(
                    index,
                    if route_fired {
                        AttemptOutcome::RouteTimeout
                    } else {
                        AttemptOutcome::PerTryTimeout
                    },
                );
                if !route_fired && retries_left {
                    continue;
                }
                return Rendered::upstream_timeout(config).into_response(grpc);
            }
            Some(Err(UpstreamError::Connect)) => {
                shared.set_outcome(index, AttemptOutcome::ConnectFailure);
                if retries_left && config.retry_on_connect_failure {
                    continue;
                }
                return Rendered::connect_error(REFUSED_REASON, number).into_response(grpc);
            }
            Some(Err(UpstreamError::Reset)) => {
                shared.set_outcome(index, AttemptOutcome::Reset);
                if retries_left && config.retry_on_reset {
                    continue;
                }
                return Rendered::connect_error(TERMINATION_REASON, number).into_response(grpc);
            }
            Some(Ok((response, connection))) => {
                let status = response.status();
                let grpc_status = grpc_status_of(response.headers());
                shared.set_outcome(
                    index,
                    AttemptOutcome::Response {
                        status,
                        grpc_status,
                    },
                );
                let retriable = (config.retry_on_503 && status == StatusCode::SERVICE_UNAVAILABLE)
                    || (config.retry_on_grpc_unavailable
                        && grpc
                        && grpc_status == Some(GRPC_UNAVAILABLE));
                if retriable && retries_left {
                    continue;
                }
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                head.headers.insert(
                    UPSTREAM_SERVICE_TIME,
                    HeaderValue::from(sent.elapsed().as_millis() as u64),
                );
                head.headers
                    .insert(http::header::SERVER, HeaderValue::from_static("envoy"));
                head.version = downstream_version;
                let body = ForwardBody {
                    inner: body,
                    deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
                    _connection: connection,
                    _guard: guard,
                };
                return Response::from_parts(head, ProxyBody::Upstream(Box::new(body)));
            }
        }
    }
}

/// Sends one attempt on a new connection to the upstream. The connection's task is aborted
/// when the returned handle is dropped (with the response body) or when this future is
/// dropped (an abandoned attempt).
async fn send_upstream(
    tasks: &Arc<Tasks>,
    upstream: SocketAddr,
    req: Request<UpBody>,
    h2: bool,
) -> Result<(Response<Incoming>, Option<AbortOnDrop>), UpstreamError> {
    let tcp = TcpStream::connect(upstream)
        .await
        .map_err(|_| UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let io = TokioIo::new(tcp);
    if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(Exec(tasks.clone()), io)
                .await
                .map_err(|_| UpstreamError::Reset)?;
        let task = tasks
            .spawn(async move {
                let _ = connection.await;
            })
            .map(AbortOnDrop);
        let response = sender
            .send_request(req)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        Ok((response, task))
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        let task = tasks
            .spawn(async move {
                let _ = connection.await;
            })
            .map(AbortOnDrop);
        let response = sender
            .send_request(req)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        Ok((response, task))
    }
}

// ---------------------------------------------------------------- bodies

/// A body held in memory: some data, then maybe trailers.
pub struct Payload {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Payload {
    pub fn empty() -> Self {
        Payload {
            data: None,
            trailers: None,
        }
    }

    pub fn data(data: Bytes) -> Self {
        Payload {
            data: (!data.is_empty()).then_some(data),
            trailers: None,
        }
    }

    pub fn with_trailers(data: Bytes, trailers: HeaderMap) -> Self {
        Payload {
            data: (!data.is_empty()).then_some(data),
            trailers: Some(trailers),
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A request body going upstream.
enum UpBody {
    Replay(Payload),
    Stream(Incoming),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Replay(p) => Pin::new(p).poll_frame(cx).map_err(|e| match e {}),
            UpBody::Stream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Replay(p) => p.is_end_stream(),
            UpBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Replay(p) => p.size_hint(),
            UpBody::Stream(b) => b.size_hint(),
        }
    }
}

/// An upstream response body on its way to the client: ends in an error (a reset of the
/// downstream stream) if the route timeout passes first; keeps the upstream connection and
/// the request's place on its client connection until it ends.
struct ForwardBody {
    inner: Incoming,
    deadline: Option<Pin<Box<Sleep>>>,
    _connection: Option<AbortOnDrop>,
    _guard: ActiveGuard,
}

/// A response body going to the client.
enum ProxyBody {
    Local(Payload),
    Upstream(Box<ForwardBody>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Local(p) => Pin::new(p).poll_frame(cx).map_err(|e| match e {}),
            ProxyBody::Upstream(f) => {
                if let Poll::Ready(frame) = Pin::new(&mut f.inner).poll_frame(cx) {
                    return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
                }
                if let Some(deadline) = f.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err("upstream request timeout".into())));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(p) => p.is_end_stream(),
            ProxyBody::Upstream(f) => f.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(p) => p.size_hint(),
            ProxyBody::Upstream(f) => f.inner.size_hint(),
        }
    }
}

/// Reads a whole body: its data and its trailers (merged, if there were several frames).
pub async fn read_body<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut body = body;
    let mut data = BytesMut::new();
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        match frame?.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}

// ---------------------------------------------------------------- client helpers for tests

/// A whole response as a client got it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub version: Version,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()?
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response came from the upstream through Envoy (it carries
    /// `x-envoy-upstream-service-time`) rather than from Envoy itself.
    pub fn came_from_upstream(&self) -> bool {
        self.headers.contains_key(UPSTREAM_SERVICE_TIME)
    }

    /// The gRPC status, from the headers (trailers-only) or the trailers.
    pub fn grpc_status(&self) -> Option<i32> {
        grpc_status_of(&self.headers).or_else(|| self.trailers.as_ref().and_then(grpc_status_of))
    }

    /// The gRPC messages of the body (length-prefixed, uncompressed).
    pub fn grpc_messages(&self) -> Vec<Bytes> {
        grpc_unframe(&self.body)
    }
}

/// Sends `req` on a new connection to `addr` (HTTP/2 with prior knowledge if the request's
/// version is HTTP/2, else HTTP/1.1) and reads the whole response. The URI should be absolute
/// (`http://host:port/path`); HTTP/1.1 sends its path with a `host` header.
pub async fn send(addr: SocketAddr, req: Request<Bytes>) -> Result<Reply, hyper::Error> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(tcp);
    let (mut parts, data) = req.into_parts();
    let response = if parts.version == Version::HTTP_2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        let task = AbortOnDrop(tokio::spawn(connection).abort_handle());
        let response = sender
            .send_request(Request::from_parts(parts, Payload::data(data)))
            .await?;
        (response, task)
    } else {
        if let Some(authority) = parts.uri.authority().cloned() {
            parts
                .headers
                .entry(http::header::HOST)
                .or_insert(HeaderValue::from_str(authority.as_str()).expect("host"));
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            parts.uri = path.parse().expect("path");
        }
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let task = AbortOnDrop(tokio::spawn(connection).abort_handle());
        let response = sender
            .send_request(Request::from_parts(parts, Payload::data(data)))
            .await?;
        (response, task)
    };
    let (response, _connection) = response;
    let (head, body) = response.into_parts();
    let (body, trailers) = read_body(body).await?;
    Ok(Reply {
        version: head.version,
        status: head.status,
        headers: head.headers,
        body,
        trailers,
    })
}

/// `GET {path}` over HTTP/1.1 to `addr`; panics if the exchange fails.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Bytes::new())
        .expect("request");
    send(addr, req).await.expect("HTTP/1.1 exchange")
}

/// A unary gRPC call over HTTP/2 to `addr`: `POST {path}` with `message` (the encoded request
/// message, framed here) and `headers` added. Panics if the exchange fails.
pub async fn grpc_call(
    addr: SocketAddr,
    path: &str,
    message: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::post(format!("http://{addr}{path}"))
        .version(Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(grpc_frame(message))
        .expect("request");
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    send(addr, req).await.expect("HTTP/2 exchange")
}

/// One gRPC length-prefixed message, uncompressed.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.freeze()
}

/// The messages of a gRPC body (length-prefixed); a truncated tail is dropped.
pub fn grpc_unframe(body: &[u8]) -> Vec<Bytes> {
    let mut messages = Vec::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest.len() < 5 + len {
            break;
        }
        messages.push(Bytes::copy_from_slice(&rest[5..5 + len]));
        rest = &rest[5 + len..];
    }
    messages
}
