//! What happens when the handler answers: the status on the span, and a body that keeps the
//! span open until the response has been sent.

use crate::instrument::body::TracedBody;
use crate::instrument::grpc::{self, Side};
use crate::instrument::span::{record_error, record_grpc_status, record_http_status};
use http::Response;
use std::fmt;
use tracing::Span;

/// Records the response head, and hands the span to the body. A gRPC status in the head (a
/// trailers-only response) is final; otherwise the body reads it from the trailers.
pub(super) fn on_response<B>(span: Span, grpc: bool, res: Response<B>) -> Response<TracedBody<B>> {
    let status_in_head = grpc.then(|| grpc::status(res.headers())).flatten();
    if let Some(code) = status_in_head {
        record_grpc_status(&span, Side::Server, code, grpc::message(res.headers()));
    } else if !grpc {
        record_http_status(&span, Side::Server, res.status());
    }
    let trailers_expected = grpc && status_in_head.is_none();
    res.map(|body| TracedBody::new(body, span, Side::Server, trailers_expected))
}

/// The handler failed without a response.
pub(super) fn on_error(span: &Span, error: &impl fmt::Display) {
    record_error(span, "_OTHER", error.to_string());
}
