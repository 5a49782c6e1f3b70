//! Istio's `retryOn`: the conditions under which the sidecar retries.

use super::{RetryError, ISTIO_DEFAULT_RETRY_ON};
use std::fmt;
use std::str::FromStr;

/// One condition of Istio's `retryOn` (Envoy's `x-envoy-retry-on` and
/// `x-envoy-retry-grpc-on` policies), or an HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RetryCondition {
    /// `5xx`: any 5xx response, and resets and timeouts.
    FiveXx,
    /// `gateway-error`: 502, 503, 504.
    GatewayError,
    /// `reset`: the upstream did not answer (disconnect, reset, read timeout).
    Reset,
    /// `reset-before-request`: a reset before the request was sent upstream.
    ResetBeforeRequest,
    /// `connect-failure`: the connection to the upstream was never made.
    ConnectFailure,
    /// `envoy-ratelimited`: an Envoy rate limiter answered (`x-envoy-ratelimited`).
    EnvoyRateLimited,
    /// `retriable-4xx`: 409.
    Retriable4xx,
    /// `refused-stream`: the upstream refused the HTTP/2 stream (`REFUSED_STREAM`).
    RefusedStream,
    /// `retriable-status-codes`: the listed status codes.
    RetriableStatusCodes,
    /// `retriable-headers`: responses carrying configured headers.
    RetriableHeaders,
    /// `http3-post-connect-failure`: an HTTP/3 request that failed after connecting.
    Http3PostConnectFailure,
    /// gRPC `cancelled`.
    Cancelled,
    /// gRPC `deadline-exceeded`.
    DeadlineExceeded,
    /// gRPC `internal`.
    Internal,
    /// gRPC `resource-exhausted`.
    ResourceExhausted,
    /// gRPC `unavailable`.
    Unavailable,
}

impl RetryCondition {
    const ALL: [RetryCondition; 16] = [
        RetryCondition::FiveXx,
        RetryCondition::GatewayError,
        RetryCondition::Reset,
        RetryCondition::ResetBeforeRequest,
        RetryCondition::ConnectFailure,
        RetryCondition::EnvoyRateLimited,
        RetryCondition::Retriable4xx,
        RetryCondition::RefusedStream,
        RetryCondition::RetriableStatusCodes,
        RetryCondition::RetriableHeaders,
        RetryCondition::Http3PostConnectFailure,
        RetryCondition::Cancelled,
        RetryCondition::DeadlineExceeded,
        RetryCondition::Internal,
        RetryCondition::ResourceExhausted,
        RetryCondition::Unavailable,
    ];

    /// The name as written in `retryOn`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryCondition::FiveXx => "5xx",
            RetryCondition::GatewayError => "gateway-error",
            RetryCondition::Reset => "reset",
            RetryCondition::ResetBeforeRequest => "reset-before-request",
            RetryCondition::ConnectFailure => "connect-failure",
            RetryCondition::EnvoyRateLimited => "envoy-ratelimited",
            RetryCondition::Retriable4xx => "retriable-4xx",
            RetryCondition::RefusedStream => "refused-stream",
            RetryCondition::RetriableStatusCodes => "retriable-status-codes",
            RetryCondition::RetriableHeaders => "retriable-headers",
            RetryCondition::Http3PostConnectFailure => "http3-post-connect-failure",
            RetryCondition::Cancelled => "cancelled",
            RetryCondition::DeadlineExceeded => "deadline-exceeded",
            RetryCondition::Internal => "internal",
            RetryCondition::ResourceExhausted => "resource-exhausted",
            RetryCondition::Unavailable => "unavailable",
        }
    }

    /// Whether a retry on this condition can only happen when the upstream application never
    /// saw the request, so it is safe for a non-idempotent one (POST, PATCH):
    ///
    /// - `connect-failure`: no connection, nothing was sent;
    /// - `refused-stream`: HTTP/2 `REFUSED_STREAM` means the server did no processing
    ///   (RFC 9113, section 8.7);
    /// - `reset-before-request`: Envoy's subset of `reset` for resets before the request was
    ///   sent upstream, added for exactly this case (envoyproxy/envoy#10007);
    /// - `envoy-ratelimited`: a rate limiter in front of the application answered.
    ///
    /// Every other condition fires on an answer (or silence) that can come after the
    /// application acted on the request: a 5xx or 409 answer, a reset or timeout mid-request,
    /// and the gRPC statuses (gRPC itself warns that `UNAVAILABLE` is not always safe to
    /// retry for non-idempotent methods).
    pub fn is_safe_for_non_idempotent(&self) -> bool {
        matches!(
            self,
            RetryCondition::ConnectFailure
                | RetryCondition::RefusedStream
                | RetryCondition::ResetBeforeRequest
                | RetryCondition::EnvoyRateLimited
        )
    }
}

