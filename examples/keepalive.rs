//! "transport is closing", reproduced and fixed on one machine.
//!
//! A stand-in for the sidecar sits between a client and an HTTP/2 server on 127.0.0.1 and,
//! like a mesh or NAT that drops idle flows, silently black-holes a client connection that
//! has been idle for 300 ms: the TCP connection stays open, nothing gets through. Calls are
//! made 600 ms apart, each with a 1 s timeout:
//!
//! - with a plain tonic `Endpoint`, the client learns the connection is dead from the calls
//!   that fail;
//! - with [`mesh_endpoint`] (keepalive while idle; its 20 s / 10 s are scaled down to
//!   100 ms here, with the 300 ms idle timeout standing in for the mesh's), the pings keep
//!   the connection alive and every call succeeds.
//!
//! `cargo run --example keepalive`

use axum::routing::post;
use axum::Router;
use meshtrace::client::tonic::mesh_endpoint;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Endpoint;
use tower::ServiceExt;

const IDLE: Duration = Duration::from_millis(300);
const GAP: Duration = Duration::from_millis(600);
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Forwards one client connection to `upstream` until it has been idle for [`IDLE`], then
/// swallows whatever the client sends, forever.
async fn blackholing_pipe(mut client: TcpStream, upstream: std::net::SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut a, mut b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            n = client.read(&mut a) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&a[..n]).await.is_err() { return },
            },
            n = server.read(&mut b) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&b[..n]).await.is_err() { return },
            },
            () = tokio::time::sleep(IDLE) => break,
        }
    }
    drop(server);
    while matches!(client.read(&mut a).await, Ok(n) if n > 0) {}
}

async fn run(label: &str, endpoint: Endpoint) -> usize {
    let channel = endpoint.connect_lazy();
    let mut failed = 0;
    println!("{label}:");
    for call in 0..3 {
        if call > 0 {
            tokio::time::sleep(GAP).await;
        }
        let request = http::Request::post(format!("{}hello", endpoint.uri()))
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::empty())
            .expect("a valid request");
        let started = Instant::now();
        let outcome = tokio::time::timeout(CALL_TIMEOUT, channel.clone().oneshot(request)).await;
        let took = started.elapsed();
        match outcome {
            Ok(Ok(res)) => println!("  call {call}: {} in {took:.1?}", res.status()),
            Ok(Err(e)) => {
                failed += 1;
                println!("  call {call}: failed after {took:.1?}: {e}");
            }
            Err(_) => {
                failed += 1;
                println!("  call {call}: no answer within {CALL_TIMEOUT:?}: the connection is dead and the client does not know");
            }
        }
    }
    failed
}

#[tokio::main]
async fn main() {
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = server.local_addr().expect("addr");
    let app = Router::new().route("/hello", post(|| async { "hello" }));
    tokio::spawn(async move { axum::serve(server, app).await });

    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = proxy.accept().await {
            tokio::spawn(blackholing_pipe(client, upstream));
        }
    });
    println!("HTTP/2 server {upstream}, behind a proxy {proxy_addr} that black-holes connections idle for {IDLE:?}; calls {GAP:?} apart\n");

    let uri = format!("http://{proxy_addr}/");
    let plain = Endpoint::from_shared(uri.clone()).expect("uri");
    let failed_plain = run("plain Endpoint", plain).await;
    println!();
    let preset = mesh_endpoint(Endpoint::from_shared(uri).expect("uri"))
        // The preset's 20 s / 10 s, scaled to this example's 300 ms idle timeout.
        .http2_keep_alive_interval(Duration::from_millis(100))
        .keep_alive_timeout(Duration::from_millis(100));
    let failed_preset = run("mesh_endpoint (keepalive while idle)", preset).await;

    println!(
        "\nplain: {failed_plain} of 3 calls failed; mesh_endpoint: {failed_preset} of 3 failed"
    );
    if failed_preset > 0 || failed_plain == 0 {
        std::process::exit(1);
    }
}
