//! The sidecar itself: its tasks, its listener and the client connections it serves.

use super::*;

/// Every task the sidecar runs, so that stopping it ends them all.
pub(super) struct Tasks {
    pub(super) set: Mutex<JoinSet<()>>,
    pub(super) closed: AtomicBool,
}

impl Tasks {
    pub(super) fn set(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `task` unless the sidecar has stopped (then it is dropped unrun).
    pub(super) fn spawn<F>(&self, task: F) -> Option<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut set = self.set();
        while set.try_join_next().is_some() {}
        Some(set.spawn(task))
    }
}

/// hyper's executor for the sidecar's HTTP/2 streams, on [`Tasks`].
#[derive(Clone)]
pub(super) struct Exec(pub(super) Arc<Tasks>);

impl<F> Executor<F> for Exec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(async move {
            fut.await;
        });
    }
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---------------------------------------------------------------- the sidecar

pub(super) struct Shared {
    pub(super) upstream: SocketAddr,
    pub(super) config: SidecarConfig,
    pub(super) tasks: Arc<Tasks>,
    pub(super) reply: Mutex<Option<LocalReply>>,
    pub(super) attempts: Mutex<Vec<Attempt>>,
    pub(super) requests: AtomicUsize,
    pub(super) accepted: AtomicUsize,
    pub(super) closed: AtomicUsize,
    pub(super) blackholed: AtomicUsize,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn record(&self, attempt: Attempt) -> usize {
        let mut attempts = lock(&self.attempts);
        attempts.push(attempt);
        attempts.len() - 1
    }

    pub(super) fn set_outcome(&self, index: usize, outcome: AttemptOutcome) {
        if let Some(a) = lock(&self.attempts).get_mut(index) {
            a.outcome = outcome;
        }
    }
}

/// A sidecar stand-in on 127.0.0.1 in front of one upstream. See the module documentation.
pub struct Sidecar {
    pub(super) addr: SocketAddr,
    pub(super) shared: Arc<Shared>,
}

impl Sidecar {
    /// A sidecar on a free port of 127.0.0.1 forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr, config: SidecarConfig) -> Sidecar {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let tasks = Arc::new(Tasks {
            set: Mutex::new(JoinSet::new()),
            closed: AtomicBool::new(false),
        });
        let shared = Arc::new(Shared {
            upstream,
            config,
            tasks: tasks.clone(),
            reply: Mutex::new(None),
            attempts: Mutex::default(),
            requests: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            blackholed: AtomicUsize::new(0),
        });
        tasks.spawn(accept_loop(listener, shared.clone()));
        Sidecar { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    pub fn config(&self) -> &SidecarConfig {
        &self.shared.config
    }

    /// From now on, answer every request with `reply` (the upstream untouched), or forward
    /// again with `None`.
    pub fn set_reply(&self, reply: Option<LocalReply>) {
        *lock(&self.shared.reply) = reply;
    }

    pub fn reply(&self) -> Option<LocalReply> {
        lock(&self.shared.reply).clone()
    }

    /// Every attempt so far, in the order sent.
    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.shared.attempts).clone()
    }

    /// The attempts of downstream request `request` (0 for the first), in order.
    pub fn attempts_of(&self, request: usize) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.request == request)
            .collect()
    }

    /// How many requests the sidecar received (answered locally or forwarded).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many client connections it accepted.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many client connections it closed for being idle ([`IdleClose::Fin`]).
    pub fn connections_closed(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// How many client connections it blackholed for being idle ([`IdleClose::Blackhole`]).
    pub fn connections_blackholed(&self) -> usize {
        self.shared.blackholed.load(Ordering::SeqCst)
    }

    /// Waits until `check` holds or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, check: impl Fn(&Sidecar) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Forgets the recorded attempts (request numbering goes on).
    pub fn clear(&self) {
        lock(&self.shared.attempts).clear();
    }

    pub fn is_running(&self) -> bool {
        !self.shared.tasks.closed.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection, client and upstream, and waits until all the
    /// sidecar's tasks have ended. Connections to its port are refused from then on.
    pub async fn stop(&self) {
        self.shared.tasks.closed.store(true, Ordering::SeqCst);
        loop {
            let mut set = std::mem::take(&mut *self.shared.tasks.set());
            if set.is_empty() {
                return;
            }
            set.shutdown().await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.shared.tasks.closed.store(true, Ordering::SeqCst);
        self.shared.tasks.set().abort_all();
    }
}

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        shared.tasks.spawn(serve_downstream(shared.clone(), tcp));
    }
}

