//! A failing collector must not hurt the service that exports to it. Each fault runs with the
//! instrumented service under steady requests: no collector at start; the collector stops
//! mid-run and comes back; the collector answers errors; the collector hangs. In every case
//! requests keep their latency (compared with a healthy run of the same service, with
//! generous bounds), memory stays bounded by the batch queue, spans created after the
//! collector is back arrive, and the guard's shutdown returns within its timeout.
//!
//! The service: a front axum service behind `MeshServerLayer` that calls a plain back service
//! through `MeshClientMiddleware` (two spans per request: the server span and the client span),
//! with telemetry from `TelemetryBuilder::from_env_source` (an explicit map: the tests run in
//! parallel and never touch the process environment) exporting OTLP to the receiver of
//! `tests/support/otlp`, which runs on a runtime of its own as a collector in another process
//! would.
//!
//! The batch processor keeps its defaults (queue 2048 spans, batch 512, 5 s delay), as a
//! deployment that sets no `OTEL_BSP_*` has them, except where a test sets them to check they
//! take effect. Tests that need the queue pushed out call `force_flush`, on the blocking pool
//! (it blocks; the batch processor's own limit for it is a fixed 5 s).
//!
//! Latency bounds are relative to the healthy run, never absolute alone: a fault-phase median
//! may be at most `max(3 × healthy median, healthy median + 5 ms)`.
#![cfg(all(feature = "otlp", feature = "axum", feature = "reqwest"))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use support::otlp::service::{collector, collector_runtime, Env};
use support::otlp::{Mode, Outcome, Receiver, SpanKind, Transport};
use support::servers::Caller;
use support::{otlp, servers};
use tokio::runtime::Runtime;

/// `OTEL_EXPORTER_OTLP_TIMEOUT`: one export, retries included, gives up after this.
const EXPORT_TIMEOUT_MS: u64 = 500;
/// `TelemetryBuilder::shutdown_timeout`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// What a shutdown may take beyond its timeout: thread hand-offs on a loaded 2-core machine.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(1);
/// Sequential requests per measured phase.
const PHASE: usize = 300;
/// Requests before the first measured phase: connections, allocator, caches.
const WARM_UP: usize = 50;
/// Requests whose spans must arrive once the collector is healthy again.
const AFTER: usize = 10;
/// How long spans that should arrive get to arrive.
const ARRIVAL: Duration = Duration::from_secs(15);
/// The SDK's default batch queue, in spans.
const QUEUE: usize = 2048;

// ---------------------------------------------------------------- the service

/// The resident set size is the whole process's: the memory test measures it alone, while
/// every other test holds this shared.
static RSS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    RSS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    RSS.write().unwrap_or_else(|e| e.into_inner())
}

/// A port nothing listens on: bound, then let go.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// The environment of a service exporting over `transport` to `endpoint`
/// (`http://127.0.0.1:PORT`) with the short [`EXPORT_TIMEOUT_MS`].
fn env(transport: Transport, endpoint: String) -> Env {
    let mut env = otlp::service::env("faults", transport, endpoint);
    env.insert("OTEL_EXPORTER_OTLP_TIMEOUT", EXPORT_TIMEOUT_MS.to_string());
    env
}

/// The instrumented service and what drives it.
type Service = otlp::service::Service<Front>;

/// The service's front, and the driver's client for it.
struct Front {
    addr: SocketAddr,
    /// The driver's client (no tracing of its own; it stands for the sidecar).
    client: reqwest::Client,
    /// Numbers the requests, so each has a trace id of its own.
    sent: u64,
}

impl Service {
    /// The service, exporting over `transport` to `endpoint` (`http://127.0.0.1:PORT`) with
    /// the short [`EXPORT_TIMEOUT_MS`].
    fn start(transport: Transport, endpoint: String) -> Service {
        Service::with(env(transport, endpoint), None)
    }

