//! Who answered: the upstream application, or the Envoy sidecar in front of it.
//!
//! Envoy answers by itself when it cannot or will not reach the upstream (SPECS.md section
//! 5): `503 no healthy upstream`, `503 upstream connect error or disconnect/reset before
//! headers. reset reason: …`, `504 upstream request timeout`, `x-envoy-overloaded: true` when
//! a circuit breaker overflows, `x-envoy-ratelimited` and `429 local_rate_limited`. Responses
//! that came from the upstream carry `x-envoy-upstream-service-time`; `server: envoy` is on
//! every response in Istio, so it tells nothing. For gRPC calls Envoy sends the same texts as
//! `grpc-message` with a `grpc-status` (UNAVAILABLE for 429/502/503/504).
//!
//! ```
//! use meshtrace::mesh::envoy::{classify, EnvoyReply, Origin};
//! let headers = http::HeaderMap::new();
//! let origin = classify(http::StatusCode::SERVICE_UNAVAILABLE, &headers, Some(b"no healthy upstream"));
//! assert_eq!(origin, Origin::Envoy(EnvoyReply::NoHealthyUpstream));
//! assert_eq!(origin.error().unwrap().to_string(), "no healthy upstream: every host of the destination is ejected or unhealthy");
//! ```

use crate::GrpcCode;
use http::{HeaderMap, HeaderName, StatusCode};

/// `x-envoy-upstream-service-time`: set on responses that came from the upstream.
pub const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
/// `x-envoy-overloaded`: set on Envoy's replies when a circuit breaker overflowed.
pub const X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
/// `x-envoy-ratelimited`: set on Envoy's replies when the rate limit service said no.
pub const X_ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");

const CONNECT_ERROR: &str = "upstream connect error or disconnect/reset before headers";
const RESET_REASON: &str = "reset reason: ";

/// A reply Envoy made itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvoyReply {
    /// `503 no healthy upstream`: every host of the destination is ejected or failing
    /// health checks.
    NoHealthyUpstream,
    /// `503 upstream connect error or disconnect/reset before headers`, with Envoy's reset
    /// reason (`connection failure`, `connection termination`, `remote reset`, …).
    ConnectFailure {
        /// The text after `reset reason: `, if any.
        reset_reason: Option<String>,
    },
    /// `504 upstream request timeout`: the route or per-try timeout passed.
    UpstreamTimeout,
    /// A circuit breaker overflowed (`x-envoy-overloaded: true`, or reset reason `overflow`).
    CircuitOpen,
    /// The global rate limit service refused the request (`x-envoy-ratelimited`).
    RateLimited,
    /// The local rate limit filter refused the request (`429 local_rate_limited`).
    LocalRateLimited,
}

impl EnvoyReply {
    /// A short stable name, as recorded on client spans (`meshtrace.envoy.reply`).
    pub fn as_str(&self) -> &'static str {
        match self {
            EnvoyReply::NoHealthyUpstream => "no_healthy_upstream",
            EnvoyReply::ConnectFailure { .. } => "connect_failure",
            EnvoyReply::UpstreamTimeout => "upstream_timeout",
            EnvoyReply::CircuitOpen => "circuit_open",
            EnvoyReply::RateLimited => "rate_limited",
            EnvoyReply::LocalRateLimited => "local_rate_limited",
        }
    }
}

/// Who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The upstream application (the response carries `x-envoy-upstream-service-time`):
    /// its 503 is its own, not the mesh's.
    Upstream,
    /// Envoy, with what it said.
    Envoy(EnvoyReply),
    /// Nothing tells: no sidecar on the path, or a reply this crate does not know.
    Unknown,
}

impl Origin {
    /// The error a caller should see for an Envoy reply; `None` for upstream answers.
    pub fn error(&self) -> Option<MeshError> {
        match self {
            Origin::Envoy(reply) => Some(MeshError::from(reply.clone())),
            Origin::Upstream | Origin::Unknown => None,
        }
    }

    /// `upstream`, `envoy` or `unknown`, as recorded on client spans (`meshtrace.reply.origin`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Upstream => "upstream",
            Origin::Envoy(_) => "envoy",
            Origin::Unknown => "unknown",
        }
    }
}

