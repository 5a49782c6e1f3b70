//! A tower [`Layer`] for servers: axum routers, hyper services and tonic servers alike.
//!
//! Per request it extracts the incoming trace with the `HeaderMap` fast path, opens a server
//! span whose parent is the remote caller, runs the handler inside it and keeps the span open
//! until the response body has ended. Everything a handler calls inside that span (nested
//! `#[tracing::instrument]` functions, tasks spawned with `.in_current_span()`, the reqwest
//! and tonic client layers) then lands in the same trace and forwards the same pass-through
//! headers.

use crate::instrument::grpc::{self, Side};
use crate::instrument::span::{self, record_error, record_grpc_status, record_http_status};
use crate::instrument::{body::TracedBody, Propagation};
use crate::mesh::deadline::{Deadline, DeadlineExt};
use crate::propagation::passthrough::X_REQUEST_ID;
use crate::{MeshContextExt, MeshPropagator};
use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{ready, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

/// Envoy's retry counter (`1` on the first try), recorded on the server span.
const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

/// The budget a request arrived with (`grpc-timeout` or `x-envoy-expected-rq-timeout-ms`,
/// the tighter), in milliseconds.
const DEADLINE_REMAINING_MS: &str = "meshtrace.deadline.remaining_ms";

/// The request headers recorded on the server span, with their attribute keys
/// (`http.request.header.<name>`).
const RECORDED_HEADERS: [(HeaderName, &str); 2] = [
    (X_REQUEST_ID, "http.request.header.x-request-id"),
    (
        X_ENVOY_ATTEMPT_COUNT,
        "http.request.header.x-envoy-attempt-count",
    ),
];

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
#[derive(Clone, Default)]
pub struct MeshServerLayer {
    propagator: Option<MeshPropagator>,
    request_id: bool,
    filter: Option<Filter>,
}

impl fmt::Debug for MeshServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshServerLayer")
            .field("propagator", &self.propagator)
            .field("generate_request_id", &self.request_id)
            .field("filter", &self.filter.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl MeshServerLayer {
    /// A layer that extracts with the propagator given to [`crate::set_global_propagator`],
    /// else opentelemetry's global propagator if one was registered, else
    /// [`MeshPropagator::istio`].
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
}

impl<S> Layer<S> for MeshServerLayer {
    type Service = MeshServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshServer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`MeshServerLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct MeshServer<S> {
    inner: S,
    layer: MeshServerLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MeshServer<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut req = match &self.layer.filter {
            Some(filter) => {
                let (parts, body) = req.into_parts();
                if !filter(&parts) {
                    return ResponseFuture {
                        inner: self.inner.call(Request::from_parts(parts, body)),
                        state: None,
                    };
                }
                Request::from_parts(parts, body)
            }
            None => req,
        };
        if self.layer.request_id && !req.headers().contains_key(X_REQUEST_ID) {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                req.headers_mut().insert(X_REQUEST_ID, value);
            }
        }
        let state = start(&req, self.layer.propagator.as_ref());
        let inner = {
            let _entered = state.span.enter();
            let _attached = state.fallback.as_ref().map(|cx| cx.clone().attach());
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            state: Some(state),
        }
    }
}

struct State {
    span: Span,
    grpc: bool,
    /// The extracted context, made current while the handler runs when no OpenTelemetry
    /// layer tracks the span, so that client layers can still forward the incoming headers.
    fallback: Option<Context>,
}

fn start<B>(req: &Request<B>, propagator: Option<&MeshPropagator>) -> State {
    let headers = req.headers();
    let mut cx = Propagation::resolve(propagator).extract(headers);
    let deadline = Deadline::from_headers(headers, Instant::now());
    if let Ok(Some(deadline)) = deadline {
        cx = cx.with_deadline(deadline);
    }
    let grpc_call = grpc::is_grpc(headers)
        .then(|| grpc::service_and_method(req.uri().path()))
        .flatten();
    let route = matched_path(req);
    let name = match (grpc_call, route) {
        (Some((service, method)), _) => format!("{service}/{method}"),
        (None, Some(route)) => format!("{} {route}", span::method_for_name(req.method())),
        (None, None) => span::method_for_name(req.method()).to_owned(),
    };
    let span = span::server_span(&name);
    let parent_set = match span.set_parent(cx.clone()) {
        Ok(()) => true,
        Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => false,
        // The span was created just above and never entered, so it cannot have started.
        Err(SetParentError::AlreadyStarted) => true,
    };
    if let Some(mesh) = cx.mesh() {
        let winner = cx.span().span_context().trace_id();
        for losing in mesh.losing() {
            if losing.span_context.trace_id() != winner {
                span.add_link_with_attributes(
                    losing.span_context.clone(),
                    vec![KeyValue::new(
                        "meshtrace.link.format",
                        losing.format.as_str(),
                    )],
                );
            }
        }
    }

    match grpc_call {
        Some((service, method)) => span::record_rpc(&span, service, method),
        None => {
            span::record_method(&span, req.method());
            span.set_attribute(semconv::URL_PATH, req.uri().path().to_owned());
            if let Some(route) = route {
                span.set_attribute(semconv::HTTP_ROUTE, route.to_owned());
            }
            span.set_attribute(
                semconv::URL_SCHEME,
                req.uri().scheme_str().unwrap_or("http").to_owned(),
            );
        }
    }
    if let Some((host, port)) = span::server_host_port(req.uri(), headers) {
        span.set_attribute(semconv::SERVER_ADDRESS, host.to_owned());
        if let Some(port) = port {
            span.set_attribute(semconv::SERVER_PORT, i64::from(port));
        }
    }
    if let Some(version) = span::protocol_version(req.version()) {
        span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, version);
    }
    if let Some(agent) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.set_attribute(semconv::USER_AGENT_ORIGINAL, agent.to_owned());
    }
    span::record_request_headers(&span, headers, &RECORDED_HEADERS);
    match deadline {
        Ok(Some(deadline)) => span.set_attribute(
            DEADLINE_REMAINING_MS,
            i64::try_from(deadline.remaining().as_millis()).unwrap_or(i64::MAX),
        ),
        Ok(None) => {}
        Err(e) => span.add_event(
            "meshtrace.deadline.invalid",
            vec![KeyValue::new("exception.message", e.to_string())],
        ),
    }

    // `set_parent` also succeeds, doing nothing, when an OpenTelemetry layer is installed but
    // its own filter leaves this span out; only a started span with a context says the span
    // is tracked. (Starting it here costs nothing: the handler enters it next.)
    let tracked = parent_set && span.context().has_active_span();
    let fallback = if tracked {
        None
    } else {
        warn_untracked();
        Some(cx)
    };

    State {
        span,
        grpc: grpc_call.is_some(),
        fallback,
    }
}

#[cfg(feature = "axum")]
fn matched_path<B>(req: &Request<B>) -> Option<&str> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
}

#[cfg(not(feature = "axum"))]
fn matched_path<B>(_req: &Request<B>) -> Option<&str> {
    None
}

fn warn_untracked() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "meshtrace: the server span is not tracked by a tracing-opentelemetry layer \
             (none installed, or the span is filtered out); incoming trace headers are \
             forwarded unchanged but no spans are recorded"
        );
    });
}

pin_project! {
    /// The response future of [`MeshServer`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_ref() else {
            let result = ready!(this.inner.poll(cx));
            return Poll::Ready(result.map(|res| res.map(TracedBody::untraced)));
        };
        let result = {
            let _entered = state.span.enter();
            let _attached = state.fallback.as_ref().map(|cx| cx.clone().attach());
            ready!(this.inner.poll(cx))
        };
        let State { span, grpc, .. } = this.state.take().expect("checked above");
        Poll::Ready(match result {
            Ok(res) => {
                let status_in_head = grpc.then(|| grpc::status(res.headers())).flatten();
                if let Some(code) = status_in_head {
                    record_grpc_status(&span, Side::Server, code, grpc::message(res.headers()));
                } else if !grpc {
                    record_http_status(&span, Side::Server, res.status());
                }
                let trailers_expected = grpc && status_in_head.is_none();
                Ok(res.map(|body| TracedBody::new(body, span, Side::Server, trailers_expected)))
            }
            Err(e) => {
                record_error(&span, "_OTHER", e.to_string());
                Err(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RECORDED_HEADERS;
    use opentelemetry_semantic_conventions::attribute::HTTP_REQUEST_HEADER;

    #[test]
    fn recorded_header_keys_follow_the_convention() {
        for (name, key) in RECORDED_HEADERS {
            assert_eq!(key, format!("{HTTP_REQUEST_HEADER}.{}", name.as_str()));
        }
    }
}
