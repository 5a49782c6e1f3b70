//! meshtrace's calls through sidecars (the stand-in of `tests/support/sidecar`), real servers on
//! 127.0.0.1:
//!
//! 1. A three-hop chain whose deadline budget shrinks hop by hop, and runs out at the second
//!    hop: the call to the third is refused with a typed error and never reaches its sidecar.
//! 2. HTTP/2 keepalive across idle gaps longer than the sidecar's idle timeout, with
//!    [`mesh_endpoint`]'s preset and without it (blackholed and FIN-closed connections).
//! 3. Envoy's local replies classified, over HTTP (`ResponseExt::mesh_error`) and gRPC
//!    (`client::tonic::origin`), next to the upstream app's own failures.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::client::reqwest::ResponseExt;
use meshtrace::client::tonic::{mesh_endpoint, origin};
use meshtrace::mesh::deadline::{BudgetExhausted, DeadlineSource};
use meshtrace::mesh::envoy::{EnvoyReply, MeshError, Origin};
use meshtrace::server::MeshServerLayer;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::relay::{
    endpoint_of, forward, grpc_client, serve_grpc, ForwardReply, ForwardRequest, GrpcClient,
    FAIL_STREAM,
};
use support::sidecar::{
    ms, AttemptOutcome, IdleClose, LocalReply, Sidecar, SidecarConfig, REFUSED_REASON,
};
use support::spans::{attr, in_root, int, one, spans_of};
use support::{relay, servers, sidecar, telemetry};
use tokio::sync::mpsc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;
use tonic_prost::ProstCodec;
use tracing::Instrument;

fn budget_exhausted(status: &tonic::Status) -> Option<BudgetExhausted> {
    std::error::Error::source(status)
        .and_then(|s| s.downcast_ref::<BudgetExhausted>())
        .copied()
}

// ---------------------------------------------------------------- 1. three hops

/// Sidecar A's route timeout: the budget the chain starts with.
const ROUTE_A: u64 = 1200;
/// What service 1 does before calling service 2.
const WORK_1: u64 = 100;
/// Service 1's deadline margin: time kept for its answer to get back through sidecar A
/// before A's route timeout (the default 5 ms would leave the two racing).
const MARGIN_1: u64 = 100;
/// Service 2 keeps the default margin.
const MARGIN_2: u64 = 5;

/// What service 2's call to service 3 came to.
#[derive(Debug)]
struct Hop3Call {
    /// The reply's body, or the failure's code, message and `BudgetExhausted` source.
    result: Result<String, (tonic::Code, String, Option<BudgetExhausted>)>,
    /// From the call to its result.
    took: Duration,
}

/// ```text
/// test ─HTTP─▶ sidecar A ─▶ service 1 (axum) ─gRPC─▶ sidecar B ─▶ service 2 (tonic)
///                                         ─gRPC─▶ sidecar C ─▶ service 3 (tonic)
/// ```
///
/// A has a route timeout ([`ROUTE_A`]): it sends `x-envoy-expected-rq-timeout-ms`. B and C
/// are Istio sidecars with `max_grpc_timeout: 0s` (what Istio sets on its routes): the
/// caller's `grpc-timeout` is their route timeout, and each attempt carries what is left of
/// it as `grpc-timeout` and `x-envoy-expected-rq-timeout-ms`.
struct Chain {
    a: Sidecar,
    b: Sidecar,
    c: Sidecar,
    hop3_calls: mpsc::UnboundedReceiver<Hop3Call>,
}

/// Service 1: `GET /hop1/{work2}` waits [`WORK_1`] ms, then calls service 2 with `work2`.
async fn hop1(State(mut hop2): State<GrpcClient>, Path(work2): Path<u64>) -> (StatusCode, String) {
    tokio::time::sleep(ms(WORK_1)).await;
    match forward(&mut hop2, &work2.to_string(), None).await {
        Ok(reply) => (StatusCode::OK, format!("one > {}", reply.body)),
        Err(status) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "hop 2 failed: {:?}: {} (origin {:?})",
                status.code(),
                status.message(),
                origin(&status)
            ),
        ),
    }
}

