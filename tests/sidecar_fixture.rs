//! Tests of the sidecar fixture itself (`tests/support/sidecar`): that it adds Envoy's attempt and
//! timeout headers, retries as configured, answers Envoy's local replies in their HTTP and
//! gRPC forms, passes gRPC through with its trailers, and ends idle client connections the
//! two ways it offers. The tests of meshtrace behind a sidecar rely on all of this.

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Version};
use meshtrace::server::MeshServerLayer;
use prost::Message;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::mesh::Mesh;
use support::relay::RelayClient;
use support::sidecar::{
    ms, AttemptOutcome, IdleClose, LocalReply, Sidecar, SidecarConfig, CONNECT_ERROR_PREFIX,
};
use support::{relay, servers, sidecar, telemetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------- an upstream app

/// An upstream app: `/ok` answers 200 `ok`; `/flaky` answers its own 503 twice, then 200;
/// `/unavailable` always answers its own `503 no capacity`; `/slow/{ms}` answers after `ms`;
/// anything else hangs for 30 s (so that only the sidecar's timeouts end it).
async fn upstream() -> SocketAddr {
    let flaky = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/flaky", get(flaky_handler))
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no capacity") }),
        )
        .route("/slow/{ms}", get(slow))
        .fallback(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NOT_FOUND
        })
        .with_state(flaky);
    servers::serve(app).await
}

async fn flaky_handler(State(hits): State<Arc<AtomicUsize>>) -> (StatusCode, &'static str) {
    if hits.fetch_add(1, Ordering::SeqCst) < 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "try again")
    } else {
        (StatusCode::OK, "ok")
    }
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow ok"
}

fn statuses(sidecar: &Sidecar) -> Vec<AttemptOutcome> {
    sidecar.attempts().into_iter().map(|a| a.outcome).collect()
}

fn response(status: StatusCode) -> AttemptOutcome {
    AttemptOutcome::Response {
        status,
        grpc_status: None,
    }
}

// ---------------------------------------------------------------- attempts and retries

#[tokio::test]
async fn each_attempt_carries_its_count_and_a_retry_ends_on_success() {
    let sidecar = Sidecar::start(
        upstream().await,
        SidecarConfig::default()
            .with_retries(2)
            .with_route_timeout(Duration::from_secs(5)),
    )
    .await;

    let reply = sidecar::get(sidecar.addr(), "/flaky").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert!(reply.came_from_upstream(), "{:?}", reply.headers);
    assert_eq!(reply.header("server"), Some("envoy"));
    let attempts = sidecar.attempts();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.attempt_count())
            .collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
    assert_eq!(
        attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(attempts
        .iter()
        .all(|a| a.request == 0 && a.path == "/flaky"));
    assert_eq!(
        statuses(&sidecar),
        [
            response(StatusCode::SERVICE_UNAVAILABLE),
            response(StatusCode::SERVICE_UNAVAILABLE),
            response(StatusCode::OK)
        ]
    );
    assert!(attempts[1].at >= attempts[0].at + ms(25), "backoff");
}

#[tokio::test]
async fn when_retries_run_out_the_upstreams_own_503_is_passed_on() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default().with_retries(1)).await;

    let reply = sidecar::get(sidecar.addr(), "/unavailable").await;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "no capacity");
    assert!(reply.came_from_upstream());
    assert_eq!(sidecar.attempts().len(), 2);
    // No timeout configured: no expected-timeout header.
    assert!(sidecar
        .attempts()
        .iter()
        .all(|a| a.expected_timeout_ms().is_none()));
}

#[tokio::test]
async fn without_retries_a_503_is_not_retried() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    let reply = sidecar::get(sidecar.addr(), "/flaky").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sidecar.attempts().len(), 1);
    assert_eq!(sidecar.attempts()[0].attempt_count(), Some(1));
}

