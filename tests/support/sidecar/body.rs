//! The bodies the sidecar sends and forwards.

use super::*;

/// A body held in memory: some data, then maybe trailers.
pub struct Payload {
    pub(super) data: Option<Bytes>,
    pub(super) trailers: Option<HeaderMap>,
}

impl Payload {
    pub fn empty() -> Self {
        Payload {
            data: None,
            trailers: None,
        }
    }

    pub fn data(data: Bytes) -> Self {
        Payload {
            data: (!data.is_empty()).then_some(data),
            trailers: None,
        }
    }

    pub fn with_trailers(data: Bytes, trailers: HeaderMap) -> Self {
        Payload {
            data: (!data.is_empty()).then_some(data),
            trailers: Some(trailers),
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A request body going upstream.
pub(super) enum UpBody {
    Replay(Payload),
    Stream(Incoming),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Replay(p) => Pin::new(p).poll_frame(cx).map_err(|e| match e {}),
            UpBody::Stream(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Replay(p) => p.is_end_stream(),
            UpBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Replay(p) => p.size_hint(),
            UpBody::Stream(b) => b.size_hint(),
        }
    }
}

/// An upstream response body on its way to the client: ends in an error (a reset of the
/// downstream stream) if the route timeout passes first; keeps the upstream connection and
/// the request's place on its client connection until it ends.
pub(super) struct ForwardBody {
    pub(super) inner: Incoming,
    pub(super) deadline: Option<Pin<Box<Sleep>>>,
    pub(super) _connection: Option<AbortOnDrop>,
    pub(super) _guard: ActiveGuard,
}

/// A response body going to the client.
pub(super) enum ProxyBody {
    Local(Payload),
    Upstream(Box<ForwardBody>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Local(p) => Pin::new(p).poll_frame(cx).map_err(|e| match e {}),
            ProxyBody::Upstream(f) => {
                if let Poll::Ready(frame) = Pin::new(&mut f.inner).poll_frame(cx) {
                    return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
                }
                if let Some(deadline) = f.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err("upstream request timeout".into())));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(p) => p.is_end_stream(),
            ProxyBody::Upstream(f) => f.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(p) => p.size_hint(),
            ProxyBody::Upstream(f) => f.inner.size_hint(),
        }
    }
}

/// Reads a whole body: its data and its trailers (merged, if there were several frames).
pub async fn read_body<B>(body: B) -> Result<(Bytes, Option<HeaderMap>), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut body = body;
    let mut data = BytesMut::new();
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        match frame?.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers.get_or_insert_with(HeaderMap::new).extend(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}