// ---------------------------------------------------------------- client connections

/// Activity on one client connection.
pub(super) struct ConnState {
    pub(super) active: AtomicUsize,
    pub(super) last: Mutex<Instant>,
}

impl ConnState {
    pub(super) fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    pub(super) fn last(&self) -> Instant {
        *lock(&self.last)
    }
}

/// A request in flight on a connection; the connection is not idle while one is.
pub(super) struct ActiveGuard(pub(super) Arc<ConnState>);

impl ActiveGuard {
    pub(super) fn new(conn: Arc<ConnState>) -> Self {
        conn.active.fetch_add(1, Ordering::SeqCst);
        conn.touch();
        ActiveGuard(conn)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one client connection: hyper (HTTP/1.1 or HTTP/2, as the client speaks) on one end
/// of an in-memory pipe, and a pump between the pipe and the socket that watches for idleness.
pub(super) async fn serve_downstream(shared: Arc<Shared>, tcp: TcpStream) {
    let conn = Arc::new(ConnState {
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
    });
    let (outer, inner) = tokio::io::duplex(64 * 1024);
    let service = {
        let shared = shared.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let guard = ActiveGuard::new(conn.clone());
            async move { Ok::<_, Infallible>(handle(shared, guard, req).await) }
        })
    };
    let exec = Exec(shared.tasks.clone());
    let server = async move {
        let builder = auto::Builder::new(exec);
        let _ = builder.serve_connection(TokioIo::new(inner), service).await;
    };
    tokio::join!(server, pump(&shared, &conn, tcp, outer));
}

/// Copies bytes between the client socket and hyper's end of the pipe until either side
/// ends, or until the connection is idle, which ends it as `idle_close` says.
pub(super) async fn pump(
    shared: &Shared,
    conn: &ConnState,
    mut client: TcpStream,
    pipe: DuplexStream,
) {
    let idle = {
        let (mut from_client, mut to_client) = client.split();
        let (mut from_hyper, mut to_hyper) = tokio::io::split(pipe);
        let up = copy(&mut from_client, &mut to_hyper, conn);
        let down = copy(&mut from_hyper, &mut to_client, conn);
        let both = async {
            tokio::pin!(up, down);
            tokio::select! {
                _ = &mut down => {}
                // The client finished sending: hyper may still be answering.
                _ = &mut up => down.await,
            }
        };
        let watchdog = async {
            match shared.config.idle_timeout {
                Some(timeout) => idle_watch(conn, timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = both => false,
            _ = watchdog => true,
        }
        // The pipe is dropped here: hyper sees it end.
    };
    if !idle {
        return;
    }
    match shared.config.idle_close {
        IdleClose::Fin => {
            shared.closed.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown().await;
        }
        IdleClose::Blackhole => {
            shared.blackholed.fetch_add(1, Ordering::SeqCst);
            let mut sink = [0u8; 4096];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
}

pub(super) async fn copy<R, W>(from: &mut R, to: &mut W, conn: &ConnState)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        conn.touch();
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
        conn.touch();
    }
    let _ = to.shutdown().await;
}

/// Returns once the connection has carried no bytes for `timeout` with no request in flight.
pub(super) async fn idle_watch(conn: &ConnState, timeout: Duration) {
    loop {
        let due = conn.last() + timeout;
        tokio::time::sleep_until(due.into()).await;
        if conn.active.load(Ordering::SeqCst) > 0 {
            conn.touch();
            continue;
        }
        if conn.last() + timeout <= Instant::now() {
            return;
        }
    }
}
