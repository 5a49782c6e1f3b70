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

mod body;
mod client;
mod config;
mod forward;
mod record;
mod reply;
mod server;

// Re-exported so that the tests name everything `sidecar::…`; each test uses some of it.
#[allow(unused_imports)]
pub use self::{body::*, client::*, config::*, forward::*, record::*, reply::*, server::*};

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

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
