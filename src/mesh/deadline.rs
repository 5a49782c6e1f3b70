//! The deadline budget: how long the request being handled may still take, read where the
//! request came in and carried along like the trace, so that the calls made while handling it
//! never outlive it.
//!
//! At the server, two headers state the budget (SPECS.md section 5):
//! - `grpc-timeout`: the caller's gRPC deadline, as 1–8 digits and a unit
//!   (`H`ours, `M`inutes, `S`econds, `m`illis, `u`micros, `n`anos);
//! - `x-envoy-expected-rq-timeout-ms`: the time the sidecar will wait for this request (the
//!   smaller of its per-try timeout and what is left of the route timeout).
//!
//! The tighter one wins. The server layer stores the resulting [`Deadline`] in the request's
//! [`Context`]; the client layers cap every call at the time left (less a margin), send
//! `grpc-timeout` on gRPC calls, and fail fast with [`BudgetExhausted`] when nothing is left.
//!
//! ```
//! use meshtrace::mesh::deadline::{parse_grpc_timeout, Deadline};
//! use std::time::{Duration, Instant};
//!
//! assert_eq!(parse_grpc_timeout(b"250m"), Ok(Duration::from_millis(250)));
//! let mut headers = http::HeaderMap::new();
//! headers.insert("grpc-timeout", "2S".parse().unwrap());
//! headers.insert("x-envoy-expected-rq-timeout-ms", "1500".parse().unwrap());
//! let now = Instant::now();
//! let deadline = Deadline::from_headers(&headers, now).unwrap().unwrap();
//! assert_eq!(deadline.remaining_at(now), Duration::from_millis(1500));
//! ```

use http::{HeaderMap, HeaderName};
use opentelemetry::Context;
use std::fmt;
use std::time::{Duration, Instant};

/// `grpc-timeout`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `x-envoy-expected-rq-timeout-ms`.
pub const X_ENVOY_EXPECTED_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// Where a deadline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadlineSource {
    /// The caller's `grpc-timeout`.
    GrpcTimeout,
    /// The sidecar's `x-envoy-expected-rq-timeout-ms`.
    EnvoyExpectedTimeout,
}

/// A budget header that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlineError {
    /// `grpc-timeout` is not 1–8 digits followed by one of `HMSmun`.
    #[error("grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n)")]
    GrpcTimeout,
    /// `x-envoy-expected-rq-timeout-ms` is not a whole number of milliseconds.
    #[error("x-envoy-expected-rq-timeout-ms must be a whole number of milliseconds")]
    EnvoyExpectedTimeout,
}

/// The point in time by which the request being handled must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    source: DeadlineSource,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn new(at: Instant, source: DeadlineSource) -> Self {
        Deadline { at, source }
    }

    /// The tighter of `grpc-timeout` and `x-envoy-expected-rq-timeout-ms`, counted from
    /// `now`. `Ok(None)` when neither is present; an error when a present one is malformed
    /// and the other one is absent (a malformed one next to a valid one is ignored).
    pub fn from_headers(
        headers: &HeaderMap,
        now: Instant,
    ) -> Result<Option<Deadline>, DeadlineError> {
        let grpc = headers
            .get(GRPC_TIMEOUT)
            .map(|v| parse_grpc_timeout(v.as_bytes()));
        let envoy = headers
            .get(X_ENVOY_EXPECTED_RQ_TIMEOUT_MS)
            .map(|v| parse_expected_rq_timeout_ms(v.as_bytes()));
        let candidates = [
            grpc.clone()
                .and_then(Result::ok)
                .map(|d| (d, DeadlineSource::GrpcTimeout)),
            envoy
                .clone()
                .and_then(Result::ok)
                .map(|d| (d, DeadlineSource::EnvoyExpectedTimeout)),
        ];
        match candidates.into_iter().flatten().min_by_key(|(d, _)| *d) {
            Some((d, source)) => Ok(Some(Deadline {
                at: now
                    .checked_add(d)
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600)),
                source,
            })),
            None => match (grpc, envoy) {
                (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
                _ => Ok(None),
            },
        }
    }

    /// When the request must be answered.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Which header set it.
    pub fn source(&self) -> DeadlineSource {
        self.source
    }

    /// The time left now (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// The time left at `now`.
    pub fn remaining_at(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// The time an outgoing call may take: what is left less `margin` (time for the answer
    /// to travel back), or [`BudgetExhausted`] when that is nothing.
    pub fn budget_for_call(&self, margin: Duration) -> Result<Duration, BudgetExhausted> {
        let left = self.remaining();
        match left.checked_sub(margin) {
            Some(budget) if !budget.is_zero() => Ok(budget),
            _ => Err(BudgetExhausted {
                remaining: left,
                margin,
                set_by: self.source,
            }),
        }
    }
}

/// An outgoing call was not sent: the request being handled has no time left for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct BudgetExhausted {
    /// What was left of the deadline.
    pub remaining: Duration,
    /// The margin kept for the answer to travel back.
    pub margin: Duration,
    /// Which header set the deadline.
    pub set_by: DeadlineSource,
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match self.set_by {
            DeadlineSource::GrpcTimeout => "grpc-timeout",
            DeadlineSource::EnvoyExpectedTimeout => "x-envoy-expected-rq-timeout-ms",
        };
        write!(
            f,
            "deadline budget exhausted: {:?} left of the request's deadline (from {from}), {:?} kept as margin; the call was not sent",
            self.remaining, self.margin
        )
    }
}

