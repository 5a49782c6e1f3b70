//! The cost of one instrumented hop, measured end to end on loopback.
//!
//! One hello-world `GET` over HTTP/1.1 (kept-alive connection, one request at a time) from a
//! reqwest-middleware client to an axum server, two ways in the same run:
//!
//! - `hop/baseline`: plain client to plain server, no meshtrace anywhere;
//! - `hop/meshtrace`: a client with [`MeshClientMiddleware`] to a server with [`MeshServerLayer`]. The
//!   request is sent inside a long-lived, sampled `caller` span, so each request opens a
//!   client span (child of `caller`), injects traceparent and B3 from it, and the server
//!   extracts them and opens a server span (child of the client span). Both spans are sampled
//!   (`Sampler::AlwaysOn`) and handed to a batch exporter that discards them.
//!
//! Both requests carry the same `x-request-id`; the global tracing subscriber (registry, an
//! INFO level filter as a service would run with, tracing-opentelemetry) and the propagator are
//! installed for both. The servers run on a multi-thread tokio runtime with two workers, the
//! clients on a current-thread runtime on the bench thread. The difference of the two medians
//! is what meshtrace adds per hop (server span + client span + extract + inject), target
//! under 10 µs.
//!
//! Before measuring, a `/check` route on each server confirms, untimed, that the instrumented
//! path really propagates (the server sees `traceparent` and B3 headers naming the client
//! span, its handler runs in the caller's trace, and the exporter receives a client span
//! child of `caller` and a server span child of the client span) and that the plain path
//! carries no trace at all.
//!
//! After the criterion report it prints the two medians, the added time per hop and the
//! ratio. Loopback round trips on a small VM drift by tens of µs between runs, so it also
//! measures the two paths in alternating rounds (same system state for both halves of a
//! pair) and prints the median of the per-round differences, a steadier estimate of the
//! added time than the difference of two separately measured medians. Last, how many spans
//! reached the exporter: two per instrumented request when none was dropped.
//!
//! Needs `--features axum,reqwest` (or `--all-features`).

mod common;
use common::median_ns;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::server::MeshServerLayer;
use meshtrace::MeshPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// What Envoy puts on every request; sent on both paths.
const REQUEST_ID: &str = "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c";

/// The target for the time meshtrace adds to one hop.
const TARGET_NS: f64 = 10_000.0;

/// Requests per path in one round of the paired measurement.
const PAIRED_REQUESTS: u32 = 200;
/// Rounds of the paired measurement.
const PAIRED_ROUNDS: usize = 50;

/// A batch exporter that counts the spans it is given and drops them, except while the
/// check runs, when it keeps them for inspection.
#[derive(Debug, Clone, Default)]
struct DiscardExporter {
    spans: Arc<AtomicU64>,
    kept: Arc<Mutex<Option<Vec<SpanData>>>>,
}

impl SpanExporter for DiscardExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(kept) = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            kept.extend(batch);
        }
        Ok(())
    }
}

/// What the server saw: `traceparent`, `x-b3-traceid` (`-` when absent) and the trace id of
/// the span the handler runs in (all zeros when there is none), separated by spaces.
async fn check(headers: HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let server_trace = Span::current().context().span().span_context().trace_id();
    format!(
        "{} {} {}",
        header("traceparent"),
        header("x-b3-traceid"),
        server_trace
    )
}

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/check", get(check))
}

/// Serves `router` on an ephemeral loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

fn client(traced: bool) -> ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let builder = ClientBuilder::new(inner);
    if traced {
        builder.with(MeshClientMiddleware::new()).build()
    } else {
        builder.build()
    }
}

/// One request, body read to the end so that the connection goes back to the pool.
async fn get_body(client: &ClientWithMiddleware, url: &str) -> String {
    let res = client
        .get(url)
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .expect("request");
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.text().await.expect("response body")
}

struct Setup {
    /// The servers' runtime: multi-thread, two workers.
    servers: tokio::runtime::Runtime,
    /// The clients' runtime: the bench thread itself, as a separate process's client would
    /// be, so that a request crosses threads only where it crosses the socket.
    rt: tokio::runtime::Runtime,
    provider: SdkTracerProvider,
    exporter: DiscardExporter,
    caller: Span,
    plain: (ClientWithMiddleware, String),
    traced: (ClientWithMiddleware, String),
    /// Requests sent through the instrumented path, each of which should export two spans.
    traced_requests: AtomicU64,
}

impl Setup {
    fn new() -> Setup {
        let exporter = DiscardExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter.clone())
            .with_sampler(Sampler::AlwaysOn)
            .build();
        // INFO, as a service would run: without a level filter the TRACE events of hyper-util's
        // connection pool, emitted inside the client span, become span events.
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        tracing::subscriber::set_global_default(subscriber).expect("first global subscriber");
        meshtrace::set_global_propagator(MeshPropagator::istio());

