//! tonic: a tower [`Layer`] for `tonic::transport::Channel`, [`MeshClientLayer`] (its
//! service [`MeshClient`]), and an [`Interceptor`], [`MeshClientInterceptor`]. Responses come
//! back with a [`TracedBody`] that ends the client span when the
//! response stream ends.
//!
//! ```no_run
//! use meshtrace::client::tonic::MeshClientLayer;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = tonic::transport::Endpoint::from_static("http://reviews:9080");
//! let channel = endpoint.connect().await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(MeshClientLayer::new().server_uri(endpoint.uri()))
//!     .service(channel);
//! // Hand `channel` to any generated client: `ReviewsClient::new(channel)`.
//! # Ok(()) }
//! ```

use super::{DisablePropagation, SpanName};
use crate::instrument::body::TracedBody;
use crate::instrument::client::{call_budget, record_origin, start_span};
use crate::instrument::grpc::{self, GrpcCode, Side};
use crate::instrument::metrics::Measurement;
use crate::instrument::options::{client_metric_setters, client_option_setters, ClientOptions};
use crate::instrument::span::{
    self, record_error, record_grpc_status, record_headers, CapturedHeader,
};
use crate::instrument::{context_of, is_unrecorded};
use crate::mesh::deadline::{
    format_grpc_timeout, parse_grpc_timeout, BudgetExhausted, GRPC_TIMEOUT,
};
#[cfg(doc)]
use crate::mesh::envoy::MeshError;
use crate::mesh::envoy::{classify, classify_grpc, Origin, X_ENVOY_UPSTREAM_SERVICE_TIME};
use crate::mesh::timeouts::MeshTimeout;
use http::{HeaderValue, Request, Response, StatusCode};
use opentelemetry::Context;
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project_lite::pin_project;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tower::{Layer, Service};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Wraps a gRPC channel: a client span per call, ended when the response stream ends, and
/// every configured format injected into the request metadata.
#[derive(Debug, Clone, Default)]
pub struct MeshClientLayer {
    options: ClientOptions,
    server: Option<(String, Option<u16>)>,
}

impl MeshClientLayer {
    /// Injects with the propagator given to [`crate::set_global_propagator`], else
    /// opentelemetry's global propagator if one was registered, else
    /// [`MeshPropagator::istio`](crate::MeshPropagator::istio).
    pub fn new() -> Self {
        Self::default()
    }

    client_option_setters!();
    client_metric_setters!();

    /// The mesh route timeout of the channel's destination: a call without a `grpc-timeout`
    /// of its own gets [`MeshTimeout::code_timeout`], and a call asking for less than the
    /// route's timeout is logged (once).
    pub fn mesh_timeout(mut self, timeout: MeshTimeout) -> Self {
        self.options.set_mesh_timeout(timeout);
        self
    }

    /// The endpoint the channel talks to, for `server.address` and `server.port` (a channel
    /// adds the authority below this layer, so the layer cannot read it from the request).
    pub fn server_uri(mut self, uri: &http::Uri) -> Self {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        self.server = uri.host().map(|h| (h.to_owned(), port));
        self
    }
}

impl<S> Layer<S> for MeshClientLayer {
    type Service = MeshClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshClient {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`MeshClientLayer`] wraps around a channel.
#[derive(Debug, Clone)]
pub struct MeshClient<S> {
    inner: S,
    layer: MeshClientLayer,
}

/// The error type of [`MeshClient`]: the channel's error, or a [`tonic::Status`] of our own
/// (DEADLINE_EXCEEDED when the budget ran out, with [`BudgetExhausted`] as its source), which
/// tonic's clients hand to the caller unchanged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MeshClient<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError> + fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let call = grpc::service_and_method(req.uri().path());
        let options = &self.layer.options;
        let mut measurement = options.measure(req.method(), call, self.server_of(&req));
        let (span, cx) = self.start_call(&req, call);
        let budget = match call_budget(&cx, &span, options.margin()) {
            Ok(budget) => budget,
            Err(exhausted) => {
                if let Some(m) = measurement.as_mut() {
                    m.grpc_status(GrpcCode::DeadlineExceeded);
                    m.error("budget_exhausted");
                }
                return ResponseFuture::failed(budget_exhausted_status(exhausted), span);
            }
        };
        let own = options.own_timeout(
            None,
            || call.map_or("grpc", |(service, _)| service).to_owned(),
            requested_timeout(req.headers()),
        );
        // The callee gets the tighter of the call's own timeout and the budget.
        let timeout = match (own, budget) {
            (Some(own), Some(budget)) => Some(own.min(budget)),
            (own, budget) => own.or(budget),
        };
        if let Some(timeout) = timeout {
            set_grpc_timeout(req.headers_mut(), timeout);
        }
        if req.extensions().get::<DisablePropagation>().is_none() {
            let host = req
                .uri()
                .host()
                .or(self.layer.server.as_ref().map(|(h, _)| h.as_str()));
            let reach = options.reach(host);
            options.inject(&cx, req.headers_mut(), reach);
        }
        options.record_request_headers(&span, req.headers());
        // Our timer starts before the channel's own (tonic times `grpc-timeout` too) and is
        // polled first, so a call whose time runs out ends DEADLINE_EXCEEDED, not CANCELLED.
        let timer = timeout.map(tokio::time::sleep);
        let response_headers = options.response_capture(&span);
        let inner = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner: Some(inner),
            timer,
            failed: None,
            span: Some(span),
            measurement,
            response_headers,
        }
    }
}

