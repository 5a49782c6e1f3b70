//! Runs the `mesh_demo` example the way a user would and checks what it prints: one trace per
//! request the driver sent, each under the trace id the driver put in `x-b3-traceid`, spanning
//! the proxies Istio puts in front of productpage, then productpage, reviews and ratings, and
//! the failing request's trace marked as failed on the way back up.
//!
//! `cargo test --all-features` builds the example before running the tests; the binary is
//! found next to this test's own (`target/<profile>/examples/mesh_demo`).
#![cfg(all(
    feature = "otlp",
    feature = "axum",
    feature = "reqwest",
    feature = "tonic"
))]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::demo::{run_demo, PROXIES, SERVICES};

/// One span line of a printed trace:
/// `<tree>─ <service>  <name>[ (<kind>)]  <ms> ms  <OK|ERROR>  <attributes>…`.
#[derive(Debug)]
struct SpanLine {
    depth: usize,
    service: String,
    name: String,
    kind: Option<String>,
    status: String,
    rest: String,
}

#[derive(Debug)]
struct Trace {
    id: String,
    header: Vec<String>,
    spans: Vec<SpanLine>,
}

impl Trace {
    fn services(&self) -> BTreeSet<&str> {
        self.spans.iter().map(|s| s.service.as_str()).collect()
    }

