//! The receiver: listening, serving, faults, and what was received.

use super::*;

/// A running accept loop: `stop` ends it, and it closes the listener and every connection.
pub(super) struct Server {
    pub(super) stop: oneshot::Sender<()>,
    pub(super) task: JoinHandle<()>,
}

/// A listener on `addr` with SO_REUSEADDR, so a restart can take the same port at once.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// [`bind`], retried every 50 ms for up to `patience`; panics if it still fails.
pub(super) async fn bind_within(addr: SocketAddr, patience: Duration) -> TcpListener {
    let deadline = Instant::now() + patience;
    loop {
        match bind(addr) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                eprintln!("otlp receiver: binding {addr} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("otlp receiver: cannot listen on {addr}: {e}"),
        }
    }
}

/// Accepts connections until `stop`, serving each with `service` (HTTP/1.1 or HTTP/2, as the
/// client speaks); then closes the listener and aborts every connection.
pub(super) async fn accept_loop<S, B>(
    listener: TcpListener,
    service: S,
    mut stop: oneshot::Receiver<()>,
) where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Dropping a connection's task drops its socket: the client sees the connection close.
    connections.shutdown().await;
}

/// An OTLP trace receiver on 127.0.0.1. See the module documentation.
pub struct Receiver {
    pub(super) transport: Transport,
    pub(super) addr: SocketAddr,
    pub(super) shared: Arc<Shared>,
    pub(super) server: Mutex<Option<Server>>,
}

impl Receiver {
    /// An OTLP/gRPC receiver on a free port of 127.0.0.1, healthy.
    pub async fn start_grpc() -> Receiver {
        Receiver::start(Transport::Grpc).await
    }

    /// An OTLP/HTTP (protobuf) receiver on a free port of 127.0.0.1, healthy.
    pub async fn start_http() -> Receiver {
        Receiver::start(Transport::Http).await
    }

    /// A receiver for `transport` on a free port of 127.0.0.1, healthy.
    pub async fn start(transport: Transport) -> Receiver {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        Receiver::with_listener(transport, listener)
    }

    /// A receiver for `transport` on `addr`, healthy: for an exporter that was aimed at the
    /// address before any collector listened there. Panics if `addr` cannot be bound within
    /// 5 s.
    pub async fn start_on(transport: Transport, addr: SocketAddr) -> Receiver {
        Receiver::with_listener(transport, bind_within(addr, Duration::from_secs(5)).await)
    }

    pub(super) fn with_listener(transport: Transport, listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().expect("local addr");
        let (control, _) = watch::channel(Control {
            mode: Mode::Healthy,
            stops: 0,
        });
        let receiver = Receiver {
            transport,
            addr,
            shared: Arc::new(Shared {
                store: Mutex::default(),
                control,
                held: AtomicUsize::new(0),
            }),
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    pub(super) fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = match self.transport {
            Transport::Grpc => {
                let traces =
                    TraceServiceServer::from_arc(Arc::new(GrpcTraces(self.shared.clone())));
                let service = logs::grpc_with_logs(traces, &self.shared)
                    .add_service(super::metrics::grpc_service(self.shared.clone()));
                tokio::spawn(accept_loop(listener, service, stopped))
            }
            Transport::Http => {
                let service = Router::new()
                    .route(TRACES_PATH, post(http_export))
                    .route(METRICS_PATH, post(super::metrics::http_export_metrics));
                let service = logs::http_with_logs(service).with_state(self.shared.clone());
                tokio::spawn(accept_loop(listener, service, stopped))
            }
        };
        *self.server() = Some(Server { stop, task });
    }

    pub(super) fn server(&self) -> MutexGuard<'_, Option<Server>> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The receiver's address (the same across stop and restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The URL to give an exporter: `http://127.0.0.1:PORT`. For OTLP/HTTP this is the base
    /// URL (what `OTEL_EXPORTER_OTLP_ENDPOINT` takes; the exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1/traces`: the full OTLP/HTTP traces URL, which is what
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and opentelemetry-otlp's `with_endpoint` on the
    /// HTTP exporter take (both use it as it is).
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint())
    }

    // ------------------------------------------------------------ faults

    /// Switches how export requests are answered from now on; requests held by
    /// [`Mode::Hang`] are released (answered with an error) when the mode changes.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.control.send_if_modified(|c| {
            let changed = c.mode != mode;
            c.mode = mode;
            changed
        });
    }

    pub fn mode(&self) -> Mode {
        self.shared.control.borrow().mode
    }

    /// The number of export requests held unanswered right now by [`Mode::Hang`].
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Whether the receiver is listening (not stopped).
    pub fn is_running(&self) -> bool {
        self.server().is_some()
    }

    /// Closes the listener and every open connection and releases held requests; from then on
    /// connections to the port are refused. Stored data and the mode are kept. Does nothing if
    /// already stopped.
    pub async fn stop(&self) {
        let server = self.server().take();
        let Some(Server { stop, task }) = server else {
            return;
        };
        let _ = stop.send(());
        let _ = task.await;
        // Held requests on HTTP/2 run in tasks of their own, apart from their connection's.
        self.shared.control.send_modify(|c| c.stops += 1);
    }

    /// Listens again on the same port, in the current mode. Does nothing if running.
    pub async fn restart(&self) {
        if self.is_running() {
            return;
        }
        let listener = bind_within(self.addr, Duration::from_secs(5)).await;
        self.serve(listener);
    }

    // ------------------------------------------------------------ what was received

    /// Every `ResourceSpans` of every stored export, in the order received.
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.shared.store().resource_spans.clone()
    }

    /// Every stored span, flattened, in the order received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        flatten(&self.shared.store().resource_spans)
    }

    /// The stored spans named `name`.
    /// The spans received of trace `trace_id` (lowercase hex).
    pub fn spans_of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    pub fn spans_named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// Waits until at least `n` spans are stored or `timeout` passes, then returns the stored
    /// spans: check the length, it is short of `n` on a timeout.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The number of export requests received, whatever their outcome (retries included).
    pub fn requests(&self) -> usize {
        self.shared.store().requests.len()
    }

    /// Every export request received, in order.
    pub fn request_log(&self) -> Vec<ExportRequest> {
        self.shared.store().requests.clone()
    }

    /// The headers of every export request received, in order (gRPC: the request metadata).
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.shared
            .store()
            .requests
            .iter()
            .map(|r| r.headers.clone())
            .collect()
    }

    /// Waits until at least `n` export requests were received or `timeout` passes; returns
    /// how many were.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.requests();
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Forgets every stored span and request.
    pub fn clear(&self) {
        *self.shared.store() = Store::default();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server().take() {
            let _ = server.stop.send(());
        }
        // Releases held requests; the accept loop closes everything once it sees the stop.
        self.shared.control.send_modify(|c| c.stops += 1);
    }
}
