//! Retries in code, stacked on the mesh's: how many requests one call can become, and how long
//! it can take.
//!
//! meshtrace's client layers never retry. When a service needs retries in code anyway, the
//! sidecar under it retries too: Istio retries every HTTP request twice by default, so 3
//! attempts in code become 3 × 3 = 9 requests to the upstream, and up to nine times the
//! latency. [`RetryPolicy`] describes what the code does, [`MeshRetries`] what the route in
//! Istio does, and the two together give the worst case:
//!
//! ```
//! use std::time::Duration;
//! use meshtrace::check::retry::{MeshRetries, RetryPolicy};
//!
//! // The code: 3 attempts (2 retries), 2 s each.
//! let code = RetryPolicy::new().with_retries(2).with_per_attempt_timeout(Duration::from_secs(2));
//! // The VirtualService route: `retries: {attempts: 2, perTryTimeout: 1s}`, `timeout: 5s`.
//! let mesh = MeshRetries::new(2)
//!     .with_per_try_timeout(Duration::from_secs(1))
//!     .with_route_timeout(Duration::from_secs(5));
//!
//! assert_eq!(code.worst_case_attempts(&mesh), 9);
//! let amplification = code.amplification(&mesh).expect("code and mesh both retry");
//! assert_eq!(amplification.requests, 9);
//! // Each code attempt is cut at 2 s, before the sidecar is done with its 3 tries (3 s + backoff).
//! assert_eq!(code.worst_case_latency(&mesh), Some(Duration::from_secs(6)));
//! assert!(code.timeout_conflict(&mesh).is_some());
//! ```
//!
//! The advice that follows from the numbers: retry in one place (the mesh), and keep the
//! code's timeout a little above the mesh's, so the sidecar's retries and its `504` get to
//! happen before the code gives up.
//!
//! Where the numbers come from:
//!
//! - Istio's route `retries` ([`HTTPRetry`]): `attempts` counts *retries* (the first try is
//!   extra); unset `retries` means Istio's default policy, 2 retries on
//!   `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with 503 as
//!   the retriable status code; `attempts: 0` turns retries off; a `retries` block without
//!   `retryOn` keeps the default conditions, and one without `attempts` retries nothing (istio/istio
//!   `pilot/pkg/networking/core/route/retry/retry.go`, `DefaultPolicy` and `ConvertPolicy`).
//! - `perTryTimeout` defaults to the route `timeout`; the route `timeout` is disabled unless
//!   set, and covers all the tries together (Istio `HTTPRoute.timeout`, "default is
//!   disabled"; Envoy router docs, "the route timeout … includes all retries").
//! - Envoy waits before each retry: fully jittered exponential back-off, retry `N` waits less
//!   than `(2^N − 1) × base`, capped at 10 × base; base 25 ms unless `retries.backoff` sets it
//!   (Envoy router filter docs, "x-envoy-retry-on"; `config.core.v3.BackoffStrategy`).
//!
//! [`HTTPRetry`]: https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRetry

mod retry_on;
mod route;

pub use retry_on::{RetryCondition, RetryOn};
pub use route::{MeshRetries, PerTryOverrun};

use std::time::Duration;

/// Envoy's default base interval between retries (`retry_back_off.base_interval`).
pub const ENVOY_DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// Istio's default number of retries for a route that sets no `retries`.
pub const ISTIO_DEFAULT_RETRIES: u32 = 2;

/// Istio's default `retryOn` for a route that sets no `retries` (or sets `retries` without
/// `retryOn`), with 503 as the retriable status code.
pub const ISTIO_DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,503";

/// A retry setting that cannot describe a real policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    /// A back-off multiplier below 1 (delays would shrink) or not a finite number.
    #[error("back-off multiplier {0} must be a finite number of at least 1")]
    Multiplier(f64),
    /// A back-off whose maximum delay is shorter than its first delay.
    #[error("back-off max {max:?} is shorter than its initial delay {initial:?}")]
    MaxBelowInitial {
        /// The first delay.
        initial: Duration,
        /// The cap.
        max: Duration,
    },
    /// A `retryOn` entry that is neither an Envoy retry condition nor an HTTP status code.
    #[error("`{0}` is not a retry condition Istio accepts (see Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on)")]
    UnknownCondition(String),
}

