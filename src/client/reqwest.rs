//! reqwest: [`MeshClientMiddleware`], a [`reqwest_middleware::Middleware`], and a helper for
//! plain `reqwest`.
//!
//! ```no_run
//! use meshtrace::client::reqwest::MeshClientMiddleware;
//! use meshtrace::client::{DisablePropagation, SpanName};
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(MeshClientMiddleware::new())
//!     .build();
//! // Inside a handler served through `MeshServerLayer`: this call joins the request's trace
//! // and forwards its x-request-id, baggage and the rest.
//! client.get("http://ratings:9080/ratings/0").send().await?;
//! // Per-call options.
//! client
//!     .post("https://api.example.com/v1/charge")
//!     .with_extension(DisablePropagation)
//!     .with_extension(SpanName::new("charge card"))
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```

use super::{DisablePropagation, SpanName, DEFAULT_DEADLINE_MARGIN};
use crate::instrument::client::{call_budget, record_origin, start_span};
use crate::instrument::grpc::Side;
use crate::instrument::metrics::{Measurement, Metrics};
use crate::instrument::options::{client_metric_setters, client_option_setters, ClientOptions};
use crate::instrument::propagation::Propagation;
use crate::instrument::span::{self, error_chain, record_error, record_http_status};
use crate::instrument::{context_of, is_unrecorded};
use crate::mesh::envoy::{classify, MeshError, Origin, X_ENVOY_UPSTREAM_SERVICE_TIME};
use crate::mesh::timeouts::MeshTimeout;
use http::Extensions;
use opentelemetry::Context;
use opentelemetry_semantic_conventions::attribute as semconv;
use reqwest::ResponseBuilderExt;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The reqwest-middleware layer: a client span per call, and every configured format
/// injected from it.
#[derive(Debug, Clone, Default)]
pub struct MeshClientMiddleware {
    options: ClientOptions,
}

impl MeshClientMiddleware {
    /// Injects with the propagator given to [`crate::set_global_propagator`], else
    /// opentelemetry's global propagator if one was registered, else
    /// [`MeshPropagator::istio`](crate::MeshPropagator::istio).
    pub fn new() -> Self {
        Self::default()
    }

    client_option_setters!();
    client_metric_setters!();

    /// The mesh route timeout for calls to `host`: a call without a timeout of its own gets
    /// [`MeshTimeout::code_timeout`], and a call whose timeout is shorter than the route's
    /// is logged (once per host).
    ///
    /// ```
    /// use meshtrace::{client::reqwest::MeshClientMiddleware, mesh::timeouts::MeshTimeout};
    /// let layer = MeshClientMiddleware::new()
    ///     .mesh_timeout("ratings", MeshTimeout::route(std::time::Duration::from_secs(3)));
    /// ```
    pub fn mesh_timeout(mut self, host: impl Into<String>, timeout: MeshTimeout) -> Self {
        self.options.set_mesh_timeout_for(host.into(), timeout);
        self
    }

    fn apply_mesh_timeout(&self, req: &mut Request) {
        let Some(host) = req.url().host_str() else {
            return;
        };
        let asked = req.timeout().copied();
        let timeout = self
            .options
            .own_timeout(Some(host), || host.to_owned(), asked);
        *req.timeout_mut() = timeout;
    }
}

#[async_trait::async_trait]
impl Middleware for MeshClientMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mut measurement = self.options.measure(req.method(), None, server_of(&req));
        let (span, cx) = start_call(&req, extensions.get::<SpanName>());
        self.apply_mesh_timeout(&mut req);
        match call_budget(&cx, &span, self.options.margin()) {
            Ok(Some(budget)) => cap_timeout(&mut req, budget),
            Ok(None) => {}
            Err(exhausted) => {
                if let Some(m) = measurement.as_mut() {
                    m.error("budget_exhausted");
                }
                return Err(reqwest_middleware::Error::middleware(exhausted));
            }
        }
        if extensions.get::<DisablePropagation>().is_none() {
            let reach = self.options.reach(req.url().host_str());
            self.options.inject(&cx, req.headers_mut(), reach);
        }
        self.options.record_request_headers(&span, req.headers());
        let result = next.run(req, extensions).instrument(span.clone()).await;
        let result = match result {
            Ok(res) => {
                record_http_status(&span, Side::Client, res.status());
                self.options.record_response_headers(&span, res.headers());
                with_origin(res, &span)
                    .await
                    .map_err(reqwest_middleware::Error::Reqwest)
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => {}
            Err(reqwest_middleware::Error::Reqwest(e)) => record_reqwest_error(&span, e),
            Err(reqwest_middleware::Error::Middleware(e)) => {
                record_error(&span, "middleware", format!("{e:#}"))
            }
        }
        if let Some(m) = measurement.as_mut() {
            measured(m, &result);
        }
        result
    }
}

