//! A real Jaeger for the tests: Jaeger v2 (`cmd/jaeger` of the Go module
//! `github.com/jaegertracing/jaeger` at [`VERSION`]), built by `.ci/build-peers.sh`, started
//! per test on 127.0.0.1 with in-memory storage and ports of the test's choosing (a config
//! file of its own), OTLP over gRPC and HTTP, and its query API. Stopped when dropped.
//!
//! Traces are read back the way Jaeger's UI reads them: `GET /api/traces/{id}` of the query
//! service, which returns the trace after Jaeger's adjusters ran, with their `warnings` (a
//! span whose parent is missing gets one) and the service of every span.

use super::peers;
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Jaeger release the tests run.
pub const VERSION: &str = "v1.76.0";
/// The variable naming a Jaeger binary; without it, `jaeger-{VERSION}/jaeger` in the cache.
pub const JAEGER_VAR: &str = "MESHTRACE_JAEGER";

/// How long Jaeger may take to start, and a trace to show up.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running Jaeger, killed when dropped.
pub struct Jaeger {
    child: Child,
    dir: PathBuf,
    /// OTLP/gRPC receiver.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver (`/v1/traces`).
    pub otlp_http: SocketAddr,
    /// The query service's HTTP API (and UI).
    pub query: SocketAddr,
    http: reqwest::Client,
}

/// Free ports of 127.0.0.1, held until all are chosen so they differ.
fn free_ports<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect();
    addrs.try_into().expect("N addresses")
}