#[tokio::test]
async fn expected_timeout_is_what_is_left_of_the_route_timeout() {
    let config = SidecarConfig {
        retry_backoff: ms(50),
        ..SidecarConfig::default()
            .with_retries(3)
            .with_route_timeout(ms(2000))
    };
    let sidecar = Sidecar::start(upstream().await, config).await;

    let reply = sidecar::get(sidecar.addr(), "/unavailable").await;

    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let attempts = sidecar.attempts();
    assert_eq!(attempts.len(), 4);
    let expected: Vec<u64> = attempts
        .iter()
        .map(|a| a.expected_timeout_ms().expect("expected timeout"))
        .collect();
    assert!(expected[0] >= 1990 && expected[0] <= 2000, "{expected:?}");
    assert!(
        expected.windows(2).all(|w| w[1] + 50 <= w[0]),
        "each retry has at least the backoff less: {expected:?}"
    );
    for a in &attempts {
        assert_eq!(
            a.expected_timeout_ms(),
            Some(2000 - a.elapsed.as_millis() as u64),
            "attempt {}",
            a.number
        );
    }
}

#[tokio::test]
async fn per_try_timeout_caps_the_expected_timeout_and_is_retried() {
    let config = SidecarConfig::default()
        .with_retries(5)
        .with_route_timeout(ms(900))
        .with_per_try_timeout(ms(300));
    let sidecar = Sidecar::start(upstream().await, config).await;
    let started = Instant::now();

    let reply = sidecar::get(sidecar.addr(), "/slow/5000").await;

    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.text(), "upstream request timeout");
    assert!(!reply.came_from_upstream());
    assert!(took >= ms(900) && took < ms(3000), "{took:?}");

    let attempts = sidecar.attempts();
    assert!(attempts.len() >= 3, "{attempts:#?}");
    // Two full tries, then what is left of the route timeout.
    for a in &attempts[..2] {
        assert_eq!(a.expected_timeout_ms(), Some(300));
        assert_eq!(a.outcome, AttemptOutcome::PerTryTimeout);
    }
    let last = attempts.last().expect("attempts");
    assert_eq!(
        last.expected_timeout_ms(),
        Some(900 - last.elapsed.as_millis() as u64)
    );
    assert!(last.expected_timeout_ms() < Some(300));
    assert_eq!(last.outcome, AttemptOutcome::RouteTimeout);
}

#[tokio::test]
async fn route_timeout_is_a_504_local_reply() {
    // A per-try timeout not below the route timeout is ignored, as Envoy ignores it.
    let config = SidecarConfig::default()
        .with_route_timeout(ms(300))
        .with_per_try_timeout(ms(500));
    let sidecar = Sidecar::start(upstream().await, config).await;
    let started = Instant::now();

    let reply = sidecar::get(sidecar.addr(), "/slow/5000").await;

    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.text(), "upstream request timeout");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("server"), Some("envoy"));
    assert!(!reply.came_from_upstream());
    assert!(took >= ms(300) && took < ms(3000), "{took:?}");
    let attempts = sidecar.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].expected_timeout_ms(), Some(300));
    assert_eq!(attempts[0].outcome, AttemptOutcome::RouteTimeout);
}

#[tokio::test]
async fn refused_upstream_connections_are_envoys_connect_error() {
    let dead = servers::closed_port().await;

    let once = Sidecar::start(dead, SidecarConfig::default()).await;
    let reply = sidecar::get(once.addr(), "/ok").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote \
         connection failure, transport failure reason: delayed connect error: Connection refused"
    );
    assert!(!reply.came_from_upstream());
    assert_eq!(once.attempts().len(), 1);

    let istio = Sidecar::start(dead, SidecarConfig::istio()).await;
    let reply = sidecar::get(istio.addr(), "/ok").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.text(),
        "upstream connect error or disconnect/reset before headers. retried and the latest reset \
         reason: remote connection failure, transport failure reason: delayed connect error: \
         Connection refused"
    );
    assert_eq!(
        statuses(&istio),
        [AttemptOutcome::ConnectFailure; 3],
        "Istio's default: 2 retries on connect-failure"
    );
    assert_eq!(
        istio
            .attempts()
            .iter()
            .map(|a| a.attempt_count())
            .collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
}

#[tokio::test]
async fn http2_requests_go_upstream_over_http2() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    let req = Request::get(format!("{}/ok", sidecar.url()))
        .version(Version::HTTP_2)
        .body(Bytes::new())
        .expect("request");

    let reply = sidecar::send(sidecar.addr(), req).await.expect("h2");

    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert!(reply.came_from_upstream());
    assert_eq!(sidecar.attempts()[0].version, Version::HTTP_2);
}

