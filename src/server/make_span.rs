//! The server span: what the request is (a gRPC call or an HTTP route), the span's name,
//! its parent the caller's span, and links to the traces that lost.

use crate::instrument::grpc;
use crate::instrument::span;
use crate::MeshContextExt;
use http::Request;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

/// What a request calls: a gRPC method, or an HTTP route (axum's `MatchedPath`) if known.
#[derive(Debug, Clone, Copy)]
pub(super) enum Call<'a> {
    Grpc { service: &'a str, method: &'a str },
    Http { route: Option<&'a str> },
}

impl<'a> Call<'a> {
    pub(super) fn of<B>(req: &'a Request<B>) -> Call<'a> {
        let grpc = grpc::is_grpc(req.headers())
            .then(|| grpc::service_and_method(req.uri().path()))
            .flatten();
        match grpc {
            Some((service, method)) => Call::Grpc { service, method },
            None => Call::Http {
                route: matched_path(req),
            },
        }
    }

    pub(super) fn is_grpc(&self) -> bool {
        matches!(self, Call::Grpc { .. })
    }
}

/// The span, named `service/method` for gRPC, `METHOD route` or `METHOD` for HTTP.
pub(super) fn make_span<B>(req: &Request<B>, call: Call<'_>) -> Span {
    span::server_span(&span_name(req, call))
}

/// The server span's name: `service/method` for gRPC, `METHOD route` or `METHOD` for HTTP.
pub(super) fn span_name<B>(req: &Request<B>, call: Call<'_>) -> String {
    let method = span::method_for_name(req.method());
    match call {
        Call::Grpc { service, method } => format!("{service}/{method}"),
        Call::Http { route: Some(route) } => format!("{method} {route}"),
        Call::Http { route: None } => method.to_owned(),
    }
}

/// True when the caller decided not to sample the request (a valid remote parent without
/// the sampled flag, and no B3 debug or deferred decision): under a parent-based sampler
/// (`MeshSampler`, the SDK's `ParentBased`) the server span will not be recorded, whatever
/// its name and attributes, so the layer can learn that before computing them.
pub(super) fn caller_says_unsampled(cx: &Context) -> bool {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        && sc.is_remote()
        && !sc.is_sampled()
        && !cx.mesh().is_some_and(|m| m.is_deferred() || m.is_debug())
}

/// Makes `cx` the span's parent; false when no OpenTelemetry layer takes the span.
pub(super) fn set_parent(span: &Span, cx: &Context) -> bool {
    match span.set_parent(cx.clone()) {
        Ok(()) => true,
        Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => false,
        // The span was created just before and never entered, so it cannot have started.
        Err(SetParentError::AlreadyStarted) => true,
    }
}

/// A link to each trace a losing format carried, when it is not the winner's.
pub(super) fn link_losers(span: &Span, cx: &Context) {
    let Some(mesh) = cx.mesh() else {
        return;
    };
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