impl Chain {
    async fn start() -> Chain {
        telemetry::exporter();
        let grpc_sidecar = || SidecarConfig {
            max_grpc_timeout: Some(Duration::ZERO),
            ..SidecarConfig::istio()
        };

        let service3 = serve_grpc(relay::relay(|_| async {
            Ok(ForwardReply {
                body: "three".into(),
            })
        }))
        .await;
        let c = Sidecar::start(service3, grpc_sidecar()).await;

        // Service 2 waits `path` ms, then calls service 3. The work runs in a task of its own
        // (in the request's span), so that it goes on when the request's deadline cuts the
        // handler short, as a handler's spawned work does; what it came to is reported on
        // `hop3_calls`.
        let (report, hop3_calls) = mpsc::unbounded_channel();
        let hop3 = grpc_client(endpoint_of(c.addr()), ms(MARGIN_2));
        let service2 = serve_grpc(relay::relay(move |path| {
            let mut hop3 = hop3.clone();
            let report = report.clone();
            async move {
                let work: u64 = path.parse().expect("ms");
                let task = tokio::spawn(
                    async move {
                        tokio::time::sleep(ms(work)).await;
                        let started = Instant::now();
                        let result = forward(&mut hop3, "three", None).await;
                        let took = started.elapsed();
                        let _ = report.send(Hop3Call {
                            result: match &result {
                                Ok(reply) => Ok(reply.body.clone()),
                                Err(s) => Err((s.code(), s.message().into(), budget_exhausted(s))),
                            },
                            took,
                        });
                        result.map(|reply| ForwardReply {
                            body: format!("two > {}", reply.body),
                        })
                    }
                    .in_current_span(),
                );
                task.await
                    .unwrap_or_else(|e| Err(tonic::Status::internal(e.to_string())))
            }
        }))
        .await;
        let b = Sidecar::start(service2, grpc_sidecar()).await;

        let app = Router::new()
            .route("/hop1/{work2}", get(hop1))
            .with_state(grpc_client(endpoint_of(b.addr()), ms(MARGIN_1)))
            .layer(MeshServerLayer::new());
        let service1 = servers::serve(app).await;
        let a = Sidecar::start(
            service1,
            SidecarConfig::istio().with_route_timeout(ms(ROUTE_A)),
        )
        .await;

        Chain {
            a,
            b,
            c,
            hop3_calls,
        }
    }

    /// `GET /hop1/{work2}` through sidecar A, in trace `trace`.
    async fn call(&self, work2: u64, trace: &str) -> (StatusCode, String, bool) {
        let res = reqwest::Client::new()
            .get(format!("{}/hop1/{work2}", self.a.url()))
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("sidecar A answers");
        let status = res.status();
        let from_service1 = res.headers().contains_key(sidecar::UPSTREAM_SERVICE_TIME);
        (status, res.text().await.expect("body"), from_service1)
    }
}

/// The budget headers one attempt carried upstream of a sidecar, in ms.
fn grpc_timeout_ms(sidecar: &Sidecar) -> u64 {
    let attempts = sidecar.attempts();
    assert_eq!(attempts.len(), 1, "one attempt through {}", sidecar.addr());
    let value = attempts[0]
        .grpc_timeout()
        .expect("grpc-timeout sent upstream");
    let ms = sidecar::parse_grpc_timeout(value)
        .expect("a grpc-timeout")
        .as_millis() as u64;
    assert_eq!(
        attempts[0].expected_timeout_ms(),
        Some(ms),
        "the sidecar sends the same time in both headers"
    );
    ms
}

/// The spans of one trace through the chain.
struct ChainSpans {
    spans: Vec<SpanData>,
}

impl ChainSpans {
    fn server_1(&self) -> &SpanData {
        one(&self.spans, "GET /hop1/{work2}", SpanKind::Server)
    }

    /// The client span of the call to the sidecar on `port`.
    fn client_to(&self, port: u16) -> &SpanData {
        let found: Vec<&SpanData> = self
            .spans
            .iter()
            .filter(|s| {
                s.span_kind == SpanKind::Client
                    && attr(s, "server.port") == Some(Value::I64(i64::from(port)))
            })
            .collect();
        assert_eq!(found.len(), 1, "one client span to port {port}");
        found[0]
    }