/// Where a call goes, for `server.address` and `server.port`.
fn server_of(req: &Request) -> Option<(&str, Option<u16>)> {
    let url = req.url();
    url.host_str().map(|h| (h, url.port_or_known_default()))
}

/// A call's end in its measurement: the status and who answered, or why it failed.
fn measured(m: &mut Measurement, result: &reqwest_middleware::Result<Response>) {
    match result {
        Ok(res) => {
            m.http_status(res.status());
            if let Some(origin) = res.envoy_origin() {
                m.origin(origin);
            }
        }
        Err(reqwest_middleware::Error::Reqwest(e)) => m.error(error_kind(e)),
        Err(reqwest_middleware::Error::Middleware(_)) => m.error("middleware"),
    }
}

/// Envoy's local replies are a few bytes; a longer body is an application's.
const MAX_LOCAL_REPLY: u64 = 4096;

/// Works out who answered ([`crate::mesh::envoy::classify`]), records it on the span
/// (`meshtrace.reply.origin`, `meshtrace.envoy.reply`) and stores it in the response's
/// extensions for [`ResponseExt`]. For the statuses Envoy answers with, when nothing marks
/// the response as the upstream's, the short body is read (and put back) to tell which
/// local reply it is.
async fn with_origin(res: Response, span: &Span) -> Result<Response, reqwest::Error> {
    let status = res.status();
    let candidate = matches!(status.as_u16(), 429 | 502 | 503 | 504)
        && !res.headers().contains_key(X_ENVOY_UPSTREAM_SERVICE_TIME)
        && res.content_length().is_some_and(|n| n <= MAX_LOCAL_REPLY);
    let (mut res, origin) = if candidate {
        let url = res.url().clone();
        let version = res.version();
        let headers = res.headers().clone();
        let body = res.bytes().await?;
        let origin = classify(status, &headers, Some(&body));
        let mut rebuilt = http::Response::builder()
            .status(status)
            .version(version)
            .url(url)
            .body(body)
            .expect("status and version come from a response");
        *rebuilt.headers_mut() = headers;
        (Response::from(rebuilt), origin)
    } else {
        let origin = classify(status, res.headers(), None);
        (res, origin)
    };
    record_origin(span, &origin);
    res.extensions_mut().insert(origin);
    Ok(res)
}

