//! The options both client layers share, and their builder setters, written once.

use super::grpc::Side;
use super::metrics::{Measurement, Metrics};
use super::propagation::Propagation;
use super::span::{record_headers, HeaderCapture};
use crate::client::scope::{OutboundScope, Reach};
use crate::mesh::timeouts::{warn_shorter, MeshTimeout, WarnedOnce};
use crate::MeshPropagator;
use http::HeaderMap;
use opentelemetry::Context;
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
    /// Where baggage and pass-through headers may go.
    scope: OutboundScope,
    /// `None`: no request metrics (and none for the interceptor, which never sees a reply).
    metrics: Option<Arc<Metrics>>,
    /// Request and response headers recorded on the client span.
    headers: HeaderCapture,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            propagator: None,
            margin: DEFAULT_DEADLINE_MARGIN,
            mesh_timeouts: HashMap::new(),
            mesh_timeout: None,
            warned: Arc::default(),
            scope: OutboundScope::default(),
            metrics: Some(Metrics::global(Side::Client)),
            headers: HeaderCapture::from_env(
                &[],
                crate::header_list::CLIENT_REQUEST,
                crate::header_list::CLIENT_RESPONSE,
            ),
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

    pub(crate) fn set_outbound_scope(&mut self, scope: OutboundScope) {
        self.scope = scope;
    }

    pub(crate) fn set_meter(&mut self, meter: opentelemetry::metrics::Meter) {
        self.metrics = Some(Metrics::with_meter(Side::Client, meter));
    }

    pub(crate) fn set_metrics(&mut self, enabled: bool) {
        self.metrics = match (enabled, self.metrics.take()) {
            (false, _) => None,
            (true, Some(metrics)) => Some(metrics),
            (true, None) => Some(Metrics::global(Side::Client)),
        };
    }

    pub(crate) fn headers_mut(&mut self) -> &mut HeaderCapture {
        &mut self.headers
    }

    /// Records the configured request headers of a call on its span (when it has one).
    pub(crate) fn record_request_headers(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        if !span.is_none() {
            record_headers(span, headers, self.headers.request());
        }
    }

    /// Records the configured response headers of a call on its span (when it has one).
    #[cfg(feature = "reqwest")]
    pub(crate) fn record_response_headers(&self, span: &tracing::Span, headers: &http::HeaderMap) {
        if !span.is_none() {
            record_headers(span, headers, self.headers.response());
        }
    }

    /// The response headers to record on a call's span, if any are configured and the call
    /// has a span.
    #[cfg(feature = "tonic")]
    pub(crate) fn response_capture(
        &self,
        span: &tracing::Span,
    ) -> Option<Arc<[super::span::CapturedHeader]>> {
        let names = self.headers.response();
        (!span.is_none() && !names.is_empty()).then(|| names.clone())
    }

    /// A call's measurement, started now, to `host` and `port`: a gRPC call when `grpc` names
    /// its service and method, else an HTTP call with `method`.
    pub(crate) fn measure(
        &self,
        method: &http::Method,
        grpc: Option<(&str, &str)>,
        server: Option<(&str, Option<u16>)>,
    ) -> Option<Measurement> {
        let metrics = self.metrics.as_ref()?;
        let mut m = match grpc {
            Some((service, name)) => metrics.grpc_client(service, name),
            None => metrics.http(method),
        };
        if let Some((host, port)) = server {
            m.server(host, port);
        }
        Some(m)
    }

    /// What the outbound scope lets a call to `host` carry.
    pub(crate) fn reach(&self, host: Option<&str>) -> Reach {
        self.scope.reach(host)
    }

    /// Injects `cx` into `headers` as far as `reach` (from [`Self::reach`]) lets it:
    /// everything, the trace context only (everything is injected into a scratch map first,
    /// then only the trace-context headers are kept), or nothing.
    pub(crate) fn inject(&self, cx: &Context, headers: &mut HeaderMap, reach: Reach) {
        match reach {
            Reach::Everything => self.propagation().inject(cx, headers),
            Reach::Nothing => {}
            Reach::TraceContext => {
                let mut scratch = HeaderMap::new();
                self.propagation().inject(cx, &mut scratch);
                for name in scratch.keys() {
                    if crate::propagation::format::is_trace_context_header(name.as_str()) {
                        headers.remove(name);
                        for value in scratch.get_all(name) {
                            headers.append(name.clone(), value.clone());
                        }
                    }
                }
            }
        }
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

        /// Where the baggage and pass-through headers of the request being handled may go,
        /// and what calls elsewhere get ([`OutboundScope`](crate::client::OutboundScope);
        /// everywhere by default; [`OutboundScope::mesh`](crate::client::OutboundScope::mesh)
        /// for a service that calls outside the mesh).
        pub fn outbound_scope(mut self, scope: $crate::client::OutboundScope) -> Self {
            self.options.set_outbound_scope(scope);
            self
        }
    };
}
pub(crate) use client_option_setters;

/// The metric setters of the client layers (the interceptor has none: it never sees a reply).
macro_rules! client_metric_setters {
    () => {
        /// Record the request metrics with this meter (from a meter provider of your own,
        /// such as a test's), instead of the global meter provider's.
        pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
            self.options.set_meter(meter);
            self
        }

        /// Whether to record request metrics (on by default): `http.client.request.duration`
        /// or `rpc.client.call.duration` (gRPC), in seconds, with the semantic conventions'
        /// attributes (`http.request.method`, `server.address`, `server.port`,
        /// `http.response.status_code`, `error.type`; `rpc.system.name`, `rpc.method`,
        /// `rpc.response.status_code`) and who answered, `meshtrace.reply.origin`
        /// (`upstream`, `envoy` or `unknown`; see [`crate::mesh::envoy`]). Every call is
        /// measured, sampled or not. Without [`meter`](Self::meter), the instruments come
        /// from the global meter provider ([`crate::init`] sets one), taken at the first call.
        pub fn metrics(mut self, enabled: bool) -> Self {
            self.options.set_metrics(enabled);
            self
        }

        /// Also record request header `name` on the client span, as
        /// `http.request.header.<name>` (a string array; the headers as sent, the injected
        /// trace headers included). Credentials are recorded as `[REDACTED]`:
        /// `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and the names given
        /// to [`redact_header`](Self::redact_header). `new()` also records the headers
        /// `OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS` lists.
        pub fn record_request_header(mut self, name: http::HeaderName) -> Self {
            self.options.headers_mut().add_request(name);
            self
        }

        /// Also record response header `name` on the client span, as
        /// `http.response.header.<name>`, redacted as request headers are. `new()` also
        /// records those `OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS` lists.
        pub fn record_response_header(mut self, name: http::HeaderName) -> Self {
            self.options.headers_mut().add_response(name);
            self
        }

        /// Record header `name` as `[REDACTED]` wherever this layer records it.
        pub fn redact_header(mut self, name: http::HeaderName) -> Self {
            self.options.headers_mut().add_redacted(name);
            self
        }
    };
}
pub(crate) use client_metric_setters;