/// The delays the code waits between its attempts: exponential, capped.
///
/// The worst case assumes no jitter shortens a delay: retry `k` (1-based) waits
/// `initial × multiplier^(k−1)`, at most `max`.
///
/// ```
/// use std::time::Duration;
/// use meshtrace::check::retry::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1), 2.0)?;
/// assert_eq!(backoff.delay_before_retry(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay_before_retry(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay_before_retry(9), Duration::from_secs(1));
/// assert_eq!(Backoff::none().delay_before_retry(1), Duration::ZERO);
/// # Ok::<(), meshtrace::check::retry::RetryError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
}

impl Backoff {
    /// No delay between attempts.
    pub const fn none() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 1.0,
        }
    }

    /// The same delay before every retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use meshtrace::check::retry::Backoff;
    /// assert_eq!(Backoff::fixed(Duration::from_millis(50)).delay_before_retry(4), Duration::from_millis(50));
    /// ```
    pub const fn fixed(delay: Duration) -> Self {
        Backoff {
            initial: delay,
            max: delay,
            multiplier: 1.0,
        }
    }

    /// `initial`, then `multiplier` times the previous delay, never more than `max`.
    ///
    /// # Errors
    ///
    /// [`RetryError::Multiplier`] for a multiplier below 1 or not finite,
    /// [`RetryError::MaxBelowInitial`] when `max < initial`.
    pub fn exponential(
        initial: Duration,
        max: Duration,
        multiplier: f64,
    ) -> Result<Self, RetryError> {
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(RetryError::Multiplier(multiplier));
        }
        if max < initial {
            return Err(RetryError::MaxBelowInitial { initial, max });
        }
        Ok(Backoff {
            initial,
            max,
            multiplier,
        })
    }

    /// The longest the code waits before retry `retry` (1 = the first retry); zero for 0.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        if retry == 0 || self.initial.is_zero() {
            return Duration::ZERO;
        }
        let factor = self
            .multiplier
            .powi(i32::try_from(retry - 1).unwrap_or(i32::MAX));
        let delay = self.initial.as_secs_f64() * factor;
        if !delay.is_finite() || delay >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(delay)
        }
    }

    /// The longest total wait across `retries` retries.
    pub fn total(&self, retries: u32) -> Duration {
        (1..=retries).map(|k| self.delay_before_retry(k)).sum()
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::none()
    }
}

/// What the application's own code does when a call fails: how often it retries, how long it
/// waits for each attempt and in total, and how long it waits between attempts.
///
/// The default is what meshtrace recommends behind a sidecar: one attempt, retries left to
/// the mesh.
///
/// ```
/// use std::time::Duration;
/// use meshtrace::check::retry::{MeshRetries, RetryPolicy};
///
/// let code = RetryPolicy::new().with_per_attempt_timeout(Duration::from_millis(5500));
/// let mesh = MeshRetries::istio_default().with_route_timeout(Duration::from_secs(5));
/// assert_eq!(code.attempts(), 1);
/// assert!(code.amplification(&mesh).is_none());
/// assert!(code.timeout_conflict(&mesh).is_none()); // 5.5 s is above the mesh's 5 s
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RetryPolicy {
    retries: u32,
    per_attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    backoff: Backoff,
}

impl RetryPolicy {
    /// One attempt, no timeout, no back-off.
    pub fn new() -> Self {
        RetryPolicy::default()
    }

