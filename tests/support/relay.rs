//! The gRPC relay the tests call: `meshtrace.test.Relay`, written the way tonic's generated
//! code is (no protoc here), served with `MeshServerLayer` and called through
//! `MeshClientLayer`.
//!
//! - `Relay/Forward` (unary) runs the relay's handler on the request's `path`;
//! - `Relay/Count` streams `n` messages `gap_ms` apart;
//! - `Relay/FailStream` sends one `ForwardReply { body: "first" }`, then fails with
//!   UNAVAILABLE and the request's `path` as message, in the trailers (a stream that fails
//!   after its headers).

use futures_util::future::BoxFuture;
use meshtrace::client::tonic::{MeshClient, MeshClientLayer};
use meshtrace::server::MeshServerLayer;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;
use tower::ServiceBuilder;

// ---------------------------------------------------------------- messages

#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardRequest {
    #[prost(string, tag = "1")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardReply {
    #[prost(string, tag = "1")]
    pub body: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CountRequest {
    #[prost(uint32, tag = "1")]
    pub n: u32,
    #[prost(uint64, tag = "2")]
    pub gap_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CountReply {
    #[prost(uint32, tag = "1")]
    pub i: u32,
}

pub const FORWARD: &str = "/meshtrace.test.Relay/Forward";
pub const COUNT: &str = "/meshtrace.test.Relay/Count";
pub const FAIL_STREAM: &str = "/meshtrace.test.Relay/FailStream";

// ---------------------------------------------------------------- the service

type Handler =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<ForwardReply, tonic::Status>> + Send + Sync>;

/// The relay gRPC service; `Forward` runs its handler.
#[derive(Clone)]
pub struct Relay {
    handler: Handler,
}

/// A relay whose `Forward` runs `handler` on the request's `path`.
pub fn relay<F, Fut>(handler: F) -> Relay
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ForwardReply, tonic::Status>> + Send + 'static,
{
    Relay {
        handler: Arc::new(move |path| Box::pin(handler(path))),
    }
}

struct ForwardSvc(Handler);

impl tonic::server::UnaryService<ForwardRequest> for ForwardSvc {
    type Response = ForwardReply;
    type Future = BoxFuture<'static, Result<tonic::Response<ForwardReply>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ForwardRequest>) -> Self::Future {
        let handler = self.0.clone();
        // The handler runs when the call is first polled, inside the server's span.
        Box::pin(async move {
            handler(req.into_inner().path)
                .await
                .map(tonic::Response::new)
        })
    }
}

type BoxStream<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = T> + Send>>;

struct CountSvc;

impl tonic::server::ServerStreamingService<CountRequest> for CountSvc {
    type Response = CountReply;
    type ResponseStream = BoxStream<Result<CountReply, tonic::Status>>;
    type Future = BoxFuture<'static, Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<CountRequest>) -> Self::Future {
        let CountRequest { n, gap_ms } = req.into_inner();
        let stream = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            Some((Ok(CountReply { i }), i + 1))
        });
        Box::pin(async move {
            Ok(tonic::Response::new(
                Box::pin(stream) as Self::ResponseStream
            ))
        })
    }
}

struct FailStreamSvc;

impl tonic::server::ServerStreamingService<ForwardRequest> for FailStreamSvc {
    type Response = ForwardReply;
    type ResponseStream = BoxStream<Result<ForwardReply, tonic::Status>>;
    type Future = BoxFuture<'static, Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ForwardRequest>) -> Self::Future {
        let message = req.into_inner().path;
        let items = vec![
            Ok(ForwardReply {
                body: "first".into(),
            }),
            Err(tonic::Status::unavailable(message)),
        ];
        Box::pin(async move {
            Ok(tonic::Response::new(
                Box::pin(futures_util::stream::iter(items)) as Self::ResponseStream,
            ))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Relay {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let handler = self.handler.clone();
        match req.uri().path() {
            FORWARD => Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<ForwardReply, ForwardRequest>::default());
                Ok(grpc.unary(ForwardSvc(handler), req).await)
            }),
            COUNT => Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<CountReply, CountRequest>::default());
                Ok(grpc.server_streaming(CountSvc, req).await)
            }),
            FAIL_STREAM => Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<ForwardReply, ForwardRequest>::default());
                Ok(grpc.server_streaming(FailStreamSvc, req).await)
            }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