    /// The service configured by `env`, with `second` as a second exporter beside OTLP if
    /// given.
    fn with(env: Env, second: Option<StuckExporter>) -> Service {
        let mut telemetry = otlp::service::builder(&env).shutdown_timeout(SHUTDOWN_TIMEOUT);
        if let Some(second) = second {
            telemetry = telemetry.with_span_exporter(second);
        }
        Service::launch("service", telemetry, async {
            let back =
                servers::serve(Router::new().route("/back/{id}", get(|| async { "ok" }))).await;
            let front_app = Router::new()
                .route("/front/{id}", get(front))
                .with_state(Caller::new(format!("http://{back}")))
                .layer(MeshServerLayer::new());
            Front {
                addr: servers::serve(front_app).await,
                client: reqwest::Client::new(),
                sent: 0,
            }
        })
    }

    /// A collector for `transport` on a runtime of its own, and the service exporting to it.
    fn with_collector(transport: Transport) -> (Runtime, Receiver, Service) {
        let (collector, receiver) = collector(transport);
        let service = Service::start(transport, receiver.endpoint());
        (collector, receiver, service)
    }

    /// One request as the sidecar forwards it, with a new B3 trace; expects a 200. Returns
    /// the trace id and how long the request took.
    fn request(&mut self) -> (String, Duration) {
        self.app.sent += 1;
        let sent = self.app.sent;
        let trace_id = format!("{:016x}{:016x}", 0xfa_u64 << 56 | sent, sent);
        let url = format!("http://{}/front/{sent}", self.app.addr);
        let request = self
            .app
            .client
            .get(url)
            .header("x-b3-traceid", &trace_id)
            .header("x-b3-spanid", &trace_id[16..])
            .header("x-b3-sampled", "1");
        let took = self.block_on(async {
            let start = Instant::now();
            let response = request.send().await.expect("the service answers");
            let status = response.status();
            let body = response.bytes().await.expect("body");
            let took = start.elapsed();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            took
        });
        (trace_id, took)
    }

    /// `n` sequential requests; the median of their latencies.
    fn phase(&mut self, n: usize) -> Duration {
        let mut took: Vec<Duration> = (0..n).map(|_| self.request().1).collect();
        took.sort();
        took[n / 2]
    }

    /// A [`WARM_UP`], then a measured phase; its median.
    fn warm_phase(&mut self) -> Duration {
        self.phase(WARM_UP);
        self.phase(PHASE)
    }

    /// `n` requests whose trace ids are kept.
    fn traced(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.request().0).collect()
    }
}

/// A second backend as stuck as a hanging collector: every export blocks until released (or
/// 30 s pass).
#[derive(Debug, Clone, Default)]
struct StuckExporter {
    released: Arc<AtomicBool>,
}

impl opentelemetry_sdk::trace::SpanExporter for StuckExporter {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        // The batch processor runs exports on its own thread; blocking it is what a stuck
        // synchronous exporter does.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.released.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

async fn front(
    State(caller): State<Caller>,
    Path(id): Path<String>,
) -> Result<&'static str, (StatusCode, String)> {
    caller.call(&id).await?;
    Ok("front")
}

// ---------------------------------------------------------------- checks

/// A fault-phase median within the bound the module documentation gives.
fn assert_latency_holds(fault: &str, healthy: Duration, faulty: Duration) {
    let bound = (healthy * 3).max(healthy + Duration::from_millis(5));
    eprintln!("{fault}: median {faulty:?}, healthy {healthy:?}, bound {bound:?}");
    assert!(
        faulty <= bound,
        "{fault}: median latency {faulty:?} against {healthy:?} healthy (bound {bound:?})"
    );
}

/// A flush while the fault lasts fails. A flush with nothing queued succeeds whatever the
/// collector does, and the batch processor may have taken the phase's spans out itself; so
/// flush what is left, then make one more request, whose spans only the next flush takes
/// (a few tries, against the processor's 5 s timer taking them first).
fn assert_flush_fails(service: &mut Service, fault: &str) {
    let _ = service.flush();
    for _ in 0..3 {
        service.request();
        if service.flush().is_err() {
            return;
        }
    }
    panic!("{fault}: every flush succeeded");
}