/// What went wrong in the mesh, as a caller wants to hear it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// A circuit breaker is open: back off instead of retrying at once.
    #[error("circuit open: the sidecar's circuit breaker for the destination overflowed")]
    CircuitOpen,
    /// A rate limit refused the request.
    #[error("rate limited by the mesh{}", if *.local { " (local rate limit)" } else { "" })]
    RateLimited {
        /// The sidecar's own (local) rate limit, rather than the global service.
        local: bool,
    },
    /// The mesh's route or per-try timeout passed.
    #[error("upstream timeout: the mesh gave up waiting for the destination")]
    UpstreamTimeout,
    /// The sidecar could not connect to, or lost, the destination.
    #[error("connect failure{}", .reset_reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    ConnectFailure {
        /// Envoy's reset reason.
        reset_reason: Option<String>,
    },
    /// No healthy host to send to.
    #[error("no healthy upstream: every host of the destination is ejected or unhealthy")]
    NoHealthyUpstream,
}

impl From<EnvoyReply> for MeshError {
    fn from(reply: EnvoyReply) -> Self {
        match reply {
            EnvoyReply::NoHealthyUpstream => MeshError::NoHealthyUpstream,
            EnvoyReply::ConnectFailure { reset_reason } => {
                MeshError::ConnectFailure { reset_reason }
            }
            EnvoyReply::UpstreamTimeout => MeshError::UpstreamTimeout,
            EnvoyReply::CircuitOpen => MeshError::CircuitOpen,
            EnvoyReply::RateLimited => MeshError::RateLimited { local: false },
            EnvoyReply::LocalRateLimited => MeshError::RateLimited { local: true },
        }
    }
}

/// Classifies an HTTP response from its status, headers and (if read) body.
///
/// Without the body, the headers still tell an upstream answer, a circuit breaker and a
/// global rate limit apart; the body tells which local reply it was.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: Option<&[u8]>) -> Origin {
    if headers.contains_key(X_ENVOY_UPSTREAM_SERVICE_TIME) {
        return Origin::Upstream;
    }
    if headers
        .get(X_ENVOY_OVERLOADED)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        return Origin::Envoy(EnvoyReply::CircuitOpen);
    }
    if headers.contains_key(X_ENVOY_RATELIMITED) {
        return Origin::Envoy(EnvoyReply::RateLimited);
    }
    let text = body.map(|b| String::from_utf8_lossy(b));
    match (status.as_u16(), text.as_deref().map(str::trim)) {
        (429, Some("local_rate_limited")) => Origin::Envoy(EnvoyReply::LocalRateLimited),
        (503 | 502, Some(t)) => from_text(t),
        (504, Some("upstream request timeout")) => Origin::Envoy(EnvoyReply::UpstreamTimeout),
        _ => Origin::Unknown,
    }
}

/// Classifies a gRPC failure: Envoy puts its reply text in `grpc-message` (and the same
/// headers as for HTTP in the response head).
pub fn classify_grpc(code: GrpcCode, message: &str, headers: &HeaderMap) -> Origin {
    use GrpcCode::{DeadlineExceeded as DEADLINE_EXCEEDED, Unavailable as UNAVAILABLE};
    match classify(StatusCode::OK, headers, None) {
        Origin::Unknown => {}
        known => return known,
    }
    match (code, message.trim()) {
        (UNAVAILABLE | DEADLINE_EXCEEDED, "upstream request timeout") => {
            Origin::Envoy(EnvoyReply::UpstreamTimeout)
        }
        (UNAVAILABLE, "local_rate_limited") => Origin::Envoy(EnvoyReply::LocalRateLimited),
        (UNAVAILABLE, t) => from_text(t),
        _ => Origin::Unknown,
    }
}