/// Read the [`Deadline`] of a [`Context`].
pub trait DeadlineExt {
    /// The deadline of the request this context belongs to, if it came with one.
    fn deadline(&self) -> Option<Deadline>;
    /// This context with `deadline`.
    fn with_deadline(&self, deadline: Deadline) -> Context;
}

impl DeadlineExt for Context {
    fn deadline(&self) -> Option<Deadline> {
        self.get::<Deadline>().copied()
    }

    fn with_deadline(&self, deadline: Deadline) -> Context {
        self.with_value(deadline)
    }
}

/// The deadline of the request being handled, read from the current `tracing` span (which
/// the server layer gives the request's context), if it came with one.
///
/// ```no_run
/// # async fn handler() {
/// if let Some(deadline) = meshtrace::mesh::deadline::current() {
///     if deadline.remaining() < std::time::Duration::from_millis(50) {
///         // Not enough time for the expensive path: answer from the cache.
///     }
/// }
/// # }
/// ```
#[cfg(feature = "tower")]
pub fn current() -> Option<Deadline> {
    crate::instrument::context_of(&tracing::Span::current()).deadline()
}

/// Parses a `grpc-timeout` value (`TimeoutValue TimeoutUnit`, at most 8 digits).
pub fn parse_grpc_timeout(v: &[u8]) -> Result<Duration, DeadlineError> {
    let (unit, digits) = v.split_last().ok_or(DeadlineError::GrpcTimeout)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DeadlineError::GrpcTimeout);
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(DeadlineError::GrpcTimeout),
    })
}

/// Writes `d` as a `grpc-timeout` value: the finest unit whose count fits in 8 digits,
/// rounded up so the callee never gets more time than the caller has.
pub fn format_grpc_timeout(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = d.as_nanos();
    for (unit, per) in [
        ('n', 1u128),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
        ('H', 3_600_000_000_000),
    ] {
        let count = nanos.div_ceil(per);
        if count <= MAX {
            return format!("{count}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Parses `x-envoy-expected-rq-timeout-ms`.
pub fn parse_expected_rq_timeout_ms(v: &[u8]) -> Result<Duration, DeadlineError> {
    let s = std::str::from_utf8(v).map_err(|_| DeadlineError::EnvoyExpectedTimeout)?;
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| DeadlineError::EnvoyExpectedTimeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const GRPC: &[(&str, Option<Duration>)] = &[
        ("1S",        Some(Duration::from_secs(1))),
        ("250m",      Some(Duration::from_millis(250))),
        ("2H",        Some(Duration::from_secs(7200))),
        ("3M",        Some(Duration::from_secs(180))),
        ("99999999u", Some(Duration::from_micros(99_999_999))),
        ("7n",        Some(Duration::from_nanos(7))),
        ("0m",        Some(Duration::ZERO)),
        ("123456789m", None),
        ("m",         None),
        ("",          None),
        ("1s",        None),
        ("1.5S",      None),
        ("-1S",       None),
        (" 1S",       None),
    ];

    #[test]
    fn grpc_timeout_values() {
        for (v, want) in GRPC {
            assert_eq!(parse_grpc_timeout(v.as_bytes()).ok(), *want, "{v:?}");
        }
    }

    #[test]
    fn grpc_timeout_round_trips_rounding_up() {
        for d in [
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(100),
            Duration::from_secs(100_000_000),
            Duration::new(3, 1),
        ] {
            let back = parse_grpc_timeout(format_grpc_timeout(d).as_bytes()).unwrap();
            assert!(back >= d, "{d:?} -> {back:?}");
            assert!(
                back - d < d / 1000 + Duration::from_nanos(1000),
                "{d:?} -> {back:?}"
            );
        }
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
    }

    #[test]
    fn the_tighter_header_wins() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        assert_eq!(Deadline::from_headers(&h, now), Ok(None));
        h.insert(X_ENVOY_EXPECTED_RQ_TIMEOUT_MS, "800".parse().unwrap());
        let d = Deadline::from_headers(&h, now).unwrap().unwrap();
        assert_eq!(
            (d.remaining_at(now), d.source()),
            (
                Duration::from_millis(800),
                DeadlineSource::EnvoyExpectedTimeout
            )
        );
        h.insert(GRPC_TIMEOUT, "500m".parse().unwrap());
        let d = Deadline::from_headers(&h, now).unwrap().unwrap();
        assert_eq!(
            (d.remaining_at(now), d.source()),
            (Duration::from_millis(500), DeadlineSource::GrpcTimeout)
        );
        // A malformed header next to a valid one is ignored; alone, it is an error.
        h.insert(GRPC_TIMEOUT, "soon".parse().unwrap());
        assert_eq!(
            Deadline::from_headers(&h, now).unwrap().unwrap().source(),
            DeadlineSource::EnvoyExpectedTimeout
        );
        h.remove(X_ENVOY_EXPECTED_RQ_TIMEOUT_MS);
        assert_eq!(
            Deadline::from_headers(&h, now),
            Err(DeadlineError::GrpcTimeout)
        );
    }

    #[test]
    fn budget_for_a_call() {
        let d = Deadline::new(
            Instant::now() + Duration::from_secs(10),
            DeadlineSource::GrpcTimeout,
        );
        let b = d.budget_for_call(Duration::from_millis(5)).unwrap();
        assert!(b <= Duration::from_secs(10) - Duration::from_millis(5));
        let past = Deadline::new(Instant::now(), DeadlineSource::EnvoyExpectedTimeout);
        let e = past.budget_for_call(Duration::from_millis(5)).unwrap_err();
        assert_eq!(e.set_by, DeadlineSource::EnvoyExpectedTimeout);
        assert!(e.to_string().contains("not sent"));
    }
}