/// Flushes until the receiver holds the server and client span of every trace in `traces`,
/// failing after [`ARRIVAL`].
fn assert_arrive(service: &Service, receiver: &Receiver, traces: &[String]) {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        // Errors are expected while the exporter finds its way back (a reconnecting channel,
        // spans queued during the fault going out first); arrival is what counts.
        let flushed = service.flush();
        let spans = receiver.spans();
        let missing: Vec<&String> = traces
            .iter()
            .filter(|t| {
                let of_trace = || spans.iter().filter(|s| &s.trace_id == *t);
                !(of_trace().any(|s| s.kind == SpanKind::Server)
                    && of_trace().any(|s| s.kind == SpanKind::Client))
            })
            .collect();
        if missing.is_empty() {
            for span in spans.iter().filter(|s| traces.contains(&s.trace_id)) {
                assert_eq!(span.service_name, "faults");
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} traces made after the collector came back never arrived (last flush: \
             {flushed:?}; {} spans stored); first missing: {}",
            missing.len(),
            traces.len(),
            spans.len(),
            missing[0]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`AFTER`] new requests, whose traces must then [`assert_arrive`].
fn assert_new_traces_arrive(service: &mut Service, receiver: &Receiver) {
    let after = service.traced(AFTER);
    assert_arrive(service, receiver, &after);
}

/// The guard's shutdown returns within its timeout (plus [`SHUTDOWN_SLACK`]); its result.
fn assert_prompt_shutdown(service: &mut Service, what: &str) -> Result<(), String> {
    let (result, took) = service.shutdown();
    eprintln!("{what}: shutdown took {took:?}: {result:?}");
    assert!(
        took <= SHUTDOWN_TIMEOUT + SHUTDOWN_SLACK,
        "{what}: shutdown took {took:?} (timeout {SHUTDOWN_TIMEOUT:?}): {result:?}"
    );
    result
}

/// The process's resident set size, from `/proc/self/status` (`VmRSS`, in kB).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- the faults

/// No collector when the service starts: requests are as fast as with one, and once a
/// collector listens on the configured address, new spans reach it.
#[test]
fn no_collector_at_start() {
    let _shared = shared();
    let addr = free_addr();
    let collector = collector_runtime();
    let mut service = Service::start(Transport::Http, format!("http://{addr}"));
    // The fault comes first here; the healthy run follows on the same service.
    let down = service.warm_phase();
    assert_flush_fails(&mut service, "no collector");

    let receiver = collector.block_on(Receiver::start_on(Transport::Http, addr));
    let healthy = service.phase(PHASE);
    assert_latency_holds("no collector", healthy, down);

    assert_new_traces_arrive(&mut service, &receiver);
    assert_prompt_shutdown(&mut service, "no collector").expect("shutdown, collector healthy");
}

/// The collector stops while requests flow and comes back on the same port: requests keep
/// their latency, and spans made after it is back arrive. Over gRPC, whose channel loses its
/// connection and has to make a new one.
#[test]
fn collector_stops_mid_run_and_comes_back() {
    let _shared = shared();
    let (collector, receiver, mut service) = Service::with_collector(Transport::Grpc);
    let receiver = Arc::new(receiver);
    let healthy = service.warm_phase();
    service.flush().expect("flush to a healthy collector");
    assert!(receiver.requests() > 0);

    // The stop lands while the phase's requests flow (a phase takes a few hundred ms).
    let stopping = collector.spawn({
        let receiver = receiver.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            receiver.stop().await;
        }
    });
    let stopping_phase = service.phase(PHASE);
    collector.block_on(stopping).expect("stop");
    assert!(!receiver.is_running());
    let down = service.phase(PHASE);
    assert_latency_holds("collector stopping", healthy, stopping_phase);
    assert_latency_holds("collector stopped", healthy, down);
    assert_flush_fails(&mut service, "collector stopped");

    collector.block_on(receiver.restart());
    assert_new_traces_arrive(&mut service, &receiver);
    assert_prompt_shutdown(&mut service, "stopped and back").expect("shutdown, collector back");
}

