//! The sidecar's configuration: timeouts, retries, idle connections.

use super::*;

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
