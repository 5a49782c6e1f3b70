//! [`MeshServerLayer`]: the options, and the `Layer` that wraps a service in [`MeshServer`].

use super::on_request::RECORDED_HEADERS;
use super::{MeshServer, PublicEndpoint};
use crate::instrument::grpc::Side;
use crate::instrument::metrics::Metrics;
use crate::instrument::propagation::Propagation;
use crate::instrument::span::{CapturedHeader, HeaderCapture};
use crate::MeshPropagator;
use http::HeaderName;
use std::fmt;
use std::sync::Arc;
use tower::Layer;

type Filter = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

/// Opens a server span per request with the caller's trace as its parent.
///
/// ```
/// use axum::{routing::get, Router};
/// use meshtrace::server::MeshServerLayer;
///
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "ok" }))
///     .route("/healthz", get(|| async { "ok" }))
///     .layer(
///         MeshServerLayer::new()
///             .generate_request_id(true)
///             .filter(|req| req.uri.path() != "/healthz"),
///     );
/// ```
#[derive(Clone)]
pub struct MeshServerLayer {
    propagator: Option<MeshPropagator>,
    request_id: bool,
    filter: Option<Filter>,
    /// The request headers (besides [`RECORDED_HEADERS`]) and response headers recorded.
    headers: HeaderCapture,
    public: PublicEndpoint,
    /// `None`: no request metrics.
    metrics: Option<Arc<Metrics>>,
    decorate: bool,
}

impl Default for MeshServerLayer {
    fn default() -> Self {
        MeshServerLayer {
            propagator: None,
            request_id: false,
            filter: None,
            headers: HeaderCapture::from_env(
                &RECORDED_HEADERS,
                crate::header_list::SERVER_REQUEST,
                crate::header_list::SERVER_RESPONSE,
            ),
            public: PublicEndpoint::off(),
            metrics: Some(Metrics::global(Side::Server)),
            decorate: false,
        }
    }
}

impl fmt::Debug for MeshServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshServerLayer")
            .field("propagator", &self.propagator)
            .field("generate_request_id", &self.request_id)
            .field("filter", &self.filter.as_ref().map(|_| "Fn"))
            .field("record_request_headers", &self.headers.names().0)
            .field("record_response_headers", &self.headers.names().1)
            .field("redact_headers", &self.headers.names().2)
            .field("public_endpoint", &self.public)
            .field("metrics", &self.metrics)
            .field("decorate_operation", &self.decorate)
            .finish()
    }
}

impl MeshServerLayer {
    /// A layer that extracts with the propagator given to [`crate::set_global_propagator`],
    /// else opentelemetry's global propagator if one was registered, else
    /// [`MeshPropagator::istio`]. That choice is made once, at the first request any
    /// meshtrace layer handles: register the propagator before serving.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extract with this propagator, whatever is registered globally.
    pub fn propagator(mut self, propagator: MeshPropagator) -> Self {
        self.propagator = Some(propagator);
        self
    }

    /// When a request arrives without `x-request-id`, give it a new UUID v4 (as an edge
    /// proxy would) before extraction, so the handler and every later hop share it.
    /// Off by default: inside a mesh the sidecar sets one.
    pub fn generate_request_id(mut self, generate: bool) -> Self {
        self.request_id = generate;
        self
    }