fn config(
    otlp_grpc: SocketAddr,
    otlp_http: SocketAddr,
    query: SocketAddr,
    query_grpc: SocketAddr,
) -> String {
    // No batch processor: a span is searchable as soon as Jaeger accepted it. No metrics
    // endpoint of Jaeger's own (its default would listen on 0.0.0.0:8888).
    format!(
        r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: {query}
    grpc:
      endpoint: {query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {otlp_grpc}
      http:
        endpoint: {otlp_http}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
    )
}

impl Jaeger {
    /// Starts Jaeger for `test`, or skips it (see [`peers::skip`]) when there is no binary.
    pub async fn start(test: &str) -> Option<Jaeger> {
        let binary = match peers::program(JAEGER_VAR, &format!("jaeger-{VERSION}/jaeger")) {
            Ok(binary) => binary,
            Err(why) => return peers::skip(test, format!("no Jaeger: {why}")),
        };
        // The ports are free when chosen, but another process may take one before Jaeger
        // binds it: then Jaeger exits, and it starts again on other ports.
        let mut exits = Vec::new();
        for _ in 0..3 {
            let mut jaeger = Jaeger::spawn(&binary);
            match jaeger.ready().await {
                Ok(()) => return Some(jaeger),
                Err(log) => exits.push(log),
            }
        }
        panic!(
            "Jaeger exited at each of 3 starts; its last log:\n{}",
            exits.join("\n---\n")
        );
    }

    fn spawn(binary: &std::path::Path) -> Jaeger {
        let [otlp_grpc, otlp_http, query, query_grpc] = free_ports();
        let dir = std::env::temp_dir().join(format!(
            "meshtrace-jaeger-{}-{}",
            std::process::id(),
            query.port()
        ));
        std::fs::create_dir_all(&dir).expect("jaeger dir");
        let config_path = dir.join("config.yaml");
        std::fs::write(
            &config_path,
            config(otlp_grpc, otlp_http, query, query_grpc),
        )
        .expect("write jaeger config");
        let log = std::fs::File::create(dir.join("jaeger.log")).expect("jaeger log");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Jaeger {
            child,
            dir,
            otlp_grpc,
            otlp_http,
            query,
            http: reqwest::Client::new(),
        }
    }

    /// Waits until the query API answers and both receivers accept connections; if Jaeger
    /// exits first, its log.
    async fn ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let api = self.get("/api/services").await.is_ok_and(|(s, _)| s == 200);
            let receivers = [self.otlp_grpc, self.otlp_http].iter().all(|a| {
                std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
            });
            if api && receivers {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{status}\n{}", self.log()));
            }
            assert!(
                started.elapsed() < PATIENCE,
                "Jaeger did not start within {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What Jaeger logged so far (its last 4 KiB).
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("jaeger.log")).unwrap_or_default();
        let start = log.len().saturating_sub(4096);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        log[start..].to_owned()
    }

    /// The OTLP/gRPC endpoint, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.otlp_grpc)
    }

    /// The OTLP/HTTP base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.otlp_http)
    }

    async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let res = self
            .http
            .get(format!("http://{}{path}", self.query))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// The services Jaeger knows, as its UI lists them.
    pub async fn services(&self) -> BTreeSet<String> {
        let (status, json) = self.get("/api/services").await.expect("query API");
        assert_eq!(status, 200, "GET /api/services: {json}");
        json["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The trace `id` as Jaeger serves it now, or `None` if Jaeger has none.
    pub async fn trace(&self, id: TraceId) -> Option<JaegerTrace> {
        let (status, json) = self
            .get(&format!("/api/traces/{id}"))
            .await
            .expect("query API");
        match status {
            404 => None,
            200 => Some(JaegerTrace::from_json(&json["data"][0])),
            other => panic!("GET /api/traces/{id}: {other} {json}"),
        }
    }

    /// Waits until the trace `id` has `spans` spans (or more), then gives it; fails with what
    /// Jaeger has after [`PATIENCE`].
    pub async fn wait_for_trace(&self, id: TraceId, spans: usize) -> JaegerTrace {
        let started = Instant::now();
        loop {
            let trace = self.trace(id).await;
            if trace.as_ref().is_some_and(|t| t.spans.len() >= spans) {
                // A moment more, so that a span too many would show too.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return self.trace(id).await.expect("the trace stays");
            }
            assert!(
                started.elapsed() < PATIENCE,
                "trace {id}: wanted {spans} spans in Jaeger, it has {}",
                trace.map_or("none".to_owned(), |t| t.to_string())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- traces as Jaeger serves them

/// A span as Jaeger's query API serves it.
#[derive(Clone, Debug)]
pub struct JaegerSpan {
    pub span_id: String,
    pub operation: String,
    pub service: String,
    /// The `spanID`s of its `CHILD_OF` references.
    pub parents: Vec<String>,
    /// Its tags, values as text (`span.kind`, `otel.status_code`, `error`, attributes).
    pub tags: BTreeMap<String, String>,
    /// Jaeger's warnings about the span (a missing parent, clock skew, ...).
    pub warnings: Vec<String>,
}

impl JaegerSpan {
    /// `server`, `client`, ... (`span.kind`); `internal` when Jaeger gives none.
    pub fn kind(&self) -> &str {
        self.tags
            .get("span.kind")
            .map_or("internal", String::as_str)
    }

    /// Whether Jaeger shows the span as failed.
    pub fn is_error(&self) -> bool {
        self.tags.get("error").is_some_and(|v| v == "true")
            || self
                .tags
                .get("otel.status_code")
                .is_some_and(|v| v == "ERROR")
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// A trace as Jaeger's query API serves it.
#[derive(Clone, Debug)]
pub struct JaegerTrace {
    pub trace_id: String,
    pub spans: Vec<JaegerSpan>,
    /// Jaeger's warnings about the whole trace.
    pub warnings: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl JaegerTrace {
    fn from_json(trace: &Value) -> JaegerTrace {
        let processes = &trace["processes"];
        let spans = trace["spans"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|s| JaegerSpan {
                span_id: text(&s["spanID"]),
                operation: text(&s["operationName"]),
                service: text(&processes[text(&s["processID"])]["serviceName"]),
                parents: s["references"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|r| r["refType"] == "CHILD_OF")
                    .map(|r| text(&r["spanID"]))
                    .collect(),
                tags: s["tags"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| (text(&t["key"]), text(&t["value"])))
                    .collect(),
                warnings: strings(&s["warnings"]),
            })
            .collect();
        JaegerTrace {
            trace_id: text(&trace["traceID"]),
            spans,
            warnings: strings(&trace["warnings"]),
        }
    }

    /// The services of its spans.
    pub fn services(&self) -> BTreeSet<&str> {
        self.spans.iter().map(|s| s.service.as_str()).collect()
    }

    /// The span with this id.
    pub fn by_id(&self, id: SpanId) -> Option<&JaegerSpan> {
        let id = id.to_string();
        self.spans.iter().find(|s| s.span_id == id)
    }

    /// The one span of `service` named `operation` of kind `kind`.
    pub fn span(&self, service: &str, operation: &str, kind: &str) -> &JaegerSpan {
        let found: Vec<&JaegerSpan> = self
            .spans
            .iter()
            .filter(|s| s.service == service && s.operation == operation && s.kind() == kind)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {kind} span {operation:?} of {service} in {self}"
        );
        found[0]
    }

    /// The parent of `span` inside this trace.
    pub fn parent(&self, span: &JaegerSpan) -> &JaegerSpan {
        let [parent] = span.parents.as_slice() else {
            panic!(
                "{} has {} parents in {self}",
                span.operation,
                span.parents.len()
            );
        };
        self.spans
            .iter()
            .find(|s| &s.span_id == parent)
            .unwrap_or_else(|| panic!("the parent of {} is not in {self}", span.operation))
    }

    /// Fails unless `parent` is the parent of `child`.
    pub fn assert_child_of(&self, child: &JaegerSpan, parent: &JaegerSpan) {
        assert_eq!(
            self.parent(child).span_id,
            parent.span_id,
            "{} {} ({}) is a child of {} {} ({}) in {self}",
            child.service,
            child.operation,
            child.kind(),
            parent.service,
            parent.operation,
            parent.kind()
        );
    }

    /// The checks a user makes of a trace in Jaeger's UI: one root, every parent reference
    /// resolving inside the trace, and no warnings from Jaeger on the trace or any span.
    pub fn assert_whole(&self) {
        let ids: HashSet<&str> = self.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids.len(), self.spans.len(), "span ids are unique in {self}");
        let roots = self.spans.iter().filter(|s| s.parents.is_empty()).count();
        assert_eq!(roots, 1, "one root in {self}");
        for span in &self.spans {
            for parent in &span.parents {
                assert!(
                    ids.contains(parent.as_str()),
                    "the parent {parent} of {} ({}) is not in {self}",
                    span.operation,
                    span.service
                );
            }
            assert!(span.warnings.is_empty(), "Jaeger warns about {span:?}");
        }
        assert!(
            self.warnings.is_empty(),
            "Jaeger warns: {:?}",
            self.warnings
        );
    }
}

impl std::fmt::Display for JaegerTrace {
    /// The trace as a tree, one span a line: service, operation, kind, error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = format!("trace {} ({} spans)\n", self.trace_id, self.spans.len());
        let ids: HashSet<&str> = self.spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut stack: Vec<(&JaegerSpan, usize)> = self
            .spans
            .iter()
            .filter(|s| s.parents.iter().all(|p| !ids.contains(p.as_str())))
            .map(|s| (s, 0))
            .collect();
        while let Some((span, depth)) = stack.pop() {
            let _ = writeln!(
                out,
                "{:indent$}{} {} ({}){}{}",
                "",
                span.service,
                span.operation,
                span.kind(),
                if span.is_error() { " ERROR" } else { "" },
                if span.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" warnings: {:?}", span.warnings)
                },
                indent = depth * 2
            );
            stack.extend(
                self.spans
                    .iter()
                    .filter(|c| c.parents.contains(&span.span_id))
                    .map(|c| (c, depth + 1)),
            );
        }
        f.write_str(&out)
    }
}
