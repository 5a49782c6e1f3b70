//! Log lines written while a request is handled say which request: `trace_id` and `span_id`
//! of the span the exporter sent, and the `x-request-id` the sidecar gave the request, in the
//! text format and in JSON. A front service (`GET /front/{id}`) calls a back service through
//! `MeshClientMiddleware`, both behind `MeshServerLayer`, both logging in their handlers; the
//! lines are captured with `TelemetryBuilder::log_writer` and compared with the spans an OTLP
//! receiver on 127.0.0.1 received.
#![cfg(all(feature = "otlp", feature = "axum", feature = "reqwest"))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::export::LogFormat;
use meshtrace::server::MeshServerLayer;
use std::net::SocketAddr;
use std::time::Duration;
use support::logs::{text_value, Captured};
use support::otlp::service::{builder, collector, flush_until, force_flush, Env, Service};
use support::otlp::{one, ReceivedSpan, Receiver, SpanKind, Transport};
use support::servers::{self, Caller};

const REQUEST_ID: &str = "2f0c7d1e-8a3b-4c5d-9e6f-7a8b9c0d1e2f";
/// The span of the sidecar that forwarded the request (the caller's).
const SIDECAR_SPAN: &str = "e457b5a2e4d86bd1";

// ---------------------------------------------------------------- set-up

struct Mesh {
    front: SocketAddr,
}

/// The mesh, its telemetry from `env` and its log lines in `format` going to `logs`, printed
/// as `filter` (`RUST_LOG`'s syntax) lets them.
fn start(env: &Env, format: LogFormat, filter: &str, logs: &Captured) -> Service<Mesh> {
    let telemetry = builder(env)
        .logs(Some(filter))
        .log_format(format)
        .log_writer(logs.clone());
    Service::launch("mesh", telemetry, async {
        let back_app = Router::new()
            .route("/back/{id}", get(back))
            .layer(MeshServerLayer::new());
        let back = servers::serve(back_app).await;
        let front_app = Router::new()
            .route("/front/{id}", get(front))
            .with_state(Caller::new(format!("http://{back}")))
            .layer(MeshServerLayer::new());
        Mesh {
            front: servers::serve(front_app).await,
        }
    })
}

/// Logs in the handler, then from a task of its own that names the request's span as the
/// event's parent, then calls the back service.
async fn front(
    State(caller): State<Caller>,
    Path(id): Path<String>,
) -> Result<String, (StatusCode, String)> {
    tracing::info!("front handling {id}");
    let span = tracing::Span::current();
    let task_id = id.clone();
    tokio::spawn(async move { tracing::info!(parent: &span, "front task {task_id}") })
        .await
        .expect("the task logs");
    caller.call(&id).await?;
    Ok(format!("front {id}"))
}

async fn back(Path(id): Path<String>) -> String {
    tracing::info!(order = %id, "back handling {id}");
    format!("back {id}")
}

impl Service<Mesh> {
    /// `GET /front/{id}` as the sidecar forwards it: `traceparent` (sampled or not) and
    /// `x-request-id`.
    async fn send(&self, id: &str, trace_id: &str, sampled: bool) {
        let flags = if sampled { "01" } else { "00" };
        let response = reqwest::Client::new()
            .get(format!("http://{}/front/{id}", self.app.front))
            .header("x-request-id", REQUEST_ID)
            .header(
                "traceparent",
                format!("00-{trace_id}-{SIDECAR_SPAN}-{flags}"),
            )
            .send()
            .await
            .expect("the front service answers");
        assert_eq!(response.status(), 200);
    }
}

/// The ids of a line: trace, span, request.
#[derive(Debug, PartialEq, Eq)]
struct Ids {
    trace_id: Option<String>,
    span_id: Option<String>,
    x_request_id: Option<String>,
}

impl Ids {
    fn of(format: LogFormat, line: &str) -> Ids {
        match format {
            LogFormat::Json => {
                let json: serde_json::Value = serde_json::from_str(line).expect(line);
                let get = |key: &str| json.get(key).map(|v| v.as_str().expect(key).to_owned());
                Ids {
                    trace_id: get("trace_id"),
                    span_id: get("span_id"),
                    x_request_id: get("x_request_id"),
                }
            }
            _ => {
                let get = |key: &str| text_value(line, key).map(str::to_owned);
                Ids {
                    trace_id: get("trace_id"),
                    span_id: get("span_id"),
                    x_request_id: get("x_request_id"),
                }
            }
        }
    }

    fn of_span(span: &ReceivedSpan, request_id: Option<&str>) -> Ids {
        Ids {
            trace_id: Some(span.trace_id.clone()),
            span_id: Some(span.span_id.clone()),
            x_request_id: request_id.map(str::to_owned),
        }
    }

    const NONE: Ids = Ids {
        trace_id: None,
        span_id: None,
        x_request_id: None,
    };
}

// ---------------------------------------------------------------- the ids of the exported spans