impl tonic::server::NamedService for Relay {
    const NAME: &'static str = "meshtrace.test.Relay";
}

/// Serves `relay` with tonic's server and `MeshServerLayer` on a free port of 127.0.0.1;
/// returns its address.
pub async fn serve_grpc(relay: Relay) -> SocketAddr {
    serve_grpc_with(relay, MeshServerLayer::new()).await
}

/// Like [`serve_grpc`], through `layer`.
pub async fn serve_grpc_with(relay: Relay, layer: MeshServerLayer) -> SocketAddr {
    let (listener, addr) = super::servers::listen().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(relay)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    addr
}

/// Like [`serve_grpc`], recording each call's path and headers in `seen` (after the server
/// layer, which leaves them as they came).
pub async fn serve_grpc_recording(relay: Relay, seen: super::servers::Seen) -> SocketAddr {
    let (listener, addr) = super::servers::listen().await;
    let recording = RecordingRelay { relay, seen };
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(MeshServerLayer::new())
            .add_service(recording)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    addr
}

/// [`Relay`], recording what each call carried.
#[derive(Clone)]
struct RecordingRelay {
    relay: Relay,
    seen: super::servers::Seen,
}

impl tower::Service<http::Request<tonic::body::Body>> for RecordingRelay {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.relay.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        self.seen
            .lock()
            .expect("lock")
            .push((req.uri().path().to_owned(), req.headers().clone()));
        self.relay.call(req)
    }
}

impl tonic::server::NamedService for RecordingRelay {
    const NAME: &'static str = "meshtrace.test.Relay";
}

// ---------------------------------------------------------------- clients

/// A gRPC client through `MeshClientLayer`.
pub type GrpcClient = tonic::client::Grpc<MeshClient<Channel>>;

/// `http://{addr}` as a tonic endpoint.
pub fn endpoint_of(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).expect("uri")
}

/// A gRPC client on `endpoint` (connected lazily) through `layer`, told the endpoint's URI.
pub fn grpc_client_with(endpoint: Endpoint, layer: MeshClientLayer) -> GrpcClient {
    let layer = layer.server_uri(endpoint.uri());
    let channel = endpoint.connect_lazy();
    tonic::client::Grpc::new(ServiceBuilder::new().layer(layer).service(channel))
}

/// A gRPC client on `endpoint` (connected lazily) through `MeshClientLayer` with `margin`.
pub fn grpc_client(endpoint: Endpoint, margin: Duration) -> GrpcClient {
    grpc_client_with(endpoint, MeshClientLayer::new().deadline_margin(margin))
}

/// Waits until the channel can take a call.
async fn ready(client: &mut GrpcClient) -> Result<(), tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

/// `Relay/Forward` with `path`, with a `grpc-timeout` of `timeout` if given.
pub async fn forward(
    client: &mut GrpcClient,
    path: &str,
    timeout: Option<Duration>,
) -> Result<ForwardReply, tonic::Status> {
    ready(client).await?;
    let mut req = tonic::Request::new(ForwardRequest { path: path.into() });
    if let Some(timeout) = timeout {
        req.set_timeout(timeout);
    }
    let res = client
        .unary(
            req,
            PathAndQuery::from_static(FORWARD),
            ProstCodec::default(),
        )
        .await?;
    Ok(res.into_inner())
}

/// A client for the relay at `addr`, through `MeshClientLayer` with its defaults.
#[derive(Clone)]
pub struct RelayClient {
    grpc: GrpcClient,
}

impl RelayClient {
    pub fn new(addr: SocketAddr) -> Self {
        RelayClient {
            grpc: grpc_client_with(endpoint_of(addr), MeshClientLayer::new()),
        }
    }

    pub async fn forward(&mut self, path: String) -> Result<ForwardReply, tonic::Status> {
        forward(&mut self.grpc, &path, None).await
    }

    pub async fn count(
        &mut self,
        n: u32,
        gap_ms: u64,
    ) -> Result<tonic::Streaming<CountReply>, tonic::Status> {
        ready(&mut self.grpc).await?;
        let res = self
            .grpc
            .server_streaming(
                tonic::Request::new(CountRequest { n, gap_ms }),
                PathAndQuery::from_static(COUNT),
                ProstCodec::default(),
            )
            .await?;
        Ok(res.into_inner())
    }
}