        let servers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (plain_base, traced_base) = servers.block_on(async {
            (
                serve(app()).await,
                serve(app().layer(MeshServerLayer::new())).await,
            )
        });
        Setup {
            servers,
            rt,
            provider,
            exporter,
            caller: tracing::info_span!("caller"),
            plain: (client(false), plain_base),
            traced: (client(true), traced_base),
            traced_requests: AtomicU64::new(0),
        }
    }

    /// Untimed: the instrumented path propagates and the plain one does not.
    fn check(&self) {
        let caller = self.caller.context().span().span_context().clone();
        let caller_trace = caller.trace_id();
        assert_ne!(
            caller_trace,
            TraceId::INVALID,
            "the caller span is not sampled"
        );
        self.keep_exported(true);
        let (plain, traced) = self.rt.block_on(async {
            let plain = get_body(&self.plain.0, &format!("{}/check", self.plain.1)).await;
            let traced = get_body(&self.traced.0, &format!("{}/check", self.traced.1))
                .instrument(self.caller.clone())
                .await;
            (plain, traced)
        });
        self.traced_requests.fetch_add(1, Ordering::Relaxed);

        let fields = |s: &str| -> [String; 3] {
            let v: Vec<String> = s.split(' ').map(str::to_owned).collect();
            v.try_into()
                .unwrap_or_else(|v| panic!("bad /check reply {v:?}"))
        };
        let [traceparent, b3_trace, server_trace] = fields(&traced);
        let caller_hex = caller_trace.to_string();
        // The flags carry `sampled`, and `random` (0x02) since this process started the trace.
        let sampled = traceparent
            .rsplit('-')
            .next()
            .and_then(|f| u8::from_str_radix(f, 16).ok())
            .is_some_and(|f| f & 0x01 != 0);
        assert!(
            traceparent.starts_with(&format!("00-{caller_hex}-")) && sampled,
            "instrumented request: traceparent {traceparent:?}, caller trace {caller_hex}"
        );
        assert_eq!(b3_trace, caller_hex, "instrumented request: x-b3-traceid");
        assert_eq!(
            server_trace, caller_hex,
            "instrumented request: the server span is not in the caller's trace"
        );
        assert_eq!(
            fields(&plain),
            ["-".to_owned(), "-".to_owned(), TraceId::INVALID.to_string()],
            "plain request: no trace headers, no server span"
        );

        // The spans themselves: a client span under `caller`, named in the traceparent, and a
        // server span under it. The server ends its span as the body ends, which may be a
        // little after the client has read it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (client, server) = loop {
            self.provider.force_flush().expect("flush");
            let spans = self.exported_so_far();
            let kind = |k: SpanKind| spans.iter().find(|s| s.span_kind == k).cloned();
            match (kind(SpanKind::Client), kind(SpanKind::Server)) {
                (Some(c), Some(s)) => break (c, s),
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                found => panic!("instrumented request: exported client and server spans {found:?}"),
            }
        };
        self.keep_exported(false);
        assert_eq!(client.span_context.trace_id(), caller_trace);
        assert_eq!(
            client.parent_span_id,
            caller.span_id(),
            "client span parent"
        );
        assert!(
            traceparent.contains(&format!("-{}-", client.span_context.span_id())),
            "traceparent {traceparent} does not name the client span"
        );
        assert_eq!(server.span_context.trace_id(), caller_trace);
        assert_eq!(
            server.parent_span_id,
            client.span_context.span_id(),
            "server span parent"
        );
        assert!(server.parent_span_is_remote, "server span parent is remote");
        println!(
            "check: instrumented hop carries {traceparent}; spans exported: {:?} (client) -> \
             {:?} (server); plain hop carries no trace",
            client.name, server.name
        );
    }

    fn keep_exported(&self, keep: bool) {
        *self
            .exporter
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = keep.then(Vec::new);
    }

    fn exported_so_far(&self) -> Vec<SpanData> {
        self.exporter
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }

    /// `n` requests on one path; the time they took.
    fn run(&self, traced: bool, n: u64, url: &str) -> Duration {
        if traced {
            self.traced_requests.fetch_add(n, Ordering::Relaxed);
            self.rt.block_on(
                async {
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(get_body(&self.traced.0, black_box(url)).await);
                    }
                    start.elapsed()
                }
                .instrument(self.caller.clone()),
            )
        } else {
            self.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(get_body(&self.plain.0, black_box(url)).await);
                }
                start.elapsed()
            })
        }
    }

    fn urls(&self) -> (String, String) {
        (
            format!("{}/hello", self.plain.1),
            format!("{}/hello", self.traced.1),
        )
    }

    fn bench(&self, c: &mut Criterion) {
        let (plain_url, traced_url) = self.urls();
        let mut g = c.benchmark_group("hop");
        g.bench_function("baseline", |b| {
            b.iter_custom(|iters| self.run(false, iters, &plain_url))
        });
        g.bench_function("meshtrace", |b| {
            b.iter_custom(|iters| self.run(true, iters, &traced_url))
        });
        g.finish();
    }

    /// Baseline and meshtrace in alternating rounds, the order flipped every round; returns
    /// the medians, in ns per request, of the baseline, meshtrace, and the per-round
    /// difference.
    fn paired(&self) -> Paired {
        let (plain_url, traced_url) = self.urls();
        let n = u64::from(PAIRED_REQUESTS);
        let per_request = |d: Duration| d.as_nanos() as f64 / n as f64;
        let (mut base, mut mesh, mut added) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..PAIRED_ROUNDS {
            let (b, m) = if round % 2 == 0 {
                let b = self.run(false, n, &plain_url);
                (b, self.run(true, n, &traced_url))
            } else {
                let m = self.run(true, n, &traced_url);
                (self.run(false, n, &plain_url), m)
            };
            base.push(per_request(b));
            mesh.push(per_request(m));
            added.push(per_request(m) - per_request(b));
        }
        Paired {
            base: median(base),
            mesh: median(mesh),
            added: median(added),
        }
    }

    /// Flushes the exporter; returns (spans exported, instrumented requests sent).
    fn finish(self) -> (u64, u64) {
        let exported = self.exporter.spans.clone();
        drop(self.caller);
        // Let the servers end the spans of the last responses.
        std::thread::sleep(Duration::from_millis(100));
        if let Err(e) = self.provider.force_flush() {
            eprintln!("force_flush: {e}");
        }
        let exported = exported.load(Ordering::Relaxed);
        let _ = self.provider.shutdown();
        self.rt.shutdown_background();
        self.servers.shutdown_background();
        (exported, self.traced_requests.load(Ordering::Relaxed))
    }
}