// ---------------------------------------------------------------- local replies, plain HTTP

/// A local reply, its status, body and the `x-envoy-*` headers it carries.
type PlainReply = (
    LocalReply,
    u16,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[tokio::test]
async fn local_replies_have_envoys_status_headers_and_body() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    let table: [PlainReply; 7] = [
        (
            LocalReply::NoHealthyUpstream,
            503,
            "no healthy upstream",
            &[],
        ),
        (
            LocalReply::connect_failure("connection failure"),
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection \
             failure",
            &[],
        ),
        (
            LocalReply::connect_failure("connection termination"),
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection \
             termination",
            &[],
        ),
        (
            LocalReply::UpstreamTimeout,
            504,
            "upstream request timeout",
            &[],
        ),
        (
            LocalReply::Overloaded,
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            &[("x-envoy-overloaded", "true")],
        ),
        (
            LocalReply::RateLimited,
            429,
            "",
            &[("x-envoy-ratelimited", "true")],
        ),
        (LocalReply::LocalRateLimited, 429, "local_rate_limited", &[]),
    ];
    assert_eq!(table.len(), LocalReply::all().len());

    for (reply_kind, status, body, extra) in table {
        sidecar.set_reply(Some(reply_kind.clone()));
        let reply = sidecar::get(sidecar.addr(), "/ok").await;
        let what = format!("{reply_kind:?}");
        assert_eq!(reply.status.as_u16(), status, "{what}");
        assert_eq!(reply.text(), body, "{what}");
        assert_eq!(reply.header("server"), Some("envoy"), "{what}");
        assert!(
            !reply.came_from_upstream(),
            "{what}: no upstream service time"
        );
        let content_type = (!body.is_empty()).then_some("text/plain");
        assert_eq!(reply.header("content-type"), content_type, "{what}");
        for (name, value) in extra {
            assert_eq!(reply.header(name), Some(*value), "{what}: {name}");
        }
        for other in ["x-envoy-overloaded", "x-envoy-ratelimited"] {
            if !extra.iter().any(|(name, _)| *name == other) {
                assert_eq!(reply.header(other), None, "{what}: {other}");
            }
        }
    }
    assert!(
        sidecar.attempts().is_empty(),
        "local replies never go upstream"
    );

    sidecar.set_reply(None);
    let reply = sidecar::get(sidecar.addr(), "/ok").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "ok")
    );
    assert!(reply.came_from_upstream());
}

#[tokio::test]
async fn an_upstream_503_differs_from_envoys_only_by_the_service_time_header() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;

    let own = sidecar::get(sidecar.addr(), "/unavailable").await;
    sidecar.set_reply(Some(LocalReply::NoHealthyUpstream));
    let envoys = sidecar::get(sidecar.addr(), "/unavailable").await;

    assert_eq!(own.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(envoys.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(own.header("server"), Some("envoy"));
    assert_eq!(envoys.header("server"), Some("envoy"));
    let service_time: u64 = own
        .header("x-envoy-upstream-service-time")
        .expect("upstream service time")
        .parse()
        .expect("milliseconds");
    assert!(service_time < 5000);
    assert_eq!(envoys.header("x-envoy-upstream-service-time"), None);
    assert_eq!(own.text(), "no capacity");
    assert_eq!(envoys.text(), "no healthy upstream");
}

// ---------------------------------------------------------------- local replies, gRPC

fn forward_message(path: &str) -> Vec<u8> {
    relay::ForwardRequest { path: path.into() }.encode_to_vec()
}

#[tokio::test]
async fn grpc_local_replies_are_trailers_only_unavailable() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    // grpc-message is the body, percent-encoded (only `%` and bytes outside 0x20..=0x7E).
    let table: [(LocalReply, Option<&str>); 7] = [
        (LocalReply::NoHealthyUpstream, Some("no healthy upstream")),
        (
            LocalReply::connect_failure("connection failure"),
            Some(
                "upstream connect error or disconnect/reset before headers. reset reason: \
                 connection failure",
            ),
        ),
        (
            LocalReply::connect_failure("100% → gone"),
            Some(
                "upstream connect error or disconnect/reset before headers. reset reason: \
                 100%25 %E2%86%92 gone",
            ),
        ),
        (
            LocalReply::UpstreamTimeout,
            Some("upstream request timeout"),
        ),
        (
            LocalReply::Overloaded,
            Some(
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            ),
        ),
        (LocalReply::RateLimited, None),
        (LocalReply::LocalRateLimited, Some("local_rate_limited")),
    ];

    for (reply_kind, message) in table {
        sidecar.set_reply(Some(reply_kind.clone()));
        let reply = sidecar::grpc_call(
            sidecar.addr(),
            relay::FORWARD,
            &forward_message("/back/x"),
            &[],
        )
        .await;
        let what = format!("{reply_kind:?}");
        assert_eq!(reply.version, Version::HTTP_2, "{what}");
        assert_eq!(reply.status, StatusCode::OK, "{what}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/grpc"),
            "{what}"
        );
        // 503, 504 and 429 are all UNAVAILABLE in gRPC's (and Envoy's) mapping.
        assert_eq!(reply.header("grpc-status"), Some("14"), "{what}");
        assert_eq!(reply.header("grpc-message"), message, "{what}");
        assert!(reply.body.is_empty(), "{what}: trailers-only, no body");
        assert!(
            reply.trailers.is_none(),
            "{what}: trailers-only, no trailers"
        );
        assert_eq!(reply.header("server"), Some("envoy"), "{what}");
        assert!(!reply.came_from_upstream(), "{what}");
        for (name, value) in reply_kind.extra_headers() {
            assert_eq!(reply.header(name), Some(*value), "{what}: {name}");
        }
    }
    assert!(sidecar.attempts().is_empty());
}

