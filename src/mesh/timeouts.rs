//! Timeouts that cooperate with the mesh.
//!
//! When the code's timeout for a call is shorter than the mesh route's, the code gives up
//! first: Envoy's retries and its own timeout never get to act, and the caller sees a
//! client-side timeout instead of the mesh's answer. The seed write-up's advice is to state
//! the mesh's route timeout and keep the code's a little above it. [`MeshTimeout`] does that
//! arithmetic; the client layers take one per destination, use its
//! [`code_timeout`](MeshTimeout::code_timeout) when a call sets none, and warn (once per
//! destination) when a call's own timeout is shorter than the route's.
//!
//! ```
//! use meshtrace::mesh::timeouts::MeshTimeout;
//! use std::time::Duration;
//! // VirtualService: timeout: 3s
//! let ratings = MeshTimeout::route(Duration::from_secs(3));
//! assert_eq!(ratings.code_timeout(), Duration::from_millis(3300));
//! ```

#[cfg(any(feature = "reqwest", feature = "tonic"))]
use std::collections::HashSet;
#[cfg(any(feature = "reqwest", feature = "tonic"))]
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The least time the code's timeout is kept above the mesh's: enough for Envoy's timeout
/// reply to reach the caller.
pub const MIN_SLACK: Duration = Duration::from_millis(100);

/// A mesh route's timeout, and the code-side timeout derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshTimeout {
    route: Duration,
}

impl MeshTimeout {
    /// The route's `timeout` (Istio `VirtualService` `http[].timeout`; Envoy's own default
    /// route timeout is 15 s).
    pub fn route(route: Duration) -> Self {
        MeshTimeout { route }
    }

    /// The route timeout as stated.
    pub fn route_timeout(&self) -> Duration {
        self.route
    }

    /// The timeout the code should use: the route's plus 10 % (at least [`MIN_SLACK`]), so
    /// that the mesh always answers first.
    pub fn code_timeout(&self) -> Duration {
        self.route + (self.route / 10).max(MIN_SLACK)
    }

    /// True when `code` gives up before the mesh does.
    pub fn is_shorter_than_mesh(&self, code: Duration) -> bool {
        code < self.route
    }
}

/// Destinations already warned about, so a warning is logged once, not per request.
#[cfg(any(feature = "reqwest", feature = "tonic"))]
#[derive(Debug, Default)]
pub(crate) struct WarnedOnce(Mutex<HashSet<String>>);

#[cfg(any(feature = "reqwest", feature = "tonic"))]
impl WarnedOnce {
    /// True the first time `key` is seen.
    pub(crate) fn first(&self, key: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(key) {
            false
        } else {
            seen.insert(key.to_owned());
            true
        }
    }
}

/// Logs, once per destination, that a call's timeout is shorter than its mesh route's.
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub(crate) fn warn_shorter(
    warned: &WarnedOnce,
    destination: &str,
    code: Duration,
    mesh: &MeshTimeout,
) {
    if warned.first(destination) {
        tracing::warn!(
            destination,
            code_timeout_ms = i64::try_from(code.as_millis()).unwrap_or(i64::MAX),
            mesh_timeout_ms = i64::try_from(mesh.route_timeout().as_millis()).unwrap_or(i64::MAX),
            suggested_ms = i64::try_from(mesh.code_timeout().as_millis()).unwrap_or(i64::MAX),
            "meshtrace: this call's timeout is shorter than its mesh route's: the code gives up \
             before Envoy can retry or answer; use MeshTimeout::code_timeout (logged once per destination)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_timeout_is_a_little_above_the_mesh() {
        for (route_ms, code_ms) in [(3000, 3300), (500, 600), (100, 200), (20_000, 22_000)] {
            let t = MeshTimeout::route(Duration::from_millis(route_ms));
            assert_eq!(
                t.code_timeout(),
                Duration::from_millis(code_ms),
                "{route_ms}"
            );
            assert!(!t.is_shorter_than_mesh(t.code_timeout()));
        }
        assert!(
            MeshTimeout::route(Duration::from_secs(3)).is_shorter_than_mesh(Duration::from_secs(2))
        );
    }

    #[cfg(any(feature = "reqwest", feature = "tonic"))]
    #[test]
    fn warned_once() {
        let w = WarnedOnce::default();
        assert!(w.first("ratings"));
        assert!(!w.first("ratings"));
        assert!(w.first("reviews"));
    }
}
