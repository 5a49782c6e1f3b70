//! What the sidecar records of each attempt.

use super::*;

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
    pub(super) fn header(&self, name: &str) -> Option<&str> {
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