/// Who answered a call made through [`MeshClientMiddleware`].
///
/// ```no_run
/// use meshtrace::client::reqwest::ResponseExt;
/// use meshtrace::mesh::envoy::MeshError;
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), Box<dyn std::error::Error>> {
/// let res = client.get("http://ratings:9080/ratings/0").send().await?;
/// match res.mesh_error() {
///     Some(MeshError::CircuitOpen) => { /* back off */ }
///     Some(e) => return Err(e.into()),
///     None => { /* the application answered (maybe with its own 503) */ }
/// }
/// # Ok(()) }
/// ```
pub trait ResponseExt {
    /// The upstream, Envoy (and which reply), or unknown; `None` if the response did not
    /// come through [`MeshClientMiddleware`].
    fn envoy_origin(&self) -> Option<&Origin>;

    /// The mesh failure this response reports, if Envoy answered by itself.
    fn mesh_error(&self) -> Option<MeshError> {
        self.envoy_origin().and_then(Origin::error)
    }
}

impl ResponseExt for Response {
    fn envoy_origin(&self) -> Option<&Origin> {
        self.extensions().get::<Origin>()
    }
}

/// Tracing for plain `reqwest`, without reqwest-middleware.
///
/// ```no_run
/// use meshtrace::client::reqwest::RequestBuilderExt;
/// # async fn run(client: reqwest::Client) -> Result<(), reqwest::Error> {
/// // A client span, with every format injected from it.
/// let res = client.get("http://reviews:9080/reviews/0").send_traced().await?;
/// // Or only the headers of the current span, no client span.
/// let res = client.get("http://reviews:9080/reviews/0").inject_context().send().await?;
/// # Ok(()) }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Adds the trace, baggage and pass-through headers of the current span (no client
    /// span of its own).
    fn inject_context(self) -> Self;

    /// Sends the request inside a client span, with every format injected from it, as
    /// [`MeshClientMiddleware`] does, capped at the deadline budget. (With no budget left the call
    /// fails with reqwest's timeout error; [`MeshClientMiddleware`] gives the typed
    /// [`BudgetExhausted`](crate::mesh::deadline::BudgetExhausted) instead.)
    fn send_traced(self) -> impl Future<Output = Result<Response, reqwest::Error>> + Send;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn inject_context(self) -> Self {
        let mut headers = http::HeaderMap::new();
        Propagation::resolve(None).inject(&context_of(&Span::current()), &mut headers);
        self.headers(headers)
    }

    fn send_traced(self) -> impl Future<Output = Result<Response, reqwest::Error>> + Send {
        let (client, req) = self.build_split();
        async move {
            let mut req = req?;
            let mut measurement = Metrics::global(Side::Client).http(req.method());
            if let Some((host, port)) = server_of(&req) {
                measurement.server(host, port);
            }
            let (span, cx) = start_call(&req, None);
            let budget = call_budget(&cx, &span, DEFAULT_DEADLINE_MARGIN);
            match budget {
                Ok(Some(budget)) => cap_timeout(&mut req, budget),
                Ok(None) => {}
                // reqwest's error type cannot be built here: a zero timeout makes reqwest
                // fail the call at once with its own timeout error.
                Err(_) => cap_timeout(&mut req, Duration::ZERO),
            }
            Propagation::resolve(None).inject(&cx, req.headers_mut());
            let result = client.execute(req).instrument(span.clone()).await;
            match &result {
                Ok(res) => {
                    record_http_status(&span, Side::Client, res.status());
                    measurement.http_status(res.status());
                }
                // The span already says why: the budget ran out.
                Err(_) if budget.is_err() => measurement.error("budget_exhausted"),
                Err(e) => {
                    record_reqwest_error(&span, e);
                    measurement.error(error_kind(e));
                }
            }
            result
        }
    }
}

/// The request's own timeout, or the budget if that is shorter.
fn cap_timeout(req: &mut Request, budget: Duration) {
    let timeout = req.timeout_mut();
    *timeout = Some(timeout.map_or(budget, |t| t.min(budget)));
}

/// The call's span and the context to inject from: a client span, or, when the trace is
/// not recorded (see [`is_unrecorded`]), no span at all and the caller's context.
/// `Span::none()` makes every later recording on it a no-op.
fn start_call(req: &Request, name: Option<&SpanName>) -> (Span, Context) {
    let current = Context::current();
    if is_unrecorded(&current) {
        return (Span::none(), current);
    }
    let span = start(req, name);
    let cx = context_of(&span);
    (span, cx)
}

fn start(req: &Request, name: Option<&SpanName>) -> Span {
    let span = start_span(name, || Cow::Borrowed(span::method_for_name(req.method())));
    span::record_method(&span, req.method());
    let url = req.url();
    if let Some(host) = url.host_str() {
        span::record_server_address(&span, host, url.port_or_known_default());
    }
    span.set_attribute(semconv::URL_FULL, url_without_credentials(url));
    span
}

/// `url.full` must not carry credentials; the semantic conventions say to drop them.
fn url_without_credentials(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    // Only URLs that cannot have credentials refuse these, and those have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.into()
}

fn record_reqwest_error(span: &Span, e: &reqwest::Error) {
    if span.is_none() {
        return;
    }
    record_error(span, error_kind(e), error_chain(e));
}

/// A reqwest failure as `error.type`.
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "_OTHER"
    }
}

#[cfg(test)]
mod tests {
    use super::url_without_credentials;

    #[test]
    fn credentials_are_dropped_from_url_full() {
        for (input, want) in [
            (
                "http://user:secret@ratings:9080/r?x=1",
                "http://ratings:9080/r?x=1",
            ),
            ("http://user@ratings/", "http://ratings/"),
            ("http://ratings:9080/r", "http://ratings:9080/r"),
        ] {
            let url = reqwest::Url::parse(input).unwrap();
            assert_eq!(url_without_credentials(&url), want);
        }
    }
}
