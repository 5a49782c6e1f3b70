//! [`ResponseFuture`]: runs the handler's future inside the span, then finishes the span.

use super::on_request::Traced;
use super::on_response::{on_error, on_response};
use crate::instrument::body::TracedBody;
use http::Response;
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
            ..
        } = this.traced.take().expect("checked above");
        Poll::Ready(match result {
            Ok(res) => Ok(on_response(span, grpc, recording, measurement, res)),
            Err(e) => {
                on_error(&span, recording, measurement, &e);
                Err(e)
            }
        })
    }
}