#[tokio::test]
async fn a_tonic_client_sees_local_replies_as_unavailable_with_the_body_as_message() {
    telemetry::exporter();
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    let mut client = RelayClient::new(sidecar.addr());

    for reply_kind in [
        LocalReply::NoHealthyUpstream,
        LocalReply::connect_failure("100% → gone"),
        LocalReply::Overloaded,
        LocalReply::LocalRateLimited,
    ] {
        sidecar.set_reply(Some(reply_kind.clone()));
        let status = client
            .forward("/back/x".into())
            .await
            .expect_err("a local reply");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{reply_kind:?}");
        assert_eq!(status.message(), reply_kind.body(), "decoded grpc-message");
        assert_eq!(
            status.metadata().get("server").map(|v| v.to_str().ok()),
            Some(Some("envoy"))
        );
        assert!(status
            .metadata()
            .get("x-envoy-upstream-service-time")
            .is_none());
    }
}

#[tokio::test]
async fn grpc_timeouts_are_unavailable_or_deadline_exceeded_as_configured() {
    let up = upstream().await;
    let classic = Sidecar::start(up, SidecarConfig::default().with_route_timeout(ms(200))).await;
    let guarded = Sidecar::start(
        up,
        SidecarConfig {
            grpc_timeout_deadline_exceeded: true,
            ..SidecarConfig::default().with_route_timeout(ms(200))
        },
    )
    .await;

    // The upstream never answers this path (the app's fallback hangs).
    for (sidecar, status) in [(&classic, "14"), (&guarded, "4")] {
        let reply = sidecar::grpc_call(
            sidecar.addr(),
            relay::FORWARD,
            &forward_message("/back/x"),
            &[],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("grpc-status"), Some(status));
        assert_eq!(
            reply.header("grpc-message"),
            Some("upstream request timeout")
        );
        assert!(!reply.came_from_upstream());
        assert_eq!(sidecar.attempts()[0].outcome, AttemptOutcome::RouteTimeout);
    }

    // The injected reply follows the same setting.
    guarded.set_reply(Some(LocalReply::UpstreamTimeout));
    telemetry::exporter();
    let status = RelayClient::new(guarded.addr())
        .forward("/back/x".into())
        .await
        .expect_err("timeout");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert_eq!(status.message(), "upstream request timeout");
}

// ---------------------------------------------------------------- gRPC through the sidecar

