//! What happens when a request arrives: extract the caller's context and deadline, make the
//! span, record the request on it, and decide how the handler runs inside it.

use super::make_span::{
    caller_says_unsampled, link_losers, make_span, set_parent, span_name, Call,
};
use super::public::PublicEndpoint;
use crate::instrument::metrics::{Measurement, Metrics};
use crate::instrument::propagation::Propagation;
use crate::instrument::span::{self, CapturedHeader};
use crate::mesh::deadline::{Deadline, DeadlineError, DeadlineExt};
use crate::propagation::passthrough::X_REQUEST_ID;
use http::{HeaderMap, HeaderName, Request};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::sync::{Arc, Once};
use std::time::Instant;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Envoy's retry counter (`1` on the first try), recorded on the server span.
const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

/// The budget a request arrived with (`grpc-timeout` or `x-envoy-expected-rq-timeout-ms`,
/// the tighter), in milliseconds.
const DEADLINE_REMAINING_MS: &str = "meshtrace.deadline.remaining_ms";

/// The request headers every server span records, with their attribute keys
/// (`http.request.header.<name>`); [`MeshServerLayer::record_request_header`] adds more.
///
/// [`MeshServerLayer::record_request_header`]: super::MeshServerLayer::record_request_header
pub(super) static RECORDED_HEADERS: [(HeaderName, &str); 2] = [
    (X_REQUEST_ID, "http.request.header.x-request-id"),
    (
        X_ENVOY_ATTEMPT_COUNT,
        "http.request.header.x-envoy-attempt-count",
    ),
];

/// A request being traced: its span, and how the handler runs inside it.
pub(super) struct Traced {
    pub(super) span: Span,
    pub(super) grpc: bool,
    /// Whether the span is recorded: when not, nothing is recorded on it at the response.
    pub(super) recording: bool,
    /// The request's metric (recorded whether or not the span is).
    pub(super) measurement: Option<Measurement>,
    /// `x-envoy-decorator-operation` for the response, when the layer answers with it.
    pub(super) operation: Option<http::HeaderValue>,
    /// The response headers to record (when the span is recorded).
    pub(super) response_headers: Option<Arc<[CapturedHeader]>>,
    /// The extracted context, made current while the handler runs when no OpenTelemetry
    /// layer tracks the span, so that client layers can still forward the incoming headers.
    fallback: Option<Context>,
}

impl Traced {
    /// Runs `f` inside the span (and the fallback context, if any).
    pub(super) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        let _attached = self.fallback.as_ref().map(|cx| cx.clone().attach());
        f()
    }
}

/// The steps, in order: extract, make the span, record the request, settle the scope.
///
/// When the caller decided not to sample the trace, the span is started first (the sampler
/// runs) and the request is described only if the sampler recorded it anyway (one that is not
/// parent-based). Otherwise the span is named and described before it starts, so that the
/// sampler sees its name and attributes (a root sampler may decide on the route).
///
/// A request to a public endpoint (`public`) gets a new trace instead: its parent context is
/// extracted from the request's headers without any trace context or baggage (the allowed
/// baggage entries are added back), and the span links to the incoming context.
pub(super) fn start<B>(
    req: &Request<B>,
    propagation: Propagation<'_>,
    captured: &[CapturedHeader],
    public: Option<&PublicEndpoint>,
    metrics: Option<&Arc<Metrics>>,
    decorate: bool,
) -> Traced {
    let call = Call::of(req);
    let operation = decorate.then(|| operation(req, call)).flatten();
    let measurement = metrics.map(|metrics| measure(metrics, req, call));
    let (cx, deadline, incoming) = match public {
        None => {
            let (cx, deadline) = extract(req.headers(), propagation);
            (cx, deadline, None)
        }
        Some(public) => {
            let incoming = propagation.extract(req.headers());
            let (fresh, deadline) = extract(&public.sanitized(req.headers()), propagation);
            let cx = public.context(fresh, &incoming);
            (cx, deadline, PublicEndpoint::link(&incoming))
        }
    };
    let (span, parent_set, started) = if caller_says_unsampled(&cx) {
        let span = span::unnamed_server_span();
        let parent_set = set_parent(&span, &cx);
        let started = span.context();
        if started.span().is_recording() {
            started.span().update_name(span_name(req, call));
            describe(&span, req, call, &cx, &deadline, captured);
        }
        (span, parent_set, started)
    } else {
        let span = make_span(req, call);
        let parent_set = set_parent(&span, &cx);
        if let Some(incoming) = incoming {
            span.add_link_with_attributes(
                incoming,
                vec![KeyValue::new("meshtrace.link.reason", "public_endpoint")],
            );
        }
        describe(&span, req, call, &cx, &deadline, captured);
        let started = span.context();
        (span, parent_set, started)
    };
    Traced {
        recording: started.span().is_recording(),
        measurement,
        operation,
        response_headers: None,
        fallback: fallback(&started, parent_set, cx),
        span,
        grpc: call.is_grpc(),
    }
}