    fn span(&self, service: &str, kind: &str) -> &SpanLine {
        self.spans
            .iter()
            .find(|s| s.service == service && s.kind.as_deref() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} span of {service} in {self:#?}"))
    }
}

fn parse_span(line: &str) -> Option<SpanLine> {
    let at = line.find("─ ")?;
    let depth = line[..at].chars().count() / 3;
    let fields: Vec<&str> = line[at + "─ ".len()..]
        .split("  ")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let [service, name, duration, status, rest @ ..] = fields.as_slice() else {
        panic!("span line with too few fields: {line:?}");
    };
    assert!(
        duration.ends_with(" ms"),
        "duration field {duration:?} in {line:?}"
    );
    let (name, kind) = match name.rsplit_once(" (") {
        Some((n, k)) if k.ends_with(')') => (n, Some(k.trim_end_matches(')').to_owned())),
        _ => (*name, None),
    };
    Some(SpanLine {
        depth,
        service: service.to_string(),
        name: name.to_owned(),
        kind,
        status: status.to_string(),
        rest: rest.join("  "),
    })
}

/// The trace ids the driver sent (`x-b3-traceid: <hex>` lines) and the printed traces.
fn parse(stdout: &str) -> (Vec<String>, Vec<Trace>) {
    let mut sent = Vec::new();
    let mut traces: Vec<Trace> = Vec::new();
    let mut in_trace = false;
    for line in stdout.lines() {
        if let Some(id) = line.trim_start().strip_prefix("x-b3-traceid: ") {
            sent.push(id.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("trace ") {
            let id = rest.split_whitespace().next().expect("trace id").to_owned();
            traces.push(Trace {
                id,
                header: vec![line.to_owned()],
                spans: Vec::new(),
            });
            in_trace = true;
        } else if line.trim().is_empty() {
            in_trace = false;
        } else if in_trace {
            let trace = traces.last_mut().expect("inside a trace");
            match parse_span(line) {
                Some(span) => trace.spans.push(span),
                None => trace.header.push(line.to_owned()),
            }
        }
    }
    (sent, traces)
}

#[test]
fn mesh_demo_prints_one_connected_trace_per_request() {
    let run = run_demo(&[]);
    let out = &run.stdout;
    assert!(
        run.success,
        "mesh_demo failed\nstdout:\n{out}\nstderr:\n{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(30),
        "mesh_demo took {:?}",
        run.took
    );
    let (sent, traces) = parse(out);

    // The driver sent several requests, each with its own 128-bit B3 trace id, and every
    // trace printed is one of those, each exactly once.
    assert!(sent.len() >= 3, "driver output: {sent:?}\n{out}");
    for id in &sent {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
    }
    let printed: BTreeSet<&str> = traces.iter().map(|t| t.id.as_str()).collect();
    let sent_ids: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
    assert_eq!(
        printed, sent_ids,
        "printed traces vs sent B3 trace ids\n{out}"
    );
    assert_eq!(traces.len(), sent.len(), "one block per trace\n{out}");

    for trace in &traces {
        // One tree: the ingress gateway's client span is the only root, the sidecar's server
        // span its child, and productpage's server span the child of that (its remote parent).
        let roots: Vec<&SpanLine> = trace.spans.iter().filter(|s| s.depth == 0).collect();
        assert_eq!(roots.len(), 1, "one root in {trace:#?}");
        let top: Vec<(usize, &str, Option<&str>)> = trace.spans[..3]
            .iter()
            .map(|s| (s.depth, s.service.as_str(), s.kind.as_deref()))
            .collect();
        assert_eq!(
            top,
            [
                (0, PROXIES[0], Some("client")),
                (1, PROXIES[1], Some("server")),
                (2, "productpage", Some("server")),
            ],
            "{trace:#?}"
        );
        assert!(
            trace.spans[2]
                .rest
                .contains("http.request.header.x-request-id="),
            "{trace:#?}"
        );
        // Each span is at most one level deeper than the line before it.
        for pair in trace.spans.windows(2) {
            assert!(pair[1].depth <= pair[0].depth + 1, "{trace:#?}");
        }
        // Every request crosses all three services, and its x-request-id reached each.
        assert!(trace.spans.len() >= 7, "{trace:#?}");
        let services: BTreeSet<&str> = SERVICES.into_iter().chain(PROXIES).collect();
        assert_eq!(trace.services(), services, "{trace:#?}");
        let reached = trace
            .header
            .iter()
            .find_map(|l| l.split_once("reached: ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("no x-request-id line in {trace:#?}"));
        let reached: BTreeSet<&str> = reached.split(", ").collect();
        assert_eq!(reached, SERVICES.into(), "{trace:#?}");
        for span in &trace.spans {
            assert!(
                span.status == "OK" || span.status == "ERROR",
                "status {:?}",
                span.status
            );
            assert!(!span.name.is_empty());
        }
    }

    // Exactly one request failed downstream (driver: one 502), and its trace says so on the
    // way back up: ratings' server span, reviews' client and server spans, up to the proxies'.
    let answers_502 = out.lines().filter(|l| l.starts_with("← 502")).count();
    assert_eq!(answers_502, 1, "{out}");
    let failed: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.spans[0].status == "ERROR")
        .collect();
    assert_eq!(failed.len(), 1, "one failed trace\n{out}");
    let failed = failed[0];
    assert!(failed
        .span("productpage", "server")
        .rest
        .contains("http.response.status_code=502"));
    for (service, kind) in [
        (PROXIES[0], "client"),
        (PROXIES[1], "server"),
        ("productpage", "server"),
        ("ratings", "server"),
        ("reviews", "client"),
        ("reviews", "server"),
        ("productpage", "client"),
    ] {
        assert_eq!(
            failed.span(service, kind).status,
            "ERROR",
            "{service} {kind} span in {failed:#?}"
        );
    }
    assert!(failed
        .span("ratings", "server")
        .rest
        .contains("http.response.status_code=503"));
    assert!(failed
        .span("productpage", "client")
        .rest
        .contains("rpc.grpc.status_code=14"));
    // The others succeeded everywhere.
    for trace in traces.iter().filter(|t| t.id != failed.id) {
        assert!(trace.spans.iter().all(|s| s.status == "OK"), "{trace:#?}");
    }

    // Baggage set at the edge reached ratings, two hops away.
    assert!(
        traces.iter().any(|t| t
            .spans
            .iter()
            .any(|s| s.service == "ratings" && s.rest.contains("baggage.user=jason"))),
        "{out}"
    );
    assert!(
        out.contains("OTEL_EXPORTER_OTLP_ENDPOINT is not set"),
        "{out}"
    );
    assert_request_metrics(out);
}

/// After the traces, each service's request metrics as its guard flushed them: the three
/// good requests and the failing one, on every side of every hop.
fn assert_request_metrics(out: &str) {
    let metrics = &out[out
        .find("request metrics of productpage")
        .unwrap_or_else(|| panic!("no request metrics printed:\n{out}"))..];
    let row = |service: &str, words: &[&str], count: &str| {
        let section = metrics
            .split("request metrics of ")
            .find(|s| s.starts_with(service))
            .unwrap_or_else(|| panic!("no metrics of {service}:\n{metrics}"));
        assert!(
            section.lines().any(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                words.iter().all(|w| fields.contains(w)) && fields.contains(&count)
            }),
            "{service}: no row with {words:?} {count}:\n{section}"
        );
    };
    let get = "/productpage/{id}";
    row(
        "productpage",
        &["http.server.request.duration", "GET", get, "200"],
        "×3",
    );
    row(
        "productpage",
        &["http.server.request.duration", "GET", get, "502"],
        "×1",
    );
    row(
        "productpage",
        &["rpc.client.call.duration", "reviews.Reviews/Get", "OK"],
        "×3",
    );
    row(
        "productpage",
        &[
            "rpc.client.call.duration",
            "reviews.Reviews/Get",
            "UNAVAILABLE",
        ],
        "×1",
    );
    row(
        "reviews",
        &["rpc.server.call.duration", "reviews.Reviews/Get", "OK"],
        "×3",
    );
    row(
        "reviews",
        &[
            "rpc.server.call.duration",
            "reviews.Reviews/Get",
            "UNAVAILABLE",
        ],
        "×1",
    );
    row(
        "reviews",
        &["http.client.request.duration", "GET", "503"],
        "×1",
    );
    row(
        "ratings",
        &[
            "http.server.request.duration",
            "GET",
            "/ratings/{id}",
            "200",
        ],
        "×3",
    );
    row(
        "ratings",
        &[
            "http.server.request.duration",
            "GET",
            "/ratings/{id}",
            "503",
        ],
        "×1",
    );
}
