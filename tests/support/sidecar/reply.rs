//! Envoy's local replies, in their HTTP and gRPC forms.

use super::*;

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

    pub(super) fn rendered(&self, config: &SidecarConfig) -> Rendered {
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
pub(super) struct Rendered {
    pub(super) status: StatusCode,
    pub(super) body: String,
    pub(super) extra: &'static [(&'static str, &'static str)],
    pub(super) grpc_override: Option<i32>,
}

impl Rendered {
    pub(super) fn upstream_timeout(config: &SidecarConfig) -> Self {
        LocalReply::UpstreamTimeout.rendered(config)
    }

    /// An upstream connection that failed (refused, reset) on the last of `attempts` attempts.
    pub(super) fn connect_error(reason: &str, attempts: u32) -> Self {
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

    pub(super) fn grpc_status(&self) -> i32 {
        self.grpc_override
            .unwrap_or_else(|| grpc_status_for_http(self.status))
    }

    pub(super) fn into_response(self, grpc: bool) -> Response<ProxyBody> {
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