#[tokio::test]
async fn grpc_unary_and_server_streaming_go_through_with_their_trailers() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let sidecar = Sidecar::start(mesh.relay, SidecarConfig::default()).await;
    let mut client = RelayClient::new(sidecar.addr());

    let reply = client.forward("/back/one".into()).await.expect("unary");
    assert_eq!(reply.body, "back one");

    let mut stream = client.count(3, 10).await.expect("server streaming");
    let mut got = Vec::new();
    while let Some(message) = stream.message().await.expect("stream ends with OK") {
        got.push(message.i);
    }
    assert_eq!(got, [0, 1, 2]);
    // `message()` returned Ok(None): the stream ended with grpc-status 0 in its trailers.
    assert!(stream.trailers().await.expect("trailers").is_some());

    // The same unary call by hand: data, then trailers with grpc-status 0.
    let raw = sidecar::grpc_call(
        sidecar.addr(),
        relay::FORWARD,
        &forward_message("/back/raw"),
        &[],
    )
    .await;
    assert_eq!(raw.status, StatusCode::OK);
    assert!(raw.came_from_upstream());
    assert_eq!(raw.trailer("grpc-status"), Some("0"));
    let messages = raw.grpc_messages();
    assert_eq!(messages.len(), 1);
    let decoded = relay::ForwardReply::decode(messages[0].clone()).expect("ForwardReply");
    assert_eq!(decoded.body, "back raw");

    let attempts = sidecar.attempts();
    assert_eq!(attempts.len(), 3);
    for a in &attempts {
        assert_eq!(a.version, Version::HTTP_2);
        assert_eq!(a.attempt_count(), Some(1));
        assert!(a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc"));
        assert_eq!(
            a.outcome,
            AttemptOutcome::Response {
                status: StatusCode::OK,
                grpc_status: None
            }
        );
    }
    assert_eq!(attempts[1].path, relay::COUNT);
}

#[tokio::test]
async fn grpc_unavailable_is_retried_and_then_passed_on_from_the_upstream() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let sidecar = Sidecar::start(mesh.relay, SidecarConfig::default().with_retries(2)).await;
    let mut client = RelayClient::new(sidecar.addr());

    let status = client
        .forward("/back/unavailable".into())
        .await
        .expect_err("the relay answers UNAVAILABLE");

    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "back answered 503 Service Unavailable");
    assert!(
        status
            .metadata()
            .get("x-envoy-upstream-service-time")
            .is_some(),
        "the app's own UNAVAILABLE came through the sidecar"
    );
    assert_eq!(
        statuses(&sidecar),
        [AttemptOutcome::Response {
            status: StatusCode::OK,
            grpc_status: Some(14)
        }; 3]
    );
}

#[tokio::test]
async fn grpc_timeout_header_becomes_the_route_timeout_with_max_grpc_timeout() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let sidecar = Sidecar::start(
        mesh.relay,
        SidecarConfig {
            max_grpc_timeout: Some(Duration::ZERO),
            ..SidecarConfig::default()
        },
    )
    .await;

    let reply = sidecar::grpc_call(
        sidecar.addr(),
        relay::FORWARD,
        &forward_message("/back/deadline"),
        &[("grpc-timeout", "1S")],
    )
    .await;

    assert_eq!(reply.trailer("grpc-status"), Some("0"));
    let attempt = &sidecar.attempts()[0];
    assert_eq!(attempt.expected_timeout_ms(), Some(1000));
    assert_eq!(attempt.grpc_timeout(), Some("1000m"));
}

#[tokio::test]
async fn route_timeout_after_the_response_headers_resets_the_stream() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let sidecar = Sidecar::start(
        mesh.relay,
        SidecarConfig::default().with_route_timeout(ms(400)),
    )
    .await;
    let mut client = RelayClient::new(sidecar.addr());

    let mut stream = client.count(5, 150).await.expect("headers came in time");
    let mut got = 0;
    let end = loop {
        match stream.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };

    let status = end.expect("the stream is cut, not ended");
    assert!((1..5).contains(&got), "{got} messages before the reset");
    assert_ne!(status.code(), tonic::Code::Ok);
}

// ---------------------------------------------------------------- idle client connections

/// Reads one HTTP/1.1 response with a `content-length`; returns it as text.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().expect("length"))
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
}