impl<S> MeshClient<S> {
    /// The call's span and the context to inject from: a client span, or, when the trace is
    /// not recorded (see [`is_unrecorded`]), no span at all and the caller's context.
    fn start_call<B>(&self, req: &Request<B>, call: Option<(&str, &str)>) -> (Span, Context) {
        let current = Context::current();
        if is_unrecorded(&current) {
            return (Span::none(), current);
        }
        let span = start_span(req.extensions().get::<SpanName>(), || match call {
            Some((service, method)) => Cow::Owned(format!("{service}/{method}")),
            None => Cow::Borrowed(req.uri().path()),
        });
        if let Some((service, method)) = call {
            span::record_rpc(&span, service, method);
        }
        if let Some((host, port)) = self.server_of(req) {
            span::record_server_address(&span, host, port);
        }
        let cx = context_of(&span);
        (span, cx)
    }

    /// Where the call goes: the request's authority, else the layer's
    /// [`server_uri`](MeshClientLayer::server_uri).
    fn server_of<'a, B>(&'a self, req: &'a Request<B>) -> Option<(&'a str, Option<u16>)> {
        req.uri().host().map(|h| (h, req.uri().port_u16())).or(self
            .layer
            .server
            .as_ref()
            .map(|(h, p)| (h.as_str(), *p)))
    }
}

pin_project! {
    /// The response future of [`MeshClient`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // The call's budget: the caller's side of the deadline (the callee's side is the
        // `grpc-timeout` sent with the call).
        #[pin]
        timer: Option<tokio::time::Sleep>,
        failed: Option<BoxError>,
        span: Option<Span>,
        measurement: Option<Measurement>,
        // The response headers to record on the span.
        response_headers: Option<Arc<[CapturedHeader]>>,
    }
}