/// Medians of the paired measurement, ns per request.
struct Paired {
    base: f64,
    mesh: f64,
    added: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn row(what: &str, base: f64, mesh: f64, added: f64) {
    println!(
        "| {what} | {:.2} µs | {:.2} µs | {:.2} µs | {:.3}x | {} |",
        base / 1e3,
        mesh / 1e3,
        added / 1e3,
        mesh / base,
        if added < TARGET_NS { "met" } else { "MISSED" }
    );
}

fn report(
    criterion: Option<(f64, f64)>,
    paired: Option<Paired>,
    exported: u64,
    traced_requests: u64,
) {
    println!(
        "\n| per request (median) | baseline | meshtrace | added per hop | ratio | \
         target: < 10 µs added |"
    );
    println!("|---|---|---|---|---|---|");
    match (criterion, paired) {
        (Some((base, mesh)), Some(p)) => {
            row("criterion", base, mesh, mesh - base);
            row(
                &format!("{PAIRED_ROUNDS} alternating rounds of {PAIRED_REQUESTS}"),
                p.base,
                p.mesh,
                p.added,
            );
            // The two criterion benches run seconds apart; if the machine changed state in
            // between (another process started, the CPUs went idle), their difference is
            // noise. The rounds compare the two paths under the same conditions.
            let drift = (mesh - base - p.added).abs();
            if drift > 0.25 * base.min(p.base) {
                println!(
                    "\nwarning: the criterion difference and the paired rounds disagree by \
                     {:.1} µs: loopback latency changed during the run (other load on the \
                     machine?). The paired row is the steadier estimate; rerun on a quiet \
                     machine to trust the criterion row.",
                    drift / 1e3
                );
            }
        }
        _ => println!("| (hop/baseline and hop/meshtrace not both measured in this run) ||||||"),
    }
    println!(
        "\nspans exported (and discarded): {exported} for {traced_requests} instrumented \
         requests (2 expected per request, plus the caller span)"
    );
}

fn main() {
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let setup = Setup::new();
    setup.check();
    setup.bench(&mut criterion);
    criterion.final_summary();
    let measured = median_ns("hop", "baseline", since).zip(median_ns("hop", "meshtrace", since));
    // Only after a real measurement of both (not under `cargo test --benches`, `--list`, or
    // a filter that leaves one out).
    let paired = measured.map(|_| setup.paired());
    let (exported, traced_requests) = setup.finish();
    report(measured, paired, exported, traced_requests);
}