fn from_text(t: &str) -> Origin {
    if t == "no healthy upstream" {
        return Origin::Envoy(EnvoyReply::NoHealthyUpstream);
    }
    match t.strip_prefix(CONNECT_ERROR) {
        Some(rest) => {
            let reason = rest
                .find(RESET_REASON)
                .map(|i| rest[i + RESET_REASON.len()..].trim().to_owned())
                .filter(|r| !r.is_empty());
            if reason.as_deref() == Some("overflow") {
                Origin::Envoy(EnvoyReply::CircuitOpen)
            } else {
                Origin::Envoy(EnvoyReply::ConnectFailure {
                    reset_reason: reason,
                })
            }
        }
        None => Origin::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn http_replies() {
        use EnvoyReply::*;
        #[rustfmt::skip]
        let cases: Vec<(u16, HeaderMap, Option<&str>, Origin)> = vec![
            (503, h(&[]), Some("no healthy upstream"), Origin::Envoy(NoHealthyUpstream)),
            (503, h(&[]), Some("upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
                Origin::Envoy(ConnectFailure { reset_reason: Some("connection failure".into()) })),
            (503, h(&[]), Some("upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111"),
                Origin::Envoy(ConnectFailure { reset_reason: Some("remote connection failure, transport failure reason: delayed connect error: 111".into()) })),
            (503, h(&[("x-envoy-overloaded", "true")]), Some("upstream connect error or disconnect/reset before headers. reset reason: overflow"), Origin::Envoy(CircuitOpen)),
            (503, h(&[]), Some("upstream connect error or disconnect/reset before headers. reset reason: overflow"), Origin::Envoy(CircuitOpen)),
            (504, h(&[]), Some("upstream request timeout"), Origin::Envoy(UpstreamTimeout)),
            (429, h(&[("x-envoy-ratelimited", "true")]), Some(""), Origin::Envoy(RateLimited)),
            (429, h(&[]), Some("local_rate_limited"), Origin::Envoy(LocalRateLimited)),
            // The application's own 503, through the sidecar.
            (503, h(&[("x-envoy-upstream-service-time", "12"), ("server", "envoy")]), Some("no healthy upstream"), Origin::Upstream),
            (200, h(&[("x-envoy-upstream-service-time", "3")]), Some("ok"), Origin::Upstream),
            // `server: envoy` alone says nothing.
            (503, h(&[("server", "envoy")]), Some("maintenance"), Origin::Unknown),
            (503, h(&[]), None, Origin::Unknown),
        ];
        for (status, headers, body, want) in cases {
            let got = classify(
                StatusCode::from_u16(status).unwrap(),
                &headers,
                body.map(str::as_bytes),
            );
            assert_eq!(got, want, "{status} {headers:?} {body:?}");
        }
    }

    #[test]
    fn grpc_replies() {
        let none = HeaderMap::new();
        assert_eq!(
            classify_grpc(GrpcCode::Unavailable, "no healthy upstream", &none),
            Origin::Envoy(EnvoyReply::NoHealthyUpstream)
        );
        assert_eq!(
            classify_grpc(
                GrpcCode::DeadlineExceeded,
                "upstream request timeout",
                &none
            ),
            Origin::Envoy(EnvoyReply::UpstreamTimeout)
        );
        assert_eq!(
            classify_grpc(GrpcCode::Unavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection termination", &none),
            Origin::Envoy(EnvoyReply::ConnectFailure { reset_reason: Some("connection termination".into()) })
        );
        assert_eq!(
            classify_grpc(GrpcCode::Unavailable, "ratings answered 503", &none),
            Origin::Unknown
        );
        assert_eq!(
            classify_grpc(GrpcCode::Internal, "no healthy upstream", &none),
            Origin::Unknown
        );
        assert_eq!(
            classify_grpc(
                GrpcCode::Unavailable,
                "x",
                &h(&[("x-envoy-upstream-service-time", "4")])
            ),
            Origin::Upstream
        );
    }

    #[test]
    fn errors_say_what_happened() {
        for (reply, text) in [
            (EnvoyReply::CircuitOpen, "circuit open"),
            (EnvoyReply::RateLimited, "rate limited"),
            (
                EnvoyReply::LocalRateLimited,
                "rate limited by the mesh (local rate limit)",
            ),
            (EnvoyReply::UpstreamTimeout, "upstream timeout"),
            (
                EnvoyReply::ConnectFailure {
                    reset_reason: Some("connection failure".into()),
                },
                "connect failure: connection failure",
            ),
        ] {
            let e = Origin::Envoy(reply).error().unwrap().to_string();
            assert!(e.starts_with(text), "{e}");
        }
        assert_eq!(Origin::Upstream.error(), None);
    }
}