/// The sidecar's name for the request, as the application's span has it (`GET /orders/{id}`,
/// `package.Service/Method`): only for a known route, since Envoy's own name (the host and
/// `/*`) says more than a bare method.
fn operation<B>(req: &Request<B>, call: Call<'_>) -> Option<http::HeaderValue> {
    match call {
        Call::Http { route: None } => None,
        _ => http::HeaderValue::try_from(span_name(req, call)).ok(),
    }
}

/// The request's measurement, started now, with what the request says about itself.
fn measure<B>(metrics: &Arc<Metrics>, req: &Request<B>, call: Call<'_>) -> Measurement {
    let mut m = match call {
        Call::Grpc { service, method } => metrics.grpc_server(service, method, req.uri()),
        Call::Http { route } => {
            let mut m = metrics.http(req.method());
            if let Some(route) = route {
                m.route(route);
            }
            m.scheme(req.uri().scheme_str());
            m.version(req.version());
            m
        }
    };
    m.attempt(req.headers());
    m
}

/// What only a recorded span needs: links to the losers, the request, the deadline.
fn describe<B>(
    span: &Span,
    req: &Request<B>,
    call: Call<'_>,
    cx: &Context,
    deadline: &Result<Option<Deadline>, DeadlineError>,
    captured: &[CapturedHeader],
) {
    link_losers(span, cx);
    record_request(span, req, call, captured);
    record_deadline(span, deadline);
}

/// The caller's context, carrying the request's deadline when it has one.
fn extract(
    headers: &HeaderMap,
    propagation: Propagation<'_>,
) -> (Context, Result<Option<Deadline>, DeadlineError>) {
    let cx = propagation.extract(headers);
    let deadline = Deadline::from_headers(headers, Instant::now());
    match deadline {
        Ok(Some(d)) => (cx.with_deadline(d), deadline),
        _ => (cx, deadline),
    }
}

/// The semantic-convention attributes of the request, and the mesh's headers.
fn record_request<B>(span: &Span, req: &Request<B>, call: Call<'_>, captured: &[CapturedHeader]) {
    let headers = req.headers();
    match call {
        Call::Grpc { service, method } => span::record_rpc(span, service, method),
        Call::Http { route } => {
            span::record_method(span, req.method());
            span.set_attribute(semconv::URL_PATH, req.uri().path().to_owned());
            if let Some(route) = route {
                span.set_attribute(semconv::HTTP_ROUTE, route.to_owned());
            }
            let scheme: Value = match req.uri().scheme_str() {
                None | Some("http") => "http".into(),
                Some("https") => "https".into(),
                Some(other) => other.to_owned().into(),
            };
            span.set_attribute(semconv::URL_SCHEME, scheme);
        }
    }
    if let Some((host, port)) = span::server_host_port(req.uri(), headers) {
        span::record_server_address(span, host, port);
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
    span::record_headers(span, headers, captured);
}

/// The time the request arrived with, or an event saying its budget header was unreadable.
fn record_deadline(span: &Span, deadline: &Result<Option<Deadline>, DeadlineError>) {
    match deadline {
        Ok(Some(deadline)) => span.set_attribute(
            DEADLINE_REMAINING_MS,
            i64::try_from(deadline.remaining().as_millis()).unwrap_or(i64::MAX),
        ),
        Ok(None) => {}
        Err(e) => span.add_event(
            "meshtrace.deadline.invalid",
            vec![KeyValue::new(semconv::EXCEPTION_MESSAGE, e.to_string())],
        ),
    }
}

/// `cx`, when the span is not tracked and the handler should run in the extracted context.
///
/// `set_parent` also succeeds, doing nothing, when an OpenTelemetry layer is installed but
/// its own filter leaves this span out; only a started span with a context (`started`, the
/// span's context once started) says the span is tracked. (Starting it in `start` costs
/// nothing: the handler enters it next.)
fn fallback(started: &Context, parent_set: bool, cx: Context) -> Option<Context> {
    if parent_set && started.has_active_span() {
        None
    } else {
        warn_untracked();
        Some(cx)
    }
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

#[cfg(test)]
mod tests {
    use super::RECORDED_HEADERS;
    use opentelemetry_semantic_conventions::attribute::HTTP_REQUEST_HEADER;

    #[test]
    fn recorded_header_keys_follow_the_convention() {
        for (name, key) in RECORDED_HEADERS.iter() {
            assert_eq!(*key, format!("{HTTP_REQUEST_HEADER}.{}", name.as_str()));
        }
    }
}
