//! What the route in Istio does: its retries, per-try timeout and route timeout.

use super::{min_opt, RetryOn, ENVOY_DEFAULT_BACKOFF_BASE, ISTIO_DEFAULT_RETRIES};
use std::time::Duration;

/// What the sidecar does with one request on an Istio route: the route's `retries` and
/// `timeout`.
///
/// ```
/// use std::time::Duration;
/// use meshtrace::check::retry::MeshRetries;
///
/// // `retries: {attempts: 3, perTryTimeout: 2s}`, `timeout: 5s`
/// let mesh = MeshRetries::new(3)
///     .with_per_try_timeout(Duration::from_secs(2))
///     .with_route_timeout(Duration::from_secs(5));
/// assert_eq!(mesh.tries(), 4);
/// assert_eq!(mesh.worst_case_latency(), Some(Duration::from_secs(5)));
/// let overrun = mesh.per_try_overrun().expect("4 × 2 s > 5 s");
/// assert_eq!(overrun.tries_that_can_start, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MeshRetries {
    retries: u32,
    per_try_timeout: Option<Duration>,
    route_timeout: Option<Duration>,
    retry_on: RetryOn,
    backoff_base: Duration,
}

impl MeshRetries {
    /// A route with no `retries` field: Istio's default policy, 2 retries on
    /// [`ISTIO_DEFAULT_RETRY_ON`], no timeouts.
    pub fn istio_default() -> Self {
        MeshRetries::new(ISTIO_DEFAULT_RETRIES)
    }

    /// `retries: {attempts: 0}`: the sidecar tries once.
    pub fn disabled() -> Self {
        MeshRetries::new(0)
    }

    /// `retries: {attempts: N}` with Istio's default conditions and no timeouts.
    pub fn new(retries: u32) -> Self {
        MeshRetries {
            retries,
            per_try_timeout: None,
            route_timeout: None,
            retry_on: RetryOn::istio_default(),
            backoff_base: ENVOY_DEFAULT_BACKOFF_BASE,
        }
    }

    /// `retries.perTryTimeout`.
    pub fn with_per_try_timeout(mut self, timeout: Duration) -> Self {
        self.per_try_timeout = Some(timeout);
        self
    }

    /// The route's `timeout`, which covers all tries together.
    pub fn with_route_timeout(mut self, timeout: Duration) -> Self {
        self.route_timeout = Some(timeout);
        self
    }

    /// `retries.retryOn`.
    pub fn with_retry_on(mut self, retry_on: RetryOn) -> Self {
        self.retry_on = retry_on;
        self
    }

    /// `retries.backoff`: the base interval of Envoy's back-off (default 25 ms).
    pub fn with_backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Retries after the first try (Istio's `retries.attempts`).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Tries in total: `retries + 1`.
    pub fn tries(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// `retries.perTryTimeout`, if set.
    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.per_try_timeout
    }

    /// The route's `timeout`, if set.
    pub fn route_timeout(&self) -> Option<Duration> {
        self.route_timeout
    }

    /// The conditions the sidecar retries on.
    pub fn retry_on(&self) -> &RetryOn {
        &self.retry_on
    }

    /// The longest Envoy waits before retry `retry` (1-based): `(2^retry − 1) × base`, at
    /// most 10 × base.
    ///
    /// ```
    /// use std::time::Duration;
    /// use meshtrace::check::retry::MeshRetries;
    /// let mesh = MeshRetries::istio_default();
    /// assert_eq!(mesh.backoff_before_retry(1), Duration::from_millis(25));
    /// assert_eq!(mesh.backoff_before_retry(2), Duration::from_millis(75));
    /// assert_eq!(mesh.backoff_before_retry(5), Duration::from_millis(250));
    /// ```
    pub fn backoff_before_retry(&self, retry: u32) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let cap = self.backoff_base.saturating_mul(10);
        let factor = 1u32.checked_shl(retry).map_or(u32::MAX, |p| p - 1);
        self.backoff_base.saturating_mul(factor).min(cap)
    }

    /// The longest one request through the sidecar can take, all tries and back-off
    /// included: the route timeout, or the tries' per-try timeouts plus back-off when that is
    /// shorter. `None` when neither timeout is set (Istio's default: a slow upstream is
    /// waited for forever).
    pub fn worst_case_latency(&self) -> Option<Duration> {
        let by_tries = self.per_try_timeout.map(|per_try| {
            let backoff: Duration = (1..=self.retries)
                .map(|k| self.backoff_before_retry(k))
                .sum();
            per_try.saturating_mul(self.tries()).saturating_add(backoff)
        });
        min_opt(self.route_timeout, by_tries)
    }

    /// `Some` when `perTryTimeout × tries` exceeds the route timeout, with retries on: when
    /// the upstream is slow, the route timeout ends the request before the later tries run
    /// (or cuts the last one short).
    pub fn per_try_overrun(&self) -> Option<PerTryOverrun> {
        let per_try = self.per_try_timeout.filter(|d| !d.is_zero())?;
        let route = self.route_timeout?;
        let total = per_try.saturating_mul(self.tries());
        if self.retries == 0 || total <= route {
            return None;
        }
        // Try k (0-based) starts at k × perTryTimeout at the earliest (back-off can only delay
        // it), so the ones that can start are those with k × perTryTimeout < route timeout.
        let mut can_start = 0u32;
        while can_start < self.tries() && per_try.saturating_mul(can_start) < route {
            can_start += 1;
        }
        let last_try_gets = route
            .saturating_sub(per_try.saturating_mul(can_start - 1))
            .min(per_try);
        Some(PerTryOverrun {
            tries: self.tries(),
            per_try,
            total,
            route_timeout: route,
            tries_that_can_start: can_start,
            last_try_gets,
        })
    }
}

impl Default for MeshRetries {
    fn default() -> Self {
        MeshRetries::istio_default()
    }
}

/// Per-try timeouts that add up to more than the route timeout: see
/// [`MeshRetries::per_try_overrun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerTryOverrun {
    /// Tries the route allows (`1 + retries.attempts`).
    pub tries: u32,
    /// `retries.perTryTimeout`.
    pub per_try: Duration,
    /// `tries × perTryTimeout`.
    pub total: Duration,
    /// The route `timeout`.
    pub route_timeout: Duration,
    /// Tries that can start when every earlier one runs into its per-try timeout.
    pub tries_that_can_start: u32,
    /// What is left of the route timeout for the last of them (at most `per_try`).
    pub last_try_gets: Duration,
}