/// The collector refuses every export: requests keep their latency; once it accepts again,
/// new spans arrive; the guard dropped while it refuses returns promptly.
#[test]
fn collector_answers_errors() {
    let _shared = shared();
    let (_collector, receiver, mut service) = Service::with_collector(Transport::Http);
    let healthy = service.warm_phase();

    receiver.set_mode(Mode::Error);
    let before = receiver.requests();
    let refusing = service.phase(PHASE);
    assert_latency_holds("collector answers errors", healthy, refusing);
    assert_flush_fails(&mut service, "collector answers errors");
    let log = receiver.request_log();
    assert!(
        log.len() > before,
        "no export reached the refusing collector"
    );
    assert!(log[before..].iter().all(|r| r.outcome == Outcome::Refused));

    receiver.set_mode(Mode::Healthy);
    assert_new_traces_arrive(&mut service, &receiver);

    // Dropping the guard (not calling `shutdown`) is bounded the same way, while refused.
    receiver.set_mode(Mode::Error);
    service.phase(100);
    let guard = service.guard.take().expect("guard");
    let took = service.block_on(async {
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            drop(guard);
            start.elapsed()
        })
        .await
        .expect("drop task")
    });
    eprintln!("collector answers errors: dropping the guard took {took:?}");
    assert!(
        took <= SHUTDOWN_TIMEOUT + SHUTDOWN_SLACK,
        "dropping the guard took {took:?}"
    );
}

/// The collector accepts exports and never answers: requests keep their latency, and once it
/// answers again new spans arrive.
#[test]
fn collector_hangs() {
    let _shared = shared();
    let (collector, receiver, mut service) = Service::with_collector(Transport::Http);
    let healthy = service.warm_phase();

    receiver.set_mode(Mode::Hang);
    let before = receiver.requests();
    let hanging = service.phase(PHASE);
    assert_latency_holds("collector hangs", healthy, hanging);
    // The 600 spans set off an export at 512, held by the collector until the exporter's
    // timeout; wait for it rather than flush (a flush would wait out the timeout too).
    let arrived = collector.block_on(receiver.wait_for_requests(before + 1, ARRIVAL));
    assert!(arrived > before, "no export reached the hanging collector");
    assert!(receiver.request_log()[before..]
        .iter()
        .all(|r| r.outcome == Outcome::Pending));

    receiver.set_mode(Mode::Healthy);
    assert_new_traces_arrive(&mut service, &receiver);
    assert_prompt_shutdown(&mut service, "collector hung").expect("shutdown, collector healthy");
}

/// While the collector hangs, memory stays bounded by the batch queue however many spans are
/// made.
///
/// Finished spans wait in the batch processor's queue, which holds at most QUEUE (2048) spans
/// besides the batch (512) stuck in a hung export; past that, `on_end` drops them. So once the
/// queue is full, the spans of ever more requests must cost no more memory. Kept, each would
/// cost its `SpanData` (352 bytes) and its attributes (a dozen and more at 56 bytes, with
/// their strings: `http.*`, `url.*`, `server.*`, and the `code.*`/`thread.*` ones
/// tracing-opentelemetry adds): measured by keeping every span (an in-memory exporter beside
/// OTLP), the 4 × QUEUE spans this test makes after filling the queue grow the resident set
/// by about 11 MiB. Dropped, they must grow it by less than 4 MiB. What else may grow
/// meanwhile grows with time, not spans: one hung export at a time, whose body (~200 KiB for
/// a batch) goes when the exporter gives up after `EXPORT_TIMEOUT_MS`. The resident set is the
/// whole process's, so this test runs alone (`RSS`).
#[test]
fn memory_stays_bounded_while_the_collector_hangs() {
    let _alone = exclusive();
    let (_collector, receiver, mut service) = Service::with_collector(Transport::Http);
    service.warm_phase();

    let at_start = rss_bytes();
    receiver.set_mode(Mode::Hang);
    // Well past a full queue: 2 × QUEUE spans, of which the processor can take at most one
    // batch per hung export.
    service.phase(QUEUE);
    let full = rss_bytes();
    let spans = 4 * QUEUE;
    let begun = Instant::now();
    service.phase(spans / 2);
    let end = rss_bytes();
    let grown = end.saturating_sub(full);
    eprintln!(
        "memory: RSS {} KiB healthy, {} KiB with a full queue, {} KiB after {spans} more spans \
         ({:?}); {} export requests reached the collector",
        at_start / 1024,
        full / 1024,
        end / 1024,
        begun.elapsed(),
        receiver.requests()
    );
    assert!(
        grown < 4 * MIB,
        "RSS grew by {} KiB over {spans} spans made with a full queue while the collector hangs",
        grown / 1024
    );
    assert!(
        end.saturating_sub(at_start) < 64 * MIB,
        "RSS grew by {} KiB while the collector hangs",
        end.saturating_sub(at_start) / 1024
    );
    receiver.set_mode(Mode::Healthy);
    assert_prompt_shutdown(&mut service, "memory").expect("shutdown, collector healthy");
}