    /// Trace only the requests for which `filter` returns true (health checks and other
    /// noise can be left out). Requests filtered out pass through untouched: no span, no
    /// extraction.
    pub fn filter(
        mut self,
        filter: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Also record request header `name` on the server span, as
    /// `http.request.header.<name>` (a string array, one element per header line; the span
    /// always records `x-request-id` and `x-envoy-attempt-count`). Credentials are never
    /// recorded: `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and the names
    /// given to [`redact_header`](Self::redact_header) are recorded as `[REDACTED]`, so a
    /// trace shows that they were sent, not what they were.
    ///
    /// `new()` also records the headers `OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_REQUEST_HEADERS`
    /// lists (comma-separated, as the OpenTelemetry Java agent reads it; [`crate::init`]
    /// refuses a name that is not a header name).
    ///
    /// ```
    /// use http::header::{AUTHORIZATION, USER_AGENT};
    /// use meshtrace::server::MeshServerLayer;
    ///
    /// let layer = MeshServerLayer::new()
    ///     .record_request_header(USER_AGENT)
    ///     .record_request_header(AUTHORIZATION) // recorded as ["[REDACTED]"]
    ///     .record_request_header(http::HeaderName::from_static("x-tenant"))
    ///     .redact_header(http::HeaderName::from_static("x-api-key"));
    /// ```
    pub fn record_request_header(mut self, name: HeaderName) -> Self {
        self.headers.add_request(name);
        self
    }

    /// Also record response header `name` on the server span, as
    /// `http.response.header.<name>`, redacted as request headers are (`set-cookie` always).
    /// `new()` also records those `OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS`
    /// lists.
    ///
    /// ```
    /// use meshtrace::server::MeshServerLayer;
    /// let layer = MeshServerLayer::new()
    ///     .record_response_header(http::header::CONTENT_TYPE)
    ///     .record_response_header(http::header::SET_COOKIE); // ["[REDACTED]"]
    /// ```
    pub fn record_response_header(mut self, name: HeaderName) -> Self {
        self.headers.add_response(name);
        self
    }

    /// Record header `name` as `[REDACTED]` wherever this layer records it (with the
    /// credentials, which always are).
    pub fn redact_header(mut self, name: HeaderName) -> Self {
        self.headers.add_redacted(name);
        self
    }

    /// The request headers each traced request records.
    pub(super) fn captured(&self) -> &[CapturedHeader] {
        self.headers.request()
    }

    /// The response headers each traced request records.
    pub(super) fn captured_response(&self) -> &Arc<[CapturedHeader]> {
        self.headers.response()
    }

    /// Treat requests as coming from outside the mesh: a new trace linked to the incoming
    /// context, incoming sampling decisions and baggage ignored ([`PublicEndpoint`]; off by
    /// default).
    pub fn public_endpoint(mut self, public: PublicEndpoint) -> Self {
        self.public = public;
        self
    }

    /// The public endpoint configuration, when a request with these parts (given when
    /// [`Self::needs_parts`]) is from outside.
    pub(super) fn public_for(
        &self,
        parts: Option<&http::request::Parts>,
    ) -> Option<&PublicEndpoint> {
        self.public.applies(parts).then_some(&self.public)
    }

    pub(super) fn public_config(&self) -> &PublicEndpoint {
        &self.public
    }

    /// Whether deciding about a request needs its parts (a filter or a per-request public
    /// endpoint decision).
    pub(super) fn needs_parts(&self) -> bool {
        self.filter.is_some() || self.public.per_request_decision()
    }

    /// Record the request metrics with this meter (from a meter provider of your own, such
    /// as a test's), instead of the global meter provider's. See [`Self::metrics`].
    ///
    /// ```
    /// use meshtrace::server::MeshServerLayer;
    /// use opentelemetry::metrics::MeterProvider;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let layer = MeshServerLayer::new().meter(provider.meter("meshtrace"));
    /// ```
    pub fn meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.metrics = Some(Metrics::with_meter(Side::Server, meter));
        self
    }

    /// Whether to record request metrics (on by default): `http.server.request.duration`
    /// for HTTP and `rpc.server.call.duration` for gRPC, in seconds, with the semantic
    /// conventions' attributes (`http.request.method`, `http.route`, `url.scheme`,
    /// `network.protocol.version`, `http.response.status_code`, `error.type`;
    /// `rpc.system.name`, `rpc.method`, `rpc.response.status_code`) and Envoy's attempt
    /// number, `meshtrace.envoy.attempt_count` (from `x-envoy-attempt-count`, 1 to 16), so
    /// that the mesh's retries show. Every request the [`filter`](Self::filter) lets through
    /// is measured, sampled or not, from its arrival to the end of its response stream.
    /// Without [`meter`](Self::meter), the instruments come from the global meter provider
    /// ([`crate::init`] sets one), taken at the first request.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = match (enabled, self.metrics.take()) {
            (false, _) => None,
            (true, Some(metrics)) => Some(metrics),
            (true, None) => Some(Metrics::global(Side::Server)),
        };
        self
    }

    /// Answer with `x-envoy-decorator-operation` set to the server span's name when the
    /// route is known (`GET /orders/{id}`; `package.Service/Method` for gRPC), so that the
    /// sidecar names its own span of the request by route template too, instead of
    /// `reviews.default.svc.cluster.local:9080/*` (Envoy takes the header from the
    /// upstream's response). Off by default; a value the handler set stays.
    ///
    /// ```
    /// use meshtrace::server::MeshServerLayer;
    /// let layer = MeshServerLayer::new().decorate_operation(true);
    /// ```
    pub fn decorate_operation(mut self, decorate: bool) -> Self {
        self.decorate = decorate;
        self
    }

    pub(super) fn decorates(&self) -> bool {
        self.decorate
    }

    pub(super) fn measured_by(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The propagator to extract with, borrowed: no lock and no clone per request.
    pub(super) fn propagation(&self) -> Propagation<'_> {
        Propagation::resolve(self.propagator.as_ref())
    }

    pub(super) fn generates_request_id(&self) -> bool {
        self.request_id
    }

    /// Whether a request with these parts is traced at all.
    pub(super) fn traces(&self, parts: &http::request::Parts) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter(parts))
    }
}

impl<S> Layer<S> for MeshServerLayer {
    type Service = MeshServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshServer::new(inner, self.clone())
    }
}