fn lines_carry_the_ids_of_the_exported_spans(format: LogFormat, trace: &str) {
    let (_collector, receiver) = collector(Transport::Http);
    let env = otlp_env(&receiver);
    let logs = Captured::default();
    let mesh = start(&env, format, "info", &logs);
    let provider = mesh.provider.clone().expect("the SDK is enabled");

    let spans = mesh.block_on(async {
        tracing::info!("ready");
        mesh.send("order-7", trace, true).await;
        flush_until(&provider, &receiver, trace, 3).await
    });
    let front = one(&spans, "GET /front/{id}", SpanKind::Server);
    let back = one(&spans, "GET /back/{id}", SpanKind::Server);
    let ids = |needle: &str| Ids::of(format, &logs.line_with(needle));

    let front_ids = Ids::of_span(front, Some(REQUEST_ID));
    assert_eq!(ids("front handling order-7"), front_ids);
    assert_eq!(ids("front task order-7"), front_ids, "explicit parent");
    // The back service's line: its own server span, the request id forwarded by the client.
    assert_eq!(
        ids("back handling order-7"),
        Ids::of_span(back, Some(REQUEST_ID))
    );
    assert_eq!(front.trace_id, trace);
    // Outside any request: no ids, not zeros.
    let ready = logs.line_with("ready");
    assert_eq!(Ids::of(format, &ready), Ids::NONE);
    assert!(!ready.contains("trace_id") && !ready.contains("0000000000000000"));
}

fn otlp_env(receiver: &Receiver) -> Env {
    support::otlp::service::env("orders", receiver.transport(), receiver.endpoint())
}

#[test]
fn text_lines_carry_the_ids_of_the_exported_spans() {
    lines_carry_the_ids_of_the_exported_spans(LogFormat::Text, "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn json_lines_carry_the_ids_of_the_exported_spans() {
    lines_carry_the_ids_of_the_exported_spans(LogFormat::Json, "5bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn text_lines_look_like_tracing_subscribers_with_the_ids_at_the_end() {
    const TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4736";
    let (_collector, receiver) = collector(Transport::Http);
    let logs = Captured::default();
    let mesh = start(&otlp_env(&receiver), LogFormat::Text, "info", &logs);
    mesh.block_on(mesh.send("order-8", TRACE, true));

    let line = logs.line_with("back handling order-8");
    let (time, rest) = line.split_once(' ').expect("a timestamp first");
    assert!(time.ends_with('Z') && time.contains('T'), "{line}");
    let (fields, _) = rest.split_once(" trace_id=").expect("the ids last");
    assert_eq!(
        fields,
        " INFO server{otel.name=\"GET /back/{id}\" otel.kind=\"server\"}: logs: back handling order-8 order=order-8"
    );
    assert!(
        line.ends_with(&format!(" x_request_id={REQUEST_ID}")),
        "{line}"
    );
    assert!(!line.contains('\x1b'), "no colour into a writer: {line}");
}

#[test]
fn json_lines_are_one_object_each_with_the_event_and_its_spans() {
    const TRACE: &str = "7bf92f3577b34da6a3ce929d0e0e4736";
    let (_collector, receiver) = collector(Transport::Http);
    let logs = Captured::default();
    let mesh = start(&otlp_env(&receiver), LogFormat::Json, "info", &logs);
    mesh.block_on(async {
        tracing::warn!(
            attempt = 3_i64,
            ratio = 0.5,
            ok = false,
            quote = "say \"hi\"\n",
            "odd {}",
            "\u{1b}[31m"
        );
        mesh.send("order-9", TRACE, true).await;
    });

    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(&line).expect(&line);
    }
    let line: serde_json::Value =
        serde_json::from_str(&logs.line_with("back handling order-9")).unwrap();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "logs");
    assert_eq!(line["message"], "back handling order-9");
    assert_eq!(line["fields"], serde_json::json!({"order": "order-9"}));
    assert_eq!(
        line["spans"],
        serde_json::json!([{"name": "server", "otel.name": "GET /back/{id}", "otel.kind": "server"}])
    );
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["x_request_id"], REQUEST_ID);
    let timestamp = line["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.contains('T'),
        "{timestamp}"
    );

    let odd: serde_json::Value = serde_json::from_str(&logs.line_with("odd")).unwrap();
    assert_eq!(odd["message"], "odd \u{1b}[31m");
    assert_eq!(
        odd["fields"],
        serde_json::json!({"attempt": 3, "ratio": 0.5, "ok": false, "quote": "say \"hi\"\n"})
    );
    assert_eq!(odd["spans"], serde_json::json!([]));
    assert!(odd.get("trace_id").is_none());
}

// ---------------------------------------------------------------- unsampled, filtered, untracked