/// The queue bound holds as configured (`OTEL_BSP_MAX_QUEUE_SIZE` from the same source as
/// the rest): of the spans made while the collector hangs, at most the queue and the one batch
/// in flight are ever exported; the rest were dropped as they ended, not kept.
#[test]
fn configured_queue_bounds_what_waits_for_a_hanging_collector() {
    const QUEUE_SIZE: usize = 16;
    const BATCH: usize = 8;
    let _shared = shared();
    let (_collector, receiver) = collector(Transport::Http);
    let mut env = env(Transport::Http, receiver.endpoint());
    env.insert("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE_SIZE.to_string());
    env.insert("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", BATCH.to_string());
    // No timer export during the test: only full batches and flushes go out.
    env.insert("OTEL_BSP_SCHEDULE_DELAY", "60000".into());
    let mut service = Service::with(env, None);

    receiver.set_mode(Mode::Hang);
    let during = service.traced(100);
    receiver.set_mode(Mode::Healthy);
    // Until the queue has room again, new spans are dropped like the rest: let the held
    // export end and the queue go out first, then make fewer new spans than it holds.
    let _ = service.flush();
    let after = service.traced(QUEUE_SIZE / 4);
    assert_arrive(&service, &receiver, &after);

    let made = 2 * during.len();
    let exported = receiver
        .spans()
        .iter()
        .filter(|s| during.contains(&s.trace_id))
        .count();
    eprintln!("queue of {QUEUE_SIZE}: {exported} of {made} spans made while hanging exported");
    assert!(
        exported <= QUEUE_SIZE + BATCH,
        "{exported} of the {made} spans made while the collector hung were exported, more than \
         the queue ({QUEUE_SIZE}) and a batch ({BATCH}) hold"
    );
    assert!(receiver.request_log().iter().all(|r| r.spans <= BATCH));
    assert_prompt_shutdown(&mut service, "small queue").expect("shutdown, collector healthy");
}

/// With the collector hanging under steady load, the guard's shutdown returns within its
/// timeout, though the export it has to wait for would take far longer: here the exporter
/// keeps its default timeout (10 s), as a deployment that sets none does, against a 2 s
/// shutdown timeout.
fn shutdown_while_the_collector_hangs(transport: Transport) {
    let _shared = shared();
    let (collector, receiver) = collector(transport);
    let mut env = env(transport, receiver.endpoint());
    env.remove("OTEL_EXPORTER_OTLP_TIMEOUT");
    let mut service = Service::with(env, None);
    service.phase(WARM_UP);
    receiver.set_mode(Mode::Hang);

    // Steady load from the service's runtime until the shutdown is over.
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let running = running.clone();
        let client = service.app.client.clone();
        let url = format!("http://{}/front/load", service.app.addr);
        service.runtime.spawn(async move {
            let mut sent = 0_u64;
            while running.load(Ordering::Relaxed) {
                let response = client.get(&url).send().await.expect("the service answers");
                assert_eq!(response.status(), 200);
                sent += 1;
            }
            sent
        })
    };
    // Shut down while an export hangs (the load's first batch of 512 spans sets one off);
    // it would hang for 10 s.
    let before = receiver.requests();
    let arrived = collector.block_on(receiver.wait_for_requests(before + 1, ARRIVAL));
    assert!(arrived > before, "no export reached the collector");

    let result = assert_prompt_shutdown(&mut service, &format!("{transport:?}, hanging"));
    running.store(false, Ordering::Relaxed);
    let sent = service
        .block_on(load)
        .expect("the load kept getting answers");
    assert!(sent > 0);
    // It gave up at its timeout: the bound above was put to the test.
    match result {
        Err(e) if e.contains("timed out") || e.contains("Timeout") => {}
        other => panic!("shutdown was not cut short by its timeout: {other:?}"),
    }
}

