//! A response body that ends its span when the stream ends, reading gRPC trailers on the way.

use super::grpc::{self, GrpcCode, Side};
use super::metrics::Measurement;
use super::span::{record_error, record_grpc_status};
use crate::mesh::envoy::classify_grpc;
use bytes::Buf;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tracing::Span;

pin_project! {
    /// The response body the layers return: the inner body, keeping its request's span
    /// open until the last frame.
    ///
    /// [`MeshServer`](crate::server::MeshServer) answers `Response<TracedBody<B>>` for a
    /// service answering `Response<B>`, and so does the tonic client layer's service. For
    /// gRPC the span ends where the trailers arrive, so a streaming call's span covers every
    /// message and records the final `grpc-status`. Dropping the body early (the peer went
    /// away) ends the span too. Requests the layer's filter leaves out get a `TracedBody`
    /// with no span, so the response type is the same for every request.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use meshtrace::server::{MeshServer, MeshServerLayer, TracedBody};
    /// use tower::{service_fn, Layer};
    ///
    /// type Body = String;
    /// let service = service_fn(|_req: Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok")))
    /// });
    /// // The wrapped service, and its response type, can be named.
    /// let traced: MeshServer<_> = MeshServerLayer::new().layer(service);
    /// fn answers<S: tower::Service<Request<()>, Response = Response<TracedBody<Body>>>>(_: &S) {}
    /// answers(&traced);
    /// ```
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: Option<Span>,
        side: Side,
        grpc: bool,
        // False when the span is not recorded: it is entered and ended, nothing recorded on it.
        recording: bool,
        // A response-head header to repeat in the trailers (see `carry_to_trailers`).
        carry: Option<(HeaderName, HeaderValue)>,
        // The request's metric, recorded when the stream ends (recorded or not).
        measurement: Option<Measurement>,
    }
}

impl<B> TracedBody<B> {
    /// A body that ends `span` at end of stream. `grpc` asks for the status in the trailers
    /// (false when the response head already carried it).
    pub(crate) fn new(inner: B, span: Span, side: Side, grpc: bool) -> Self {
        TracedBody {
            inner,
            span: Some(span),
            side,
            grpc,
            recording: true,
            carry: None,
            measurement: None,
        }
    }

    /// Records nothing on the span, only ends it (the span of an unsampled request).
    pub(crate) fn unrecorded(mut self) -> Self {
        self.recording = false;
        self
    }

    /// Records `measurement` when the stream ends, with the gRPC status read there.
    pub(crate) fn measured(mut self, measurement: Option<Measurement>) -> Self {
        self.measurement = measurement;
        self
    }

    /// Repeats a header of the response head in the trailers. A gRPC status that arrives in
    /// the trailers reaches the caller with the trailers as its metadata only, and the head's
    /// `x-envoy-upstream-service-time` is what says the upstream, not Envoy, sent it.
    #[cfg(feature = "tonic")]
    pub(crate) fn carry_to_trailers(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.carry = Some((name, value));
        self
    }

    /// A body with no span to end.
    pub(crate) fn untraced(inner: B) -> Self {
        TracedBody {
            inner,
            span: None,
            side: Side::Server,
            grpc: false,
            recording: false,
            carry: None,
            measurement: None,
        }
    }
}

impl<B> Body for TracedBody<B>
where
    B: Body,
    B::Error: std::fmt::Display,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let mut frame = {
            let _entered = this.span.as_ref().map(Span::enter);
            ready!(this.inner.as_mut().poll_frame(cx))
        };
        if let (Some((name, value)), Some(Ok(f))) = (this.carry.as_ref(), frame.as_mut()) {
            if let Some(trailers) = f.trailers_mut() {
                trailers.entry(name).or_insert_with(|| value.clone());
            }
        }
        if this.span.is_none() && this.measurement.is_none() {
            return Poll::Ready(frame);
        }
        let end = match &frame {
            Some(Ok(f)) => match f.trailers_ref() {
                Some(trailers) => Some(Ok(Some(trailers))),
                None => this.inner.is_end_stream().then_some(Ok(None)),
            },
            Some(Err(e)) => Some(Err(e)),
            None => Some(Ok(None)),
        };
        match end {
            None => {}
            Some(Ok(trailers)) => {
                let status = (*this.grpc)
                    .then(|| finish_grpc(*this.side, trailers))
                    .flatten();
                if let (Some(span), Some((code, message))) = (this.span.as_ref(), &status) {
                    if *this.recording {
                        record_grpc_status(span, *this.side, *code, message.clone());
                    }
                }
                if let (Some(m), Some((code, message))) = (this.measurement.as_mut(), &status) {
                    m.grpc_status(*code);
                    if *this.side == Side::Client {
                        let message = message.as_deref().unwrap_or("");
                        let empty = HeaderMap::new();
                        m.origin(&classify_grpc(*code, message, trailers.unwrap_or(&empty)));
                    }
                }
                this.span.take();
                this.measurement.take();
            }
            Some(Err(e)) => {
                if let (Some(span), true) = (this.span.as_ref(), *this.recording) {
                    record_error(span, "body", e.to_string());
                }
                if let Some(m) = this.measurement.as_mut() {
                    m.error("body");
                }
                this.span.take();
                this.measurement.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The status a gRPC stream ended with, and its message. A stream that ends with no status at
/// all is a failure for the client, which will see it as an error.
fn finish_grpc(side: Side, trailers: Option<&HeaderMap>) -> Option<(GrpcCode, Option<String>)> {
    match trailers.and_then(|t| grpc::status(t).map(|code| (code, grpc::message(t)))) {
        Some(status) => Some(status),
        None if side == Side::Client => Some((
            GrpcCode::Unknown,
            Some("stream ended without grpc-status".into()),
        )),
        None => None,
    }
}
