//! What happens when the handler answers: the status on the span, and a body that keeps the
//! span open until the response has been sent.

use crate::instrument::body::TracedBody;
use crate::instrument::grpc::{self, Side};
use crate::instrument::metrics::Measurement;
use crate::instrument::span::{record_error, record_grpc_status, record_http_status};
use http::Response;
use std::fmt;
use tracing::Span;

/// Records the response head (on the span when it is `recording`, and in the request's
/// measurement), and hands both to the body. A gRPC status in the head (a trailers-only
/// response) is final; otherwise the body reads it from the trailers.
pub(super) fn on_response<B>(
    span: Span,
    grpc: bool,
    recording: bool,
    mut measurement: Option<Measurement>,
    res: Response<B>,
) -> Response<TracedBody<B>> {
    let status_in_head = grpc.then(|| grpc::status(res.headers())).flatten();
    if let Some(m) = measurement.as_mut() {
        match status_in_head {
            Some(code) => m.grpc_status(code),
            None if !grpc => m.http_status(res.status()),
            None => {}
        }
    }
    if recording {
        if let Some(code) = status_in_head {
            record_grpc_status(&span, Side::Server, code, grpc::message(res.headers()));
        } else if !grpc {
            record_http_status(&span, Side::Server, res.status());
        }
    }
    let trailers_expected = grpc && status_in_head.is_none();
    res.map(|body| {
        let body = TracedBody::new(body, span, Side::Server, trailers_expected);
        match recording {
            true => body,
            // Nothing to record; the body still runs inside the span, which ends with it.
            false => body.unrecorded(),
        }
        .measured(measurement)
    })
}

/// The handler failed without a response.
pub(super) fn on_error(
    span: &Span,
    recording: bool,
    measurement: Option<Measurement>,
    error: &impl fmt::Display,
) {
    if recording {
        record_error(span, "_OTHER", error.to_string());
    }
    if let Some(mut m) = measurement {
        m.error("_OTHER");
    }
}