#[test]
fn http_shutdown_returns_within_its_timeout_while_the_collector_hangs() {
    shutdown_while_the_collector_hangs(Transport::Http);
}

#[test]
fn grpc_shutdown_returns_within_its_timeout_while_the_collector_hangs() {
    shutdown_while_the_collector_hangs(Transport::Grpc);
}

/// `TelemetryGuard::shutdown` "flushes what is queued and shuts down, within the configured
/// timeout; says whether everything went out". With spans queued and a collector refusing
/// them, it must say they did not.
///
/// Fails with opentelemetry_sdk 0.33: `BatchSpanProcessor::shutdown_with_timeout` replaces
/// the result of its final export with `Ok(())` (`recv_timeout(..).map(|_| .. Ok(()))`), so
/// only a timeout ever comes back as an error; the guard passes that on.
#[test]
fn shutdown_says_when_queued_spans_did_not_go_out() {
    let _shared = shared();
    let (_collector, receiver, mut service) = Service::with_collector(Transport::Http);
    receiver.set_mode(Mode::Error);
    // Queued, well under a batch: only the shutdown exports them.
    let traces = service.traced(AFTER);
    let result = assert_prompt_shutdown(&mut service, "refused at shutdown");
    let log = receiver.request_log();
    assert!(!log.is_empty(), "the shutdown exported nothing");
    assert!(log.iter().all(|r| r.outcome == Outcome::Refused), "{log:?}");
    assert!(receiver
        .spans()
        .iter()
        .all(|s| !traces.contains(&s.trace_id)));
    assert!(
        result.is_err(),
        "every export of the {} queued spans was refused, yet shutdown returned Ok(())",
        2 * AFTER
    );
}

/// `TelemetryBuilder::shutdown_timeout` is "how long the guard's shutdown may take, flushing
/// included", also with a second exporter added by `with_span_exporter`. With the collector
/// hanging and the second exporter stuck too, the shutdown must still return within it.
///
/// Fails: the guard hands the whole timeout to `SdkTracerProvider::shutdown_with_timeout`,
/// which gives it to each span processor in turn, so the shutdown takes up to one timeout per
/// exporter (here 2 × 2 s).
#[test]
fn shutdown_timeout_covers_every_exporter() {
    let _shared = shared();
    let (_collector, receiver) = collector(Transport::Http);
    receiver.set_mode(Mode::Hang);
    let second = StuckExporter::default();
    // The exporter's default timeout (10 s), longer than the shutdown's.
    let mut env = env(Transport::Http, receiver.endpoint());
    env.remove("OTEL_EXPORTER_OTLP_TIMEOUT");
    let mut service = Service::with(env, Some(second.clone()));
    // Queued in both processors, well under a batch: only the shutdown exports them.
    service.traced(AFTER);
    let (result, took) = service.shutdown();
    second.released.store(true, Ordering::Relaxed);
    eprintln!("two stuck exporters: shutdown took {took:?}: {result:?}");
    assert!(
        took <= SHUTDOWN_TIMEOUT + SHUTDOWN_SLACK,
        "with two stuck exporters, shutdown took {took:?} (timeout {SHUTDOWN_TIMEOUT:?}): \
         {result:?}"
    );
}
