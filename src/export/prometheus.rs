//! The Prometheus scrape endpoint (feature `prometheus`): opentelemetry-prometheus's reader,
//! served as `GET /metrics` in Prometheus's text format by a small HTTP/1.1 server on a
//! thread of its own (init() may run outside any runtime, and a scrape must not wait for the
//! application's runtime).

use super::{InitError, PrometheusConfig};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opentelemetry_prometheus::PrometheusExporter;
use prometheus::{Encoder, Registry, TextEncoder};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// The running endpoint; dropping it stops it.
pub(super) struct ScrapeEndpoint {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ScrapeEndpoint {
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ScrapeEndpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reader for the meter provider, and the endpoint serving what it reads. Listening is
/// done here, so that a taken port is an error of init(), not a log line later.
pub(super) fn start(
    config: &PrometheusConfig,
) -> Result<(PrometheusExporter, ScrapeEndpoint), InitError> {
    let wanted = format!("{}:{}", config.host, config.port);
    let failed = |error: std::io::Error| InitError::Prometheus {
        addr: wanted.clone(),
        error,
    };
    let registry = Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|e| failed(std::io::Error::other(e.to_string())))?;
    let listener = std::net::TcpListener::bind((config.host.as_str(), config.port))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(failed)?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("meshtrace-prometheus".into())
        .spawn(move || runtime.block_on(serve(listener, registry, stopped)))
        .map_err(failed)?;
    Ok((
        exporter,
        ScrapeEndpoint {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        },
    ))
}

async fn serve(
    listener: std::net::TcpListener,
    registry: Registry,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let registry = registry.clone();
                let service = hyper::service::service_fn(move |req| {
                    std::future::ready(Ok::<_, Infallible>(answer(&registry, &req)))
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// `GET /metrics`: everything the registry holds, in the text format; 404 elsewhere.
fn answer(registry: &Registry, req: &Request<Incoming>) -> Response<String> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut res = Response::new(body);
        *res.status_mut() = status;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        res
    };
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            String::from_utf8_lossy(&body).into_owned(),
        ),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}