impl<F> ResponseFuture<F> {
    /// A call refused before it was sent.
    fn failed(status: tonic::Status, span: Span) -> Self {
        ResponseFuture {
            inner: None,
            timer: None,
            failed: Some(Box::new(status)),
            span: Some(span),
            measurement: None,
            response_headers: None,
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError> + fmt::Display,
{
    type Output = Result<Response<TracedBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(failed) = this.failed.take() {
            return Poll::Ready(Err(failed));
        }
        if let Some(timer) = this.timer.as_mut().as_pin_mut() {
            if timer.poll(cx).is_ready() {
                let span = this.span.take().unwrap_or_else(Span::none);
                let status = tonic::Status::deadline_exceeded(
                    "the call's time ran out (its grpc-timeout, its mesh code timeout or the deadline budget of the request being handled)",
                );
                record_grpc_status(
                    &span,
                    Side::Client,
                    GrpcCode::DeadlineExceeded,
                    Some(status.message().to_owned()),
                );
                if let Some(mut m) = this.measurement.take() {
                    m.grpc_status(GrpcCode::DeadlineExceeded);
                }
                this.inner.set(None);
                this.timer.set(None);
                return Poll::Ready(Err(Box::new(status)));
            }
        }
        let result = {
            let _entered = this.span.as_ref().map(Span::enter);
            match this.inner.as_mut().as_pin_mut() {
                Some(inner) => ready!(inner.poll(cx)),
                None => return Poll::Pending,
            }
        };
        let span = this.span.take().unwrap_or_else(Span::none);
        let mut measurement = this.measurement.take();
        Poll::Ready(match result {
            Ok(res) => {
                let head = res.headers();
                if let Some(names) = this.response_headers.take() {
                    record_headers(&span, head, &names);
                }
                let trailers_expected = if let Some(code) = grpc::status(head) {
                    let message = grpc::message(head);
                    let origin = classify_grpc(code, message.as_deref().unwrap_or(""), head);
                    if code != GrpcCode::Ok {
                        record_origin(&span, &origin);
                    }
                    if let Some(m) = measurement.as_mut() {
                        m.grpc_status(code);
                        m.origin(&origin);
                    }
                    record_grpc_status(&span, Side::Client, code, message);
                    false
                } else if res.status() != StatusCode::OK {
                    let origin = classify(res.status(), head, None);
                    record_origin(&span, &origin);
                    // No gRPC status at all: a proxy (Envoy) or a non-gRPC server answered.
                    // The gRPC HTTP mapping says what the caller will see.
                    if !span.is_none() {
                        span.set_attribute(
                            semconv::HTTP_RESPONSE_STATUS_CODE,
                            i64::from(res.status().as_u16()),
                        );
                    }
                    let code = grpc_code_for_http(res.status());
                    record_grpc_status(&span, Side::Client, code, None);
                    if let Some(m) = measurement.as_mut() {
                        m.grpc_status(code);
                        m.origin(&origin);
                    }
                    false
                } else {
                    true
                };
                Ok(with_upstream_time(res, |body| {
                    // A call of an unrecorded trace has no span: nothing is recorded on it.
                    let recorded = !span.is_none();
                    let body = TracedBody::new(body, span, Side::Client, trailers_expected);
                    match recorded {
                        true => body,
                        false => body.unrecorded(),
                    }
                    .measured(measurement)
                }))
            }
            Err(e) => {
                record_error(&span, "transport", e.to_string());
                if let Some(m) = measurement.as_mut() {
                    m.error("transport");
                }
                Err(e.into())
            }
        })
    }
}

/// The response with its body wrapped by `wrap`, the head's `x-envoy-upstream-service-time`
/// repeated in the trailers (see [`TracedBody::carry_to_trailers`]).
fn with_upstream_time<B>(
    res: Response<B>,
    wrap: impl FnOnce(B) -> TracedBody<B>,
) -> Response<TracedBody<B>> {
    let upstream_time = res.headers().get(X_ENVOY_UPSTREAM_SERVICE_TIME).cloned();
    res.map(|body| {
        let body = wrap(body);
        match upstream_time {
            Some(value) => body.carry_to_trailers(X_ENVOY_UPSTREAM_SERVICE_TIME, value),
            None => body,
        }
    })
}

/// Who answered a failed call: the server, or the Envoy sidecar by itself (which puts its
/// reply in `grpc-message`), and so which [`MeshError`] it is.
///
/// ```
/// use meshtrace::client::tonic::origin;
/// use meshtrace::mesh::envoy::{MeshError, Origin};
/// let status = tonic::Status::unavailable("no healthy upstream");
/// assert_eq!(origin(&status).error(), Some(MeshError::NoHealthyUpstream));
/// assert_eq!(origin(&tonic::Status::unavailable("db down")), Origin::Unknown);
/// ```
pub fn origin(status: &tonic::Status) -> Origin {
    classify_grpc(
        GrpcCode::from_wire(status.code() as u16),
        status.message(),
        status.metadata().as_ref(),
    )
}

/// `endpoint` set up for a service behind a sidecar,
/// so that a connection the mesh dropped is noticed before a call is put on it (the
/// "transport is closing" failures of the seed write-up).
///
/// - **HTTP/2 keepalive every 20 s, 10 s to answer, also while idle.** A client that only
///   speaks when it has a call learns that its connection is dead from the call that fails.
///   Pinging while idle finds out first. Idle timeouts on the path are much longer (Envoy's
///   HTTP connection idle timeout and Istio's `connectionPool.http.idleTimeout` default to
///   1 h; NAT and conntrack tables drop idle flows after minutes, 350 s on common cloud
///   NATs), so a 20 s ping keeps the connection warm through all of them and a silently
///   dropped one is found within 30 s.
///   The pings go to the local sidecar, which answers them; they are not the upstream
///   server's to police (grpc-go servers, reached directly, refuse pings more often than
///   every 5 minutes on idle connections: use this preset only behind a sidecar).
/// - **TCP keepalive 30 s**, the same idea one layer down, for connections stuck before
///   HTTP/2 is up.
/// - **Connect timeout 2 s.** The connection is to the local sidecar, which is up or not;
///   connecting to the real destination is Envoy's job (its own connect timeout, 10 s in
///   Istio).
///
/// ```
/// use meshtrace::client::tonic::mesh_endpoint;
/// # #[tokio::main] async fn main() {
/// let endpoint = mesh_endpoint(tonic::transport::Endpoint::from_static("http://reviews:9080"));
/// let channel = endpoint.connect_lazy();
/// # }
/// ```
pub fn mesh_endpoint(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .http2_keep_alive_interval(MESH_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(MESH_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .connect_timeout(Duration::from_secs(2))
}

/// [`mesh_endpoint`]'s HTTP/2 keepalive interval.
pub const MESH_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// [`mesh_endpoint`]'s HTTP/2 keepalive timeout.
pub const MESH_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `grpc-timeout` the call itself asked for, if any.
fn requested_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| parse_grpc_timeout(v.as_bytes()).ok())
}

fn set_grpc_timeout(headers: &mut http::HeaderMap, timeout: Duration) {
    if let Ok(value) = HeaderValue::from_str(&format_grpc_timeout(timeout)) {
        headers.insert(GRPC_TIMEOUT, value);
    }
}

/// DEADLINE_EXCEEDED, with the typed reason as its source.
fn budget_exhausted_status(exhausted: BudgetExhausted) -> tonic::Status {
    let mut status = tonic::Status::deadline_exceeded(exhausted.to_string());
    status.set_source(Arc::new(exhausted));
    status
}

/// gRPC's "HTTP to gRPC status code mapping", for responses that carry no `grpc-status`.
fn grpc_code_for_http(status: StatusCode) -> GrpcCode {
    match status.as_u16() {
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::Unimplemented,
        429 | 502 | 503 | 504 => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    }
}

/// An [`Interceptor`] that injects the current span's context into the call's metadata,
/// for clients built with `with_interceptor`, and holds the deadline budget like the layer
/// (`grpc-timeout` set to what is left; DEADLINE_EXCEEDED with nothing left), recorded on
/// the current span as the layer records it on its client span. It opens no client span and
/// times nothing (an interceptor never sees the response); use [`MeshClientLayer`] for that.
///
/// ```no_run
/// use meshtrace::client::tonic::MeshClientInterceptor;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = tonic::transport::Endpoint::from_static("http://reviews:9080").connect().await?;
/// let channel = tonic::service::interceptor::InterceptedService::new(channel, MeshClientInterceptor::new());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MeshClientInterceptor {
    options: ClientOptions,
}

impl MeshClientInterceptor {
    /// An interceptor using the same propagator choice as [`MeshClientLayer::new`].
    pub fn new() -> Self {
        Self::default()
    }

