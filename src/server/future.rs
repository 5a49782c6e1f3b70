//! [`ResponseFuture`]: runs the handler's future inside the span, then finishes the span.

use super::on_request::Traced;
use super::on_response::{on_error, on_response};
use crate::instrument::body::TracedBody;
use crate::instrument::span::record_headers;
use http::{HeaderName, Response};

/// The response header that names the sidecar's span for this request.
const X_ENVOY_DECORATOR_OPERATION: HeaderName =
    HeaderName::from_static("x-envoy-decorator-operation");
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Poll};

pin_project! {
    /// The response future of [`MeshServer`](super::MeshServer).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        traced: Option<Traced>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn traced(inner: F, traced: Traced) -> Self {
        ResponseFuture {
            inner,
            traced: Some(traced),
        }
    }

    pub(super) fn untraced(inner: F) -> Self {
        ResponseFuture {
            inner,
            traced: None,
        }
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
        let Some(traced) = this.traced.as_ref() else {
            let result = ready!(this.inner.poll(cx));
            return Poll::Ready(result.map(|res| res.map(TracedBody::untraced)));
        };
        let result = ready!(traced.in_scope(|| this.inner.poll(cx)));
        let Traced {
            span,
            grpc,
            recording,
            measurement,
            operation,
            response_headers,
            ..
        } = this.traced.take().expect("checked above");
        Poll::Ready(match result {
            Ok(mut res) => {
                if let Some(operation) = operation {
                    // A name the handler chose itself stays.
                    res.headers_mut()
                        .entry(X_ENVOY_DECORATOR_OPERATION)
                        .or_insert(operation);
                }
                if let Some(names) = response_headers {
                    record_headers(&span, res.headers(), &names);
                }
                Ok(on_response(span, grpc, recording, measurement, res))
            }
            Err(e) => {
                on_error(&span, recording, measurement, &e);
                Err(e)
            }
        })
    }
}
