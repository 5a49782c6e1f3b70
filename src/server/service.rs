//! [`MeshServer`]: the per-request path, as its steps.

use super::future::ResponseFuture;
use super::on_request;
use super::MeshServerLayer;
use crate::instrument::body::TracedBody;
use crate::propagation::passthrough::X_REQUEST_ID;
use http::{HeaderValue, Request, Response};
use std::fmt;
use std::task::Poll;
use tower::Service;

/// The service [`MeshServerLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct MeshServer<S> {
    inner: S,
    layer: MeshServerLayer,
}

impl<S> MeshServer<S> {
    pub(super) fn new(inner: S, layer: MeshServerLayer) -> Self {
        MeshServer { inner, layer }
    }
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
        let (traced, public, mut req) = self.decide(req);
        if !traced {
            return ResponseFuture::untraced(self.inner.call(req));
        }
        if self.layer.generates_request_id() {
            ensure_request_id(&mut req);
        }
        let mut traced = on_request::start(
            &req,
            self.layer.propagation(),
            self.layer.captured(),
            public.then_some(self.layer.public_config()),
            self.layer.measured_by(),
            self.layer.decorates(),
        );
        let response_headers = self.layer.captured_response();
        if traced.recording && !response_headers.is_empty() {
            traced.response_headers = Some(response_headers.clone());
        }
        let inner = traced.in_scope(|| self.inner.call(req));
        ResponseFuture::traced(inner, traced)
    }
}

impl<S> MeshServer<S> {
    /// Whether the layer's filter lets the request be traced, whether it is a public
    /// endpoint's, and the request back (taken apart only when a decision needs its parts).
    fn decide<B>(&self, req: Request<B>) -> (bool, bool, Request<B>) {
        if !self.layer.needs_parts() {
            return (true, self.layer.public_for(None).is_some(), req);
        }
        let (parts, body) = req.into_parts();
        let traced = self.layer.traces(&parts);
        let public = traced && self.layer.public_for(Some(&parts)).is_some();
        (traced, public, Request::from_parts(parts, body))
    }
}

/// Gives a request without `x-request-id` a new UUID v4.
fn ensure_request_id<B>(req: &mut Request<B>) {
    if req.headers().contains_key(X_REQUEST_ID) {
        return;
    }
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(X_REQUEST_ID, value);
    }
}