    client_option_setters!();
}

impl Interceptor for MeshClientInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let span = Span::current();
        let cx = context_of(&span);
        let mut headers = std::mem::take(req.metadata_mut()).into_headers();
        // The deadline budget holds here too, recorded on the current span as the layer
        // records it on its client span: the callee gets what is left as its `grpc-timeout`
        // (never more than the call asked for), and a call with nothing left is refused
        // before it is sent.
        match call_budget(&cx, &span, self.options.margin()) {
            Ok(Some(budget)) => {
                let timeout = requested_timeout(&headers).map_or(budget, |a| a.min(budget));
                set_grpc_timeout(&mut headers, timeout);
            }
            Ok(None) => {}
            Err(exhausted) => return Err(budget_exhausted_status(exhausted)),
        }
        if req.extensions().get::<DisablePropagation>().is_none() {
            // An interceptor does not see the call's host: only an `everywhere` scope lets
            // baggage and pass-through headers through.
            self.options
                .inject(&cx, &mut headers, self.options.reach(None));
        }
        *req.metadata_mut() = MetadataMap::from_headers(headers);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::grpc_code_for_http;
    use http::StatusCode;

    #[test]
    fn http_statuses_map_as_grpc_says() {
        for (http, code) in [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (500, 2),
        ] {
            assert_eq!(
                grpc_code_for_http(StatusCode::from_u16(http).unwrap()).as_i64(),
                code,
                "{http}"
            );
        }
    }
}
