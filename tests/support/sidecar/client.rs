//! Client helpers for the tests: plain HTTP and gRPC calls and what came back.

use super::*;

/// A whole response as a client got it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub version: Version,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()?
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response came from the upstream through Envoy (it carries
    /// `x-envoy-upstream-service-time`) rather than from Envoy itself.
    pub fn came_from_upstream(&self) -> bool {
        self.headers.contains_key(UPSTREAM_SERVICE_TIME)
    }

    /// The gRPC status, from the headers (trailers-only) or the trailers.
    pub fn grpc_status(&self) -> Option<i32> {
        grpc_status_of(&self.headers).or_else(|| self.trailers.as_ref().and_then(grpc_status_of))
    }

    /// The gRPC messages of the body (length-prefixed, uncompressed).
    pub fn grpc_messages(&self) -> Vec<Bytes> {
        grpc_unframe(&self.body)
    }
}

/// Sends `req` on a new connection to `addr` (HTTP/2 with prior knowledge if the request's
/// version is HTTP/2, else HTTP/1.1) and reads the whole response. The URI should be absolute
/// (`http://host:port/path`); HTTP/1.1 sends its path with a `host` header.
pub async fn send(addr: SocketAddr, req: Request<Bytes>) -> Result<Reply, hyper::Error> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(tcp);
    let (mut parts, data) = req.into_parts();
    let response = if parts.version == Version::HTTP_2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        let task = AbortOnDrop(tokio::spawn(connection).abort_handle());
        let response = sender
            .send_request(Request::from_parts(parts, Payload::data(data)))
            .await?;
        (response, task)
    } else {
        if let Some(authority) = parts.uri.authority().cloned() {
            parts
                .headers
                .entry(http::header::HOST)
                .or_insert(HeaderValue::from_str(authority.as_str()).expect("host"));
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            parts.uri = path.parse().expect("path");
        }
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let task = AbortOnDrop(tokio::spawn(connection).abort_handle());
        let response = sender
            .send_request(Request::from_parts(parts, Payload::data(data)))
            .await?;
        (response, task)
    };
    let (response, _connection) = response;
    let (head, body) = response.into_parts();
    let (body, trailers) = read_body(body).await?;
    Ok(Reply {
        version: head.version,
        status: head.status,
        headers: head.headers,
        body,
        trailers,
    })
}

/// `GET {path}` over HTTP/1.1 to `addr`; panics if the exchange fails.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Bytes::new())
        .expect("request");
    send(addr, req).await.expect("HTTP/1.1 exchange")
}

/// A unary gRPC call over HTTP/2 to `addr`: `POST {path}` with `message` (the encoded request
/// message, framed here) and `headers` added. Panics if the exchange fails.
pub async fn grpc_call(
    addr: SocketAddr,
    path: &str,
    message: &[u8],
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::post(format!("http://{addr}{path}"))
        .version(Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(grpc_frame(message))
        .expect("request");
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    send(addr, req).await.expect("HTTP/2 exchange")
}

/// One gRPC length-prefixed message, uncompressed.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.freeze()
}

/// The messages of a gRPC body (length-prefixed); a truncated tail is dropped.
pub fn grpc_unframe(body: &[u8]) -> Vec<Bytes> {
    let mut messages = Vec::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest.len() < 5 + len {
            break;
        }
        messages.push(Bytes::copy_from_slice(&rest[5..5 + len]));
        rest = &rest[5 + len..];
    }
    messages
}