impl fmt::Display for RetryCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetryCondition {
    type Err = RetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RetryCondition::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| RetryError::UnknownCondition(s.to_owned()))
    }
}

/// Istio's `retryOn`: Envoy retry conditions and HTTP status codes, comma-separated.
///
/// Status codes imply `retriable-status-codes`, as Istio adds it for them.
///
/// ```
/// use meshtrace::check::retry::{RetryCondition, RetryOn};
///
/// let safe: RetryOn = "connect-failure,refused-stream".parse()?;
/// assert!(safe.unsafe_for_non_idempotent().is_empty());
///
/// let risky: RetryOn = "gateway-error,connect-failure,503".parse()?;
/// assert_eq!(risky.status_codes(), &[503]);
/// assert_eq!(risky.unsafe_for_non_idempotent(), ["gateway-error", "retriable-status-codes (503)"]);
/// assert!("5xxx".parse::<RetryOn>().is_err());
/// # Ok::<(), meshtrace::check::retry::RetryError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    conditions: Vec<RetryCondition>,
    status_codes: Vec<u16>,
}

impl RetryOn {
    /// Istio's default: [`ISTIO_DEFAULT_RETRY_ON`].
    pub fn istio_default() -> Self {
        ISTIO_DEFAULT_RETRY_ON
            .parse()
            .expect("Istio's default retryOn parses")
    }

    /// The conditions, in the order written, without duplicates.
    pub fn conditions(&self) -> &[RetryCondition] {
        &self.conditions
    }

    /// The retriable status codes.
    pub fn status_codes(&self) -> &[u16] {
        &self.status_codes
    }

    /// The conditions that can retry a request the upstream application already saw (see
    /// [`RetryCondition::is_safe_for_non_idempotent`]), as written. `retriable-status-codes`
    /// with no status code retries nothing and is left out.
    pub fn unsafe_for_non_idempotent(&self) -> Vec<String> {
        self.conditions
            .iter()
            .filter(|c| !c.is_safe_for_non_idempotent())
            .filter_map(|c| match c {
                RetryCondition::RetriableStatusCodes if self.status_codes.is_empty() => None,
                RetryCondition::RetriableStatusCodes => {
                    let codes: Vec<String> = self.status_codes.iter().map(u16::to_string).collect();
                    Some(format!("{c} ({})", codes.join(",")))
                }
                c => Some(c.to_string()),
            })
            .collect()
    }
}

impl FromStr for RetryOn {
    type Err = RetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut conditions = Vec::new();
        let mut status_codes = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // Istio takes any integer that is an HTTP status code as one (retry.go, parseRetryOn).
            if let Ok(code) = part.parse::<u16>() {
                if (100..600).contains(&code) {
                    if !status_codes.contains(&code) {
                        status_codes.push(code);
                    }
                    continue;
                }
            }
            let condition: RetryCondition = part.parse()?;
            if !conditions.contains(&condition) {
                conditions.push(condition);
            }
        }
        if !status_codes.is_empty() && !conditions.contains(&RetryCondition::RetriableStatusCodes) {
            conditions.push(RetryCondition::RetriableStatusCodes);
        }
        Ok(RetryOn {
            conditions,
            status_codes,
        })
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let names = self.conditions.iter().map(|c| c.to_string());
        let codes = self.status_codes.iter().map(|c| c.to_string());
        for part in names.chain(codes) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(&part)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_parsing_follows_istio() {
        let default = RetryOn::istio_default();
        assert_eq!(default.to_string(), ISTIO_DEFAULT_RETRY_ON);
        assert_eq!(
            default.unsafe_for_non_idempotent(),
            ["unavailable", "cancelled", "retriable-status-codes (503)"]
        );
        let codes: RetryOn = " 503 , 504,connect-failure".parse().unwrap();
        assert_eq!(
            codes.to_string(),
            "connect-failure,retriable-status-codes,503,504"
        );
        let empty_codes: RetryOn = "retriable-status-codes,refused-stream".parse().unwrap();
        assert!(empty_codes.unsafe_for_non_idempotent().is_empty());
        assert_eq!(
            "reset,bogus".parse::<RetryOn>(),
            Err(RetryError::UnknownCondition("bogus".into()))
        );
        assert!("700".parse::<RetryOn>().is_err());
    }
}