async fn raw_get(tcp: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: sidecar\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    tokio::time::timeout(Duration::from_secs(3), read_response(tcp))
        .await
        .expect("answered")
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_a_fin() {
    let sidecar = Sidecar::start(
        upstream().await,
        SidecarConfig::default().with_idle(ms(200), IdleClose::Fin),
    )
    .await;
    let mut tcp = TcpStream::connect(sidecar.addr()).await.expect("connect");

    let response = raw_get(&mut tcp, "/ok").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let answered = Instant::now();

    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("closed within 3 s");
    assert_eq!(read.expect("a clean close"), 0, "EOF");
    assert!(answered.elapsed() >= ms(150), "{:?}", answered.elapsed());
    assert_eq!(sidecar.connections_closed(), 1);
    assert_eq!(sidecar.connections_blackholed(), 0);
}

/// The types of the HTTP/2 frames in `bytes` (9-byte frame headers, whole frames only).
fn h2_frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        types.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    types
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_without_a_goaway() {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    let sidecar = Sidecar::start(
        upstream().await,
        SidecarConfig::default().with_idle(ms(200), IdleClose::Fin),
    )
    .await;
    let mut tcp = TcpStream::connect(sidecar.addr()).await.expect("connect");
    // The client preface and an empty SETTINGS frame: an HTTP/2 connection with no streams.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");

    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 1024];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;

    assert!(closed.is_ok(), "closed within 3 s");
    let types = h2_frame_types(&received);
    assert_eq!(
        types.first(),
        Some(&SETTINGS),
        "hyper spoke HTTP/2: {types:?}"
    );
    assert!(
        !types.contains(&GOAWAY),
        "no GOAWAY before the FIN: {types:?}"
    );
    assert_eq!(sidecar.connections_closed(), 1);
}

#[tokio::test]
async fn a_blackholed_connection_never_answers_and_stays_open() {
    let sidecar = Sidecar::start(
        upstream().await,
        SidecarConfig::default().with_idle(ms(200), IdleClose::Blackhole),
    )
    .await;
    let mut tcp = TcpStream::connect(sidecar.addr()).await.expect("connect");

    let response = raw_get(&mut tcp, "/ok").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        sidecar
            .wait_until(Duration::from_secs(3), |s| s.connections_blackholed() == 1)
            .await
    );

    tcp.write_all(b"GET /ok HTTP/1.1\r\nhost: sidecar\r\n\r\n")
        .await
        .expect("the connection still takes bytes");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(ms(500), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "no answer and no close: {read:?}");
    assert_eq!(
        sidecar.requests(),
        1,
        "the second request never reached hyper"
    );
    assert_eq!(sidecar.attempts().len(), 1);
    assert_eq!(sidecar.connections_closed(), 0);

    // Stopping the sidecar closes it.
    sidecar.stop().await;
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("closed at stop");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn traffic_and_requests_in_flight_keep_a_connection_from_idling() {
    let sidecar = Sidecar::start(
        upstream().await,
        SidecarConfig::default().with_idle(ms(250), IdleClose::Fin),
    )
    .await;
    let mut tcp = TcpStream::connect(sidecar.addr()).await.expect("connect");

    // Requests 120 ms apart: 600 ms in all, never 250 ms quiet.
    for _ in 0..5 {
        let response = raw_get(&mut tcp, "/ok").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        tokio::time::sleep(ms(120)).await;
    }
    // A request that takes longer than the idle timeout, with no bytes meanwhile.
    let response = raw_get(&mut tcp, "/slow/600").await;
    assert!(response.ends_with("slow ok"), "{response}");

    assert_eq!(sidecar.connections_closed(), 0);
    assert_eq!(sidecar.connections_accepted(), 1);
    assert!(
        sidecar
            .wait_until(Duration::from_secs(3), |s| s.connections_closed() == 1)
            .await,
        "closed once idle"
    );
}

#[tokio::test]
async fn stop_closes_the_port() {
    let sidecar = Sidecar::start(upstream().await, SidecarConfig::default()).await;
    assert_eq!(
        sidecar::get(sidecar.addr(), "/ok").await.status,
        StatusCode::OK
    );

    sidecar.stop().await;

    assert!(!sidecar.is_running());
    assert!(TcpStream::connect(sidecar.addr()).await.is_err());
    assert!(CONNECT_ERROR_PREFIX.starts_with("upstream connect error"));
}