    /// Retries after the first attempt (so `retries + 1` attempts).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The timeout of each request the code sends.
    pub fn with_per_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.per_attempt_timeout = Some(timeout);
        self
    }

    /// A budget for the whole call, attempts and back-off together.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The delays between attempts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Attempts in total: `retries + 1`.
    pub fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The timeout of each request, if the code sets one.
    pub fn per_attempt_timeout(&self) -> Option<Duration> {
        self.per_attempt_timeout
    }

    /// The budget for the whole call, if the code sets one.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The delays between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// How long the code waits for one request before it gives up on it: the shorter of the
    /// per-attempt timeout and the deadline.
    pub fn effective_timeout(&self) -> Option<Duration> {
        min_opt(self.per_attempt_timeout, self.deadline)
    }

    /// Requests that can reach the upstream for one call: the code's attempts times the
    /// sidecar's tries for each of them. Tries that fail fast (refused connections, 503s) all
    /// run even when timeouts would cut slow ones short, so this is the product.
    ///
    /// ```
    /// use meshtrace::check::retry::{MeshRetries, RetryPolicy};
    /// // The seed's example: 3 attempts in code on top of 3 tries in the mesh.
    /// assert_eq!(RetryPolicy::new().with_retries(2).worst_case_attempts(&MeshRetries::new(2)), 9);
    /// ```
    pub fn worst_case_attempts(&self, mesh: &MeshRetries) -> u64 {
        u64::from(self.attempts()) * u64::from(mesh.tries())
    }

    /// The longest one call can take: each attempt lasts until the code's timeout or the
    /// mesh's worst case, whichever is shorter; then the code's back-off; all of it capped by
    /// the deadline. `None` when nothing bounds it (no timeout in the code, none in the mesh).
    ///
    /// ```
    /// use std::time::Duration;
    /// use meshtrace::check::retry::{MeshRetries, RetryPolicy};
    ///
    /// let mesh = MeshRetries::new(2).with_route_timeout(Duration::from_secs(5));
    /// let code = RetryPolicy::new().with_retries(2);
    /// assert_eq!(code.worst_case_latency(&mesh), Some(Duration::from_secs(15)));
    /// assert_eq!(code.worst_case_latency(&MeshRetries::new(2)), None);
    /// ```
    pub fn worst_case_latency(&self, mesh: &MeshRetries) -> Option<Duration> {
        let per_attempt = min_opt(self.per_attempt_timeout, mesh.worst_case_latency());
        let total = per_attempt.map(|one| {
            one.saturating_mul(self.attempts())
                .saturating_add(self.backoff.total(self.retries))
        });
        min_opt(total, self.deadline)
    }

    /// `Some` when the code and the mesh both retry, so each multiplies the other.
    pub fn amplification(&self, mesh: &MeshRetries) -> Option<Amplification> {
        (self.retries > 0 && mesh.retries() > 0).then(|| Amplification {
            code_attempts: self.attempts(),
            mesh_tries: mesh.tries(),
            requests: self.worst_case_attempts(mesh),
            worst_case_latency: self.worst_case_latency(mesh),
            mesh_worst_case_latency: mesh.worst_case_latency(),
        })
    }

    /// `Some` when the code gives up on a request no later than the mesh would: the sidecar's
    /// remaining retries, and its own timeout answer, never reach the code. Nothing is
    /// reported when the mesh sets no bound at all (no route timeout and no per-try timeout):
    /// then the code's timeout is the only one, as it should be.
    ///
    /// Equal timeouts count as a conflict: both fire at the same moment and which one wins
    /// is a race.
    pub fn timeout_conflict(&self, mesh: &MeshRetries) -> Option<TimeoutConflict> {
        let code = self.effective_timeout()?;
        let mesh_budget = mesh.worst_case_latency()?;
        (code <= mesh_budget).then_some(TimeoutConflict { code, mesh_budget })
    }
}

/// The code's retries multiplied by the mesh's: see [`RetryPolicy::amplification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Amplification {
    /// Attempts the code makes.
    pub code_attempts: u32,
    /// Tries the sidecar makes for each of them.
    pub mesh_tries: u32,
    /// Requests that can reach the upstream for one call.
    pub requests: u64,
    /// The longest the call can take with both layers retrying (`None`: unbounded).
    pub worst_case_latency: Option<Duration>,
    /// The longest one request through the sidecar can take (`None`: unbounded).
    pub mesh_worst_case_latency: Option<Duration>,
}