#[test]
fn an_unsampled_requests_lines_carry_its_trace_id() {
    const TRACE: &str = "8bf92f3577b34da6a3ce929d0e0e4736";
    let (_collector, receiver) = collector(Transport::Http);
    let logs = Captured::default();
    let mesh = start(&otlp_env(&receiver), LogFormat::Text, "info", &logs);
    let provider = mesh.provider.clone().expect("the SDK is enabled");
    mesh.block_on(async {
        mesh.send("order-10", TRACE, false).await;
        // The server spans end as their bodies do, just after the answer.
        tokio::time::sleep(Duration::from_millis(100)).await;
        force_flush(&provider).await.expect("flush");
    });
    let spans = receiver.spans();
    assert!(spans.iter().all(|s| s.trace_id != TRACE), "{spans:?}");

    let front = Ids::of(LogFormat::Text, &logs.line_with("front handling order-10"));
    let back = Ids::of(LogFormat::Text, &logs.line_with("back handling order-10"));
    for ids in [&front, &back] {
        assert_eq!(ids.trace_id.as_deref(), Some(TRACE));
        assert_eq!(ids.x_request_id.as_deref(), Some(REQUEST_ID));
        // The server span's own id: not the caller's, and not zeros.
        let span_id = ids.span_id.as_deref().expect("a span id");
        assert_eq!(span_id.len(), 16);
        assert_ne!(span_id, SIDECAR_SPAN);
        assert_ne!(span_id, "0000000000000000");
    }
    assert_ne!(front.span_id, back.span_id);
}

#[test]
fn lines_carry_the_ids_when_the_filter_hides_the_request_spans() {
    const TRACE: &str = "9bf92f3577b34da6a3ce929d0e0e4736";
    let (_collector, receiver) = collector(Transport::Http);
    let logs = Captured::default();
    // Only this test's own events: the server spans (target meshtrace::server) are not shown.
    let mesh = start(&otlp_env(&receiver), LogFormat::Text, "logs=info", &logs);
    let provider = mesh.provider.clone().expect("the SDK is enabled");
    let spans = mesh.block_on(async {
        mesh.send("order-11", TRACE, true).await;
        flush_until(&provider, &receiver, TRACE, 3).await
    });
    let line = logs.line_with("front handling order-11");
    assert!(!line.contains("server{"), "{line}");
    assert_eq!(
        Ids::of(LogFormat::Text, &line),
        Ids::of_span(
            one(&spans, "GET /front/{id}", SpanKind::Server),
            Some(REQUEST_ID)
        )
    );
}

#[test]
fn without_an_opentelemetry_layer_lines_carry_the_callers_ids() {
    const TRACE: &str = "abf92f3577b34da6a3ce929d0e0e4736";
    let (_collector, receiver) = collector(Transport::Http);
    let mut env = otlp_env(&receiver);
    env.insert("OTEL_SDK_DISABLED", "true".into());
    let logs = Captured::default();
    let mesh = start(&env, LogFormat::Json, "info", &logs);
    assert!(mesh.provider.is_none());
    mesh.block_on(mesh.send("order-12", TRACE, true));

    // The extracted context is current while the handlers run; the client forwards it.
    let callers = Ids {
        trace_id: Some(TRACE.into()),
        span_id: Some(SIDECAR_SPAN.into()),
        x_request_id: Some(REQUEST_ID.into()),
    };
    for needle in ["front handling order-12", "back handling order-12"] {
        assert_eq!(Ids::of(LogFormat::Json, &logs.line_with(needle)), callers);
    }
}

// ---------------------------------------------------------------- OTLP log records

fn records_carry_the_trace_context(transport: Transport, trace: &str) {
    let (_collector, receiver) = collector(transport);
    let mut env = otlp_env(&receiver);
    env.insert("OTEL_LOGS_EXPORTER", "otlp".into());
    let logs = Captured::default();
    let mut mesh = start(&env, LogFormat::Text, "info", &logs);
    mesh.block_on(async {
        tracing::info!("ready for {trace}");
        mesh.send("order-20", trace, true).await;
        // The server spans end as their bodies do, just after the answer.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let (shutdown, _) = mesh.shutdown();
    shutdown.expect("spans and records flushed");

    let spans: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect();
    let records = receiver.logs();
    let record = |body: &str| {
        let found: Vec<_> = records
            .iter()
            .filter(|r| r.body.as_str() == Some(body))
            .collect();
        assert_eq!(found.len(), 1, "one record {body:?}");
        found[0].clone()
    };
    for (body, span) in [
        ("front handling order-20", "GET /front/{id}"),
        ("front task order-20", "GET /front/{id}"),
        ("back handling order-20", "GET /back/{id}"),
    ] {
        let record = record(body);
        let span = one(&spans, span, SpanKind::Server);
        assert_eq!(
            (record.trace_id.as_str(), record.span_id.as_str()),
            (span.trace_id.as_str(), span.span_id.as_str()),
            "{body}"
        );
        assert_eq!(record.service_name, "orders");
        assert_eq!(record.severity_text, "INFO");
        assert_eq!(record.scope_name, "logs");
    }
    let ready = record(&format!("ready for {trace}"));
    assert_eq!((ready.trace_id.as_str(), ready.span_id.as_str()), ("", ""));
}

#[test]
fn records_exported_over_grpc_carry_the_server_spans_ids() {
    records_carry_the_trace_context(Transport::Grpc, "c4f92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn records_exported_over_http_carry_the_server_spans_ids() {
    records_carry_the_trace_context(Transport::Http, "d4f92f3577b34da6a3ce929d0e0e4736");
}
