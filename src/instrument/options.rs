//! The options both client layers share, and their builder setters, written once.

use super::propagation::Propagation;
use crate::mesh::timeouts::{warn_shorter, MeshTimeout, WarnedOnce};
use crate::MeshPropagator;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Time kept, by default, between the end of an outgoing call's budget and the deadline of
/// the request being handled: for the answer to travel back.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// What a client layer is configured with.
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    propagator: Option<MeshPropagator>,
    margin: Duration,
    /// Mesh route timeouts by destination host.
    mesh_timeouts: HashMap<String, MeshTimeout>,
    /// The mesh route timeout of every destination (a channel has one).
    mesh_timeout: Option<MeshTimeout>,
    warned: Arc<WarnedOnce>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            propagator: None,
            margin: DEFAULT_DEADLINE_MARGIN,
            mesh_timeouts: HashMap::new(),
            mesh_timeout: None,
            warned: Arc::default(),
        }
    }
}

impl ClientOptions {
    pub(crate) fn set_propagator(&mut self, propagator: MeshPropagator) {
        self.propagator = Some(propagator);
    }

    pub(crate) fn set_deadline_margin(&mut self, margin: Duration) {
        self.margin = margin;
    }

    /// The mesh route timeout for calls to `host`.
    #[cfg(feature = "reqwest")]
    pub(crate) fn set_mesh_timeout_for(&mut self, host: String, timeout: MeshTimeout) {
        self.mesh_timeouts.insert(host, timeout);
    }

    /// The mesh route timeout for every call.
    #[cfg(feature = "tonic")]
    pub(crate) fn set_mesh_timeout(&mut self, timeout: MeshTimeout) {
        self.mesh_timeout = Some(timeout);
    }

    /// The propagator to inject with.
    pub(crate) fn propagation(&self) -> Propagation<'_> {
        Propagation::resolve(self.propagator.as_ref())
    }

    /// Time kept between a call's budget and the deadline of the request being handled.
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// The timeout a call to `host` (named `destination` in the warning) should have, given
    /// the one it `asked` for and the mesh route's: the code timeout derived from the route
    /// when it asked for none; what it asked for otherwise, logged once per destination when
    /// that is shorter than the route's.
    pub(crate) fn own_timeout(
        &self,
        host: Option<&str>,
        destination: impl FnOnce() -> String,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        let by_host = host.and_then(|h| self.mesh_timeouts.get(h));
        let Some(mesh) = by_host.or(self.mesh_timeout.as_ref()) else {
            return asked;
        };
        match asked {
            None => Some(mesh.code_timeout()),
            Some(asked) => {
                if mesh.is_shorter_than_mesh(asked) {
                    warn_shorter(&self.warned, &destination(), asked, mesh);
                }
                Some(asked)
            }
        }
    }
}

/// The builder setters every client layer has, delegating to its `options` field.
macro_rules! client_option_setters {
    () => {
        /// Inject with this propagator, whatever is registered globally.
        pub fn propagator(mut self, propagator: $crate::MeshPropagator) -> Self {
            self.options.set_propagator(propagator);
            self
        }

        /// Time kept between a call's budget and the deadline of the request being handled
        /// ([`DEFAULT_DEADLINE_MARGIN`](crate::client::DEFAULT_DEADLINE_MARGIN) by default).
        pub fn deadline_margin(mut self, margin: std::time::Duration) -> Self {
            self.options.set_deadline_margin(margin);
            self
        }
    };
}
pub(crate) use client_option_setters;