/// The code's timeout is not above the mesh's: see [`RetryPolicy::timeout_conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutConflict {
    /// How long the code waits for one request.
    pub code: Duration,
    /// How long the sidecar may take for it, retries included.
    pub mesh_budget: Duration,
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn seed_example_three_by_three() {
        let code = RetryPolicy::new().with_retries(2);
        let mesh = MeshRetries::new(2).with_route_timeout(S(5));
        assert_eq!(code.worst_case_attempts(&mesh), 9);
        // Three code attempts, each waiting out the mesh's 5 s.
        assert_eq!(code.worst_case_latency(&mesh), Some(S(15)));
    }

    #[test]
    fn mesh_latency_uses_per_try_and_backoff_when_shorter_than_route() {
        let mesh = MeshRetries::new(2)
            .with_per_try_timeout(S(1))
            .with_route_timeout(S(10));
        // 3 × 1 s + 25 ms + 75 ms.
        assert_eq!(mesh.worst_case_latency(), Some(MS(3100)));
        let no_route = MeshRetries::new(3).with_per_try_timeout(S(1));
        assert_eq!(
            no_route.worst_case_latency(),
            Some(MS(4000 + 25 + 75 + 175))
        );
        assert_eq!(MeshRetries::istio_default().worst_case_latency(), None);
    }

    #[test]
    fn custom_backoff_base_caps_at_ten_times() {
        let mesh = MeshRetries::new(6).with_backoff_base(MS(100));
        let waits: Vec<Duration> = (1..=6).map(|k| mesh.backoff_before_retry(k)).collect();
        assert_eq!(waits, [MS(100), MS(300), MS(700), S(1), S(1), S(1)]);
        assert_eq!(mesh.backoff_before_retry(40), S(1));
    }

    #[test]
    fn overrun_counts_tries_that_can_start() {
        let exact = MeshRetries::new(2)
            .with_per_try_timeout(S(2))
            .with_route_timeout(S(6));
        assert_eq!(exact.per_try_overrun(), None);
        let cut = MeshRetries::new(2)
            .with_per_try_timeout(S(2))
            .with_route_timeout(S(5));
        let o = cut.per_try_overrun().unwrap();
        assert_eq!(
            (o.tries, o.tries_that_can_start, o.last_try_gets),
            (3, 3, S(1))
        );
        let never = MeshRetries::new(4)
            .with_per_try_timeout(S(2))
            .with_route_timeout(S(5));
        let o = never.per_try_overrun().unwrap();
        assert_eq!((o.tries, o.tries_that_can_start, o.total), (5, 3, S(10)));
        // No retries: the per-try timeout is moot.
        let single = MeshRetries::disabled()
            .with_per_try_timeout(S(9))
            .with_route_timeout(S(5));
        assert_eq!(single.per_try_overrun(), None);
    }

    #[test]
    fn timeout_conflict_includes_equal_and_ignores_unbounded_mesh() {
        let mesh = MeshRetries::istio_default().with_route_timeout(S(5));
        let equal = RetryPolicy::new().with_per_attempt_timeout(S(5));
        assert_eq!(
            equal.timeout_conflict(&mesh),
            Some(TimeoutConflict {
                code: S(5),
                mesh_budget: S(5)
            })
        );
        let deadline_shorter = RetryPolicy::new()
            .with_per_attempt_timeout(S(9))
            .with_deadline(S(3));
        assert_eq!(deadline_shorter.timeout_conflict(&mesh).unwrap().code, S(3));
        let above = RetryPolicy::new().with_per_attempt_timeout(S(6));
        assert_eq!(above.timeout_conflict(&mesh), None);
        assert_eq!(equal.timeout_conflict(&MeshRetries::istio_default()), None);
    }

    #[test]
    fn code_backoff_and_deadline_in_latency() {
        let backoff = Backoff::exponential(MS(100), MS(300), 2.0).unwrap();
        let code = RetryPolicy::new()
            .with_retries(3)
            .with_per_attempt_timeout(S(1))
            .with_backoff(backoff);
        let mesh = MeshRetries::disabled();
        // 4 × 1 s + 100 + 200 + 300 ms.
        assert_eq!(code.worst_case_latency(&mesh), Some(MS(4600)));
        assert_eq!(
            code.with_deadline(S(2)).worst_case_latency(&mesh),
            Some(S(2))
        );
        assert_eq!(
            RetryPolicy::new()
                .with_deadline(S(7))
                .worst_case_latency(&mesh),
            Some(S(7))
        );
        assert!(code.amplification(&mesh).is_none());
    }

    #[test]
    fn bad_backoff_is_an_error() {
        assert_eq!(
            Backoff::exponential(S(1), S(2), 0.5),
            Err(RetryError::Multiplier(0.5))
        );
        assert!(Backoff::exponential(S(1), S(2), f64::NAN).is_err());
        assert!(matches!(
            Backoff::exponential(S(2), S(1), 2.0),
            Err(RetryError::MaxBelowInitial { .. })
        ));
        // Huge exponents saturate at the cap instead of overflowing.
        let b = Backoff::exponential(MS(1), S(60), 10.0).unwrap();
        assert_eq!(b.delay_before_retry(u32::MAX), S(60));
    }
}