    /// The server span whose parent is `client` (the callee's side of that call).
    fn server_under(&self, client: &SpanData) -> Option<&SpanData> {
        self.spans.iter().find(|s| {
            s.span_kind == SpanKind::Server && s.parent_span_id == client.span_context.span_id()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hops_the_budget_shrinks_hop_by_hop() {
    let chain = Chain::start().await;
    let trace = "3a1f0000000000000000000000000001";
    const WORK_2: u64 = 100;

    let (status, body, from_service1) = chain.call(WORK_2, trace).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "one > two > three");
    assert!(from_service1);

    // Upstream of each sidecar.
    let a_sent = chain.a.attempts()[0]
        .expected_timeout_ms()
        .expect("A's route timeout");
    let b_sent = grpc_timeout_ms(&chain.b);
    let c_sent = grpc_timeout_ms(&chain.c);
    // And at each service.
    let spans = ChainSpans {
        spans: spans_of(TraceId::from_hex(trace).unwrap(), 5).await,
    };
    let s1 = spans.server_1();
    let c1 = spans.client_to(chain.b.addr().port());
    let s2 = spans.server_under(c1).expect("service 2's span");
    let c2 = spans.client_to(chain.c.addr().port());
    let s3 = spans.server_under(c2).expect("service 3's span");
    assert_eq!(c2.parent_span_id, s2.span_context.span_id());
    let remaining = |s: &SpanData| int(attr(s, "meshtrace.deadline.remaining_ms"));
    let budget = |s: &SpanData| int(attr(s, "meshtrace.deadline.budget_ms"));
    let (r1, b1, r2, b2, r3) = (
        remaining(s1),
        budget(c1),
        remaining(s2),
        budget(c2),
        remaining(s3),
    );
    println!(
        "three hops, budgets in ms:\n\
         \x20 sidecar A  x-envoy-expected-rq-timeout-ms {a_sent}\n\
         \x20 service 1  arrived with {r1}, waited {WORK_1}, called with {b1} (margin {MARGIN_1})\n\
         \x20 sidecar B  grpc-timeout {b_sent}m (and expected-rq-timeout {b_sent})\n\
         \x20 service 2  arrived with {r2}, waited {WORK_2}, called with {b2} (margin {MARGIN_2})\n\
         \x20 sidecar C  grpc-timeout {c_sent}m (and expected-rq-timeout {c_sent})\n\
         \x20 service 3  arrived with {r3}"
    );

    assert_eq!(
        a_sent, ROUTE_A,
        "A's first attempt has all its route timeout"
    );
    let a_sent = a_sent as i64;
    let (b_sent, c_sent) = (b_sent as i64, c_sent as i64);
    assert!(r1 <= a_sent && r1 > a_sent - 50, "{r1}");
    // What each service passes on: what it had, less its work and its margin (and the few
    // ms the hop itself takes).
    let passed_on = |had: i64, work: u64, margin: u64| had - (work + margin) as i64;
    assert!(b1 <= passed_on(r1, WORK_1, MARGIN_1) && b1 > passed_on(r1, WORK_1, MARGIN_1) - 50);
    // The grpc-timeout is rounded up to the microsecond: at most 1 ms above the budget.
    assert!(b_sent <= b1 + 1 && b_sent > b1 - 20, "{b_sent} vs {b1}");
    assert!(r2 <= b_sent && r2 > b_sent - 20, "{r2} vs {b_sent}");
    assert!(b2 <= passed_on(r2, WORK_2, MARGIN_2) && b2 > passed_on(r2, WORK_2, MARGIN_2) - 50);
    assert!(c_sent <= b2 + 1 && c_sent > b2 - 20, "{c_sent} vs {b2}");
    assert!(r3 <= c_sent && r3 > c_sent - 20, "{r3} vs {c_sent}");
    // Hop by hop, the budget upstream of each sidecar shrinks by at least the work and
    // margin of the service in between.
    assert!(
        a_sent - b_sent >= (WORK_1 + MARGIN_1) as i64,
        "{a_sent} > {b_sent}"
    );
    assert!(
        b_sent - c_sent >= (WORK_2 + MARGIN_2) as i64,
        "{b_sent} > {c_sent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hops_the_budget_runs_out_at_the_second_hop() {
    let mut chain = Chain::start().await;
    let trace = "3a1f0000000000000000000000000002";
    // More than the ~1000 ms service 2 gets.
    const WORK_2: u64 = 1100;

    let started = Instant::now();
    let (status, body, from_service1) = chain.call(WORK_2, trace).await;
    let answered = started.elapsed();
    println!("budget runs out at hop 2: the client got {status} after {answered:?}: {body}");

    // Service 1's margin got its answer back through sidecar A before A's route timeout.
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(from_service1, "service 1's answer, not A's timeout: {body}");
    assert!(answered < ms(ROUTE_A), "{answered:?}");
    // Who ended the call to service 2 first is a race between clocks set from the same
    // budget: service 1's MeshClient timer (DEADLINE_EXCEEDED; it starts before tonic's channel
    // timer, see `a_call_whose_time_runs_out_is_deadline_exceeded`), sidecar B's route
    // timeout (UNAVAILABLE "upstream request timeout", an Envoy reply) and tonic's server-side
    // grpc-timeout in service 2 (CANCELLED, service 2's answer).
    assert!(
        body.starts_with("hop 2 failed: DeadlineExceeded")
            || body.contains("origin Envoy(UpstreamTimeout)")
            || body.starts_with("hop 2 failed: Cancelled"),
        "{body}"
    );

    // Service 2 went on past its deadline; its call to service 3 failed at once, typed.
    let hop3 = tokio::time::timeout(Duration::from_secs(5), chain.hop3_calls.recv())
        .await
        .expect("service 2 reported its call")
        .expect("a report");
    println!("service 2's call to service 3: {hop3:?}");
    let (code, message, exhausted) = hop3.result.expect_err("no budget left");
    assert_eq!(code, tonic::Code::DeadlineExceeded, "{message}");
    let exhausted = exhausted.expect("the status's source is BudgetExhausted");
    assert_eq!(exhausted.remaining, Duration::ZERO);
    assert_eq!(exhausted.margin, ms(MARGIN_2));
    assert_eq!(exhausted.set_by, DeadlineSource::GrpcTimeout);
    assert!(hop3.took < ms(50), "failed fast: {:?}", hop3.took);

    // Sidecar C never received the call.
    assert_eq!(chain.c.requests(), 0);
    assert!(chain.c.attempts().is_empty());

    // The budget shrank from A to B, and nothing went past B.
    let a_sent = chain.a.attempts()[0].expected_timeout_ms().expect("A");
    let b_sent = grpc_timeout_ms(&chain.b);
    println!(
        "budget runs out at hop 2, budgets in ms: A sent {a_sent}, B sent {b_sent}, C nothing; \
         B's attempt: {:?}",
        chain.b.attempts()[0].outcome
    );
    assert_eq!(a_sent, ROUTE_A);
    assert!(a_sent - b_sent >= WORK_1 + MARGIN_1, "{a_sent} > {b_sent}");
    assert!(b_sent < WORK_2);
    // Never a success: cut by B's route timeout, answered by service 2's own timeout, or
    // still pending when service 1 gave up first and dropped the call.
    assert!(
        matches!(
            chain.b.attempts()[0].outcome,
            AttemptOutcome::RouteTimeout
                | AttemptOutcome::Pending
                | AttemptOutcome::Response {
                    grpc_status: Some(1..),
                    ..
                }
        ),
        "{:?}",
        chain.b.attempts()[0].outcome
    );

    let spans = ChainSpans {
        spans: spans_of(TraceId::from_hex(trace).unwrap(), 4).await,
    };
    let c1 = spans.client_to(chain.b.addr().port());
    let s2 = spans.server_under(c1).expect("service 2's span");
    let c2 = spans.client_to(chain.c.addr().port());
    assert_eq!(c2.parent_span_id, s2.span_context.span_id());
    assert_eq!(
        attr(c2, "error.type"),
        Some(Value::from("budget_exhausted"))
    );
    assert_eq!(int(attr(c2, "meshtrace.deadline.budget_ms")), 0);
    assert!(
        spans.server_under(c2).is_none(),
        "service 3 was never called"
    );
    assert!(int(attr(s2, "meshtrace.deadline.remaining_ms")) <= b_sent as i64);
}

// ---------------------------------------------------------------- 2. keepalive

/// The sidecar's idle timeout in these tests.
const IDLE: Duration = Duration::from_millis(300);
/// The quiet time between calls: longer than the idle timeout.
const GAP: Duration = Duration::from_millis(600);
/// Each call's deadline (`grpc-timeout`), so a call on a dead connection ends.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// A server answering every `Forward` at once.
async fn echo() -> SocketAddr {
    serve_grpc(relay::relay(|path| async move {
        Ok(ForwardReply { body: path })
    }))
    .await
}

/// [`mesh_endpoint`]'s preset with its keepalive times scaled down for the test: the preset
/// pings every 20 s (10 s to answer) while idle, against idle timeouts of minutes to an hour;
/// here the sidecar idles connections out after 300 ms, so the test pings every 100 ms
/// (100 ms to answer). The mechanism is the same: HTTP/2 PINGs while idle
/// (`keep_alive_while_idle`, kept from the preset), which are traffic on the connection.
fn scaled_mesh_endpoint(addr: SocketAddr) -> Endpoint {
    assert_eq!(
        meshtrace::client::tonic::MESH_KEEPALIVE_INTERVAL,
        Duration::from_secs(20)
    );
    mesh_endpoint(endpoint_of(addr))
        .http2_keep_alive_interval(ms(100))
        .keep_alive_timeout(ms(100))
}

#[derive(Debug)]
struct CallOutcome {
    result: Result<(), (tonic::Code, String)>,
    took: Duration,
}

/// Three calls [`GAP`] apart through a sidecar idling connections out after [`IDLE`] as
/// `close` says, on a channel built from `endpoint`. Prints what happened.
async fn calls_across_idle_gaps(
    label: &str,
    close: IdleClose,
    endpoint: impl FnOnce(SocketAddr) -> Endpoint,
) -> (Vec<CallOutcome>, Sidecar) {
    telemetry::exporter();
    let sidecar = Sidecar::start(
        echo().await,
        SidecarConfig::default().with_idle(IDLE, close),
    )
    .await;
    let mut client = grpc_client(endpoint(sidecar.addr()), ms(5));
    let mut outcomes = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(GAP).await;
        }
        let started = Instant::now();
        let result = forward(&mut client, &format!("call {i}"), Some(CALL_TIMEOUT)).await;
        outcomes.push(CallOutcome {
            result: match result {
                Ok(reply) => {
                    assert_eq!(reply.body, format!("call {i}"));
                    Ok(())
                }
                Err(s) => Err((s.code(), s.message().to_owned())),
            },
            took: started.elapsed(),
        });
    }
    println!(
        "{label}: {} ms idle timeout ({close:?}), calls {} ms apart, {} ms deadline each:",
        IDLE.as_millis(),
        GAP.as_millis(),
        CALL_TIMEOUT.as_millis()
    );
    for (i, o) in outcomes.iter().enumerate() {
        match &o.result {
            Ok(()) => println!("  call {i}: ok in {:?}", o.took),
            Err((code, message)) => {
                println!(
                    "  call {i}: failed after {:?}: {code:?} {message:?}",
                    o.took
                )
            }
        }
    }
    println!(
        "  sidecar: {} connections accepted, {} closed idle (FIN), {} blackholed, {} requests reached it",
        sidecar.connections_accepted(),
        sidecar.connections_closed(),
        sidecar.connections_blackholed(),
        sidecar.requests()
    );
    (outcomes, sidecar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_keeps_a_connection_through_idle_gaps() {
    let (outcomes, sidecar) = calls_across_idle_gaps(
        "mesh_endpoint (keepalive scaled to 100 ms)",
        IdleClose::Blackhole,
        scaled_mesh_endpoint,
    )
    .await;

    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.result.is_ok(), "call {i}: {o:?}");
        assert!(o.took < ms(500), "call {i}: {o:?}");
    }
    // One connection all along: the pings kept it from idling.
    assert_eq!(sidecar.connections_accepted(), 1);
    assert_eq!(sidecar.connections_blackholed(), 0);
    assert_eq!(sidecar.connections_closed(), 0);
    assert_eq!(sidecar.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_keeps_a_connection_through_idle_gaps_with_fin_closes() {
    let (outcomes, sidecar) = calls_across_idle_gaps(
        "mesh_endpoint (keepalive scaled to 100 ms)",
        IdleClose::Fin,
        scaled_mesh_endpoint,
    )
    .await;

    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    assert_eq!(sidecar.connections_accepted(), 1);
    assert_eq!(sidecar.connections_closed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keepalive_a_blackholed_connection_hangs_every_later_call() {
    let (outcomes, sidecar) = calls_across_idle_gaps(
        "plain Endpoint (no keepalive)",
        IdleClose::Blackhole,
        endpoint_of,
    )
    .await;

    assert!(outcomes[0].result.is_ok(), "{outcomes:?}");
    // The client never learns the connection is dead: each later call is written to it and
    // waits out its whole deadline.
    for o in &outcomes[1..] {
        let (code, _) = o.result.as_ref().expect_err("hangs until its deadline");
        assert!(
            matches!(code, tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
            "{o:?}"
        );
        assert!(o.took >= CALL_TIMEOUT - ms(20), "{o:?}");
        assert!(o.took < CALL_TIMEOUT + ms(500), "{o:?}");
    }
    // No new connection was tried, and the calls never got past the blackholed socket.
    assert_eq!(sidecar.connections_accepted(), 1);
    assert_eq!(sidecar.connections_blackholed(), 1);
    assert_eq!(sidecar.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keepalive_a_fin_closed_connection_is_replaced() {
    let (outcomes, sidecar) =
        calls_across_idle_gaps("plain Endpoint (no keepalive)", IdleClose::Fin, endpoint_of).await;

    // hyper reads the FIN while idle, the connection ends, and tonic's channel connects
    // again for the next call: with a FIN (and no call racing it) nothing is lost.
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.result.is_ok(), "call {i}: {o:?}");
    }
    assert_eq!(sidecar.connections_accepted(), 3);
    assert_eq!(sidecar.connections_closed(), 2);
    assert_eq!(sidecar.requests(), 3);
}

// ---------------------------------------------------------------- 3. Envoy replies classified

/// What meshtrace should make of each local reply: the error, and the span's
/// `meshtrace.envoy.reply`.
fn expected(reply: &LocalReply) -> (MeshError, &'static str) {
    match reply {
        LocalReply::NoHealthyUpstream => (MeshError::NoHealthyUpstream, "no_healthy_upstream"),
        LocalReply::ConnectFailure { reason } => (
            MeshError::ConnectFailure {
                reset_reason: Some(reason.clone()),
            },
            "connect_failure",
        ),
        LocalReply::UpstreamTimeout => (MeshError::UpstreamTimeout, "upstream_timeout"),
        LocalReply::Overloaded => (MeshError::CircuitOpen, "circuit_open"),
        LocalReply::RateLimited => (MeshError::RateLimited { local: false }, "rate_limited"),
        LocalReply::LocalRateLimited => {
            (MeshError::RateLimited { local: true }, "local_rate_limited")
        }
    }
}

fn all_replies() -> Vec<LocalReply> {
    let mut all = LocalReply::all();
    all.push(LocalReply::connect_failure(REFUSED_REASON));
    all
}

/// An HTTP app: `/ok`; `/unavailable` is its own `503 no capacity`; `/mimic` its own 503
/// with Envoy's text; `/hang` never answers.
async fn http_app() -> SocketAddr {
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no capacity") }),
        )
        .route(
            "/mimic",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream") }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    servers::serve(app).await
}

/// The client span of one traced call, with its reply attributes.
async fn client_span(trace: TraceId, name: &str) -> SpanData {
    let spans = spans_of(trace, 2).await;
    one(&spans, name, SpanKind::Client).clone()
}

fn reply_attrs(span: &SpanData) -> (Option<Value>, Option<Value>) {
    (
        attr(span, "meshtrace.reply.origin"),
        attr(span, "meshtrace.envoy.reply"),
    )
}

/// A plain HTTP call through `MeshClientMiddleware` to `url`: the response, its body, and the span.
async fn http_call(url: String) -> (reqwest::Response, SpanData) {
    let client = servers::traced_client();
    let (res, trace) = in_root(client.get(url).send()).await;
    let res = res.expect("an HTTP answer");
    (res, client_span(trace, "GET").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_replies_over_http_are_classified() {
    let app = http_app().await;
    let sidecar = Sidecar::start(app, SidecarConfig::default()).await;

    for reply in all_replies() {
        sidecar.set_reply(Some(reply.clone()));
        let (res, span) = http_call(format!("{}/ok", sidecar.url())).await;
        let (error, name) = expected(&reply);
        assert_eq!(res.status(), reply.status(), "{reply:?}");
        assert_eq!(res.mesh_error(), Some(error.clone()), "{reply:?}");
        assert!(
            matches!(res.envoy_origin(), Some(Origin::Envoy(_))),
            "{reply:?}"
        );
        assert_eq!(
            reply_attrs(&span),
            (Some(Value::from("envoy")), Some(Value::from(name))),
            "{reply:?}"
        );
        // The body read to classify it is still there.
        assert_eq!(res.text().await.unwrap(), reply.body(), "{reply:?}");
        println!("HTTP {reply:?} -> {error:?} ({name})");
    }
    sidecar.set_reply(None);

    // The app's own 503s through the sidecar: x-envoy-upstream-service-time says so, whatever
    // the body.
    for (path, text) in [
        ("/unavailable", "no capacity"),
        ("/mimic", "no healthy upstream"),
    ] {
        let (res, span) = http_call(format!("{}{path}", sidecar.url())).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(sidecar::UPSTREAM_SERVICE_TIME));
        assert_eq!(res.envoy_origin(), Some(&Origin::Upstream), "{path}");
        assert_eq!(res.mesh_error(), None, "{path}");
        assert_eq!(reply_attrs(&span), (Some(Value::from("upstream")), None));
        assert_eq!(res.text().await.unwrap(), text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecars_own_failures_over_http_are_classified() {
    // Not injected: a refused upstream connection and a route timeout.
    let dead = {
        let (listener, addr) = servers::listen().await;
        drop(listener);
        addr
    };
    let refused = Sidecar::start(dead, SidecarConfig::default()).await;
    let (res, span) = http_call(format!("{}/ok", refused.url())).await;
    assert_eq!(
        res.mesh_error(),
        Some(MeshError::ConnectFailure {
            reset_reason: Some(REFUSED_REASON.into())
        })
    );
    assert_eq!(
        reply_attrs(&span),
        (
            Some(Value::from("envoy")),
            Some(Value::from("connect_failure"))
        )
    );

    let slow = Sidecar::start(
        http_app().await,
        SidecarConfig::default().with_route_timeout(ms(200)),
    )
    .await;
    let (res, span) = http_call(format!("{}/hang", slow.url())).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.mesh_error(), Some(MeshError::UpstreamTimeout));
    assert_eq!(
        reply_attrs(&span),
        (
            Some(Value::from("envoy")),
            Some(Value::from("upstream_timeout"))
        )
    );
}

/// A gRPC app: `Forward` answers its `path`, except `/unavailable` (its own UNAVAILABLE `no
/// capacity`), `/mimic` (its own UNAVAILABLE with Envoy's text) and `/hang` (never answers).
async fn grpc_app() -> SocketAddr {
    serve_grpc(relay::relay(|path| async move {
        match path.as_str() {
            "/unavailable" => Err(tonic::Status::unavailable("no capacity")),
            "/mimic" => Err(tonic::Status::unavailable("no healthy upstream")),
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(ForwardReply { body: path })
            }
            _ => Ok(ForwardReply { body: path }),
        }
    }))
    .await
}

const FORWARD_SPAN: &str = "meshtrace.test.Relay/Forward";

/// A unary call through `MeshClientLayer` to `addr`: the failure, and the client span.
async fn grpc_failure(addr: SocketAddr, path: &str) -> (tonic::Status, SpanData) {
    let mut client = grpc_client(endpoint_of(addr), ms(5));
    let (result, trace) = in_root(forward(&mut client, path, None)).await;
    let status = result.expect_err("a failed call");
    (status, client_span(trace, FORWARD_SPAN).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_replies_over_grpc_are_classified() {
    let sidecar = Sidecar::start(grpc_app().await, SidecarConfig::default()).await;

    for reply in all_replies() {
        sidecar.set_reply(Some(reply.clone()));
        let (status, span) = grpc_failure(sidecar.addr(), "/x").await;
        let (error, name) = expected(&reply);
        assert_eq!(status.code(), tonic::Code::Unavailable, "{reply:?}");
        assert!(matches!(origin(&status), Origin::Envoy(_)), "{reply:?}");
        assert_eq!(origin(&status).error(), Some(error.clone()), "{reply:?}");
        assert_eq!(
            reply_attrs(&span),
            (Some(Value::from("envoy")), Some(Value::from(name))),
            "{reply:?}"
        );
        println!("gRPC {reply:?} -> {error:?} ({name})");
    }
    sidecar.set_reply(None);

    // The app's own UNAVAILABLE, trailers-only as tonic sends an error with no message: the
    // sidecar's x-envoy-upstream-service-time is in the head, so in the status's metadata.
    for path in ["/unavailable", "/mimic"] {
        let (status, span) = grpc_failure(sidecar.addr(), path).await;
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status
            .metadata()
            .contains_key(sidecar::UPSTREAM_SERVICE_TIME));
        assert_eq!(origin(&status), Origin::Upstream, "{path}");
        assert_eq!(origin(&status).error(), None, "{path}");
        assert_eq!(reply_attrs(&span), (Some(Value::from("upstream")), None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecars_own_failures_over_grpc_are_classified() {
    let dead = {
        let (listener, addr) = servers::listen().await;
        drop(listener);
        addr
    };
    let refused = Sidecar::start(dead, SidecarConfig::default()).await;
    let (status, span) = grpc_failure(refused.addr(), "/x").await;
    assert_eq!(
        origin(&status).error(),
        Some(MeshError::ConnectFailure {
            reset_reason: Some(REFUSED_REASON.into())
        })
    );
    assert_eq!(
        reply_attrs(&span),
        (
            Some(Value::from("envoy")),
            Some(Value::from("connect_failure"))
        )
    );

    // A route timeout is UNAVAILABLE in Istio, DEADLINE_EXCEEDED behind Envoy's newer
    // runtime guard: both are the mesh's timeout.
    for deadline_exceeded in [false, true] {
        let slow = Sidecar::start(
            grpc_app().await,
            SidecarConfig {
                grpc_timeout_deadline_exceeded: deadline_exceeded,
                ..SidecarConfig::default().with_route_timeout(ms(200))
            },
        )
        .await;
        let (status, span) = grpc_failure(slow.addr(), "/hang").await;
        let code = if deadline_exceeded {
            tonic::Code::DeadlineExceeded
        } else {
            tonic::Code::Unavailable
        };
        assert_eq!(status.code(), code);
        assert_eq!(
            origin(&status),
            Origin::Envoy(EnvoyReply::UpstreamTimeout),
            "{status:?}"
        );
        assert_eq!(
            reply_attrs(&span),
            (
                Some(Value::from("envoy")),
                Some(Value::from("upstream_timeout"))
            )
        );
    }
}

/// A server stream that fails after its headers, through the sidecar: the status comes in the
/// trailers, and tonic gives the caller the trailers as the status's metadata. Envoy never
/// answers by itself in trailers (its local replies are trailers-only; after the headers it
/// can only reset the stream), and the head's `x-envoy-upstream-service-time` says the
/// upstream answered: `MeshClient` repeats it in the trailers so that `origin(&status)` sees it,
/// even when the app's message is Envoy's text (a relay passing on its own call's status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_status_in_stream_trailers_is_the_upstreams() {
    let sidecar = Sidecar::start(grpc_app().await, SidecarConfig::default()).await;
    let mut seen = Vec::new();
    for message in ["no capacity", "no healthy upstream"] {
        let mut client = grpc_client(endpoint_of(sidecar.addr()), ms(5));
        let (outcome, trace) = in_root(async {
            client.ready().await.expect("ready");
            let res = client
                .server_streaming(
                    tonic::Request::new(ForwardRequest {
                        path: message.into(),
                    }),
                    PathAndQuery::from_static(FAIL_STREAM),
                    ProstCodec::<ForwardRequest, ForwardReply>::default(),
                )
                .await
                .expect("the stream starts");
            let head = res.metadata().clone();
            let mut stream = res.into_inner();
            let first = stream.message().await.expect("one message");
            let status = stream.message().await.expect_err("then the failure");
            (head, first, status)
        })
        .await;
        let (head, first, status) = outcome;
        let span = client_span(trace, "meshtrace.test.Relay/FailStream").await;
        assert_eq!(first.map(|m| m.body), Some("first".into()));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), message);
        // The head says the upstream answered, and the layer repeats it in the trailers.
        assert!(head.contains_key(sidecar::UPSTREAM_SERVICE_TIME));
        assert!(status
            .metadata()
            .contains_key(sidecar::UPSTREAM_SERVICE_TIME));
        // The client span makes no claim about who answered a status from trailers.
        assert_eq!(reply_attrs(&span), (None, None));
        println!(
            "gRPC stream failing after its headers with the app's UNAVAILABLE {message:?}: \
             origin(&status) = {:?}",
            origin(&status)
        );
        seen.push((message, origin(&status)));
    }
    for (message, origin) in seen {
        assert_eq!(
            origin,
            Origin::Upstream,
            "the app's own status {message:?}, from the trailers of a stream that came \
             through the sidecar"
        );
    }
}

/// A call whose time runs out (its own `grpc-timeout` here; the deadline budget goes the same
/// way) ends DEADLINE_EXCEEDED, and its client span records gRPC status 4. tonic's `Channel`
/// times the same `grpc-timeout` and would end it CANCELLED "Timeout expired"; `MeshClient`
/// starts its timer before the channel's and polls it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_time_runs_out_is_deadline_exceeded() {
    let sidecar = Sidecar::start(grpc_app().await, SidecarConfig::default()).await;
    let mut client = grpc_client(endpoint_of(sidecar.addr()), ms(5));
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (result, trace) = in_root(forward(&mut client, "/hang", Some(ms(50)))).await;
        let status = result.expect_err("the upstream never answers");
        let span = client_span(trace, FORWARD_SPAN).await;
        seen.push((
            status.code(),
            status.message().to_owned(),
            attr(&span, "error.type"),
            attr(&span, "rpc.grpc.status_code"),
        ));
    }
    println!("calls whose 50 ms grpc-timeout ran out: {seen:#?}");
    for (code, message, error_type, grpc_code) in seen {
        assert_eq!(code, tonic::Code::DeadlineExceeded, "{message}");
        assert_eq!(error_type, Some(Value::from("DEADLINE_EXCEEDED")));
        assert_eq!(grpc_code, Some(Value::I64(4)));
    }
}
