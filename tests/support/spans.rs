//! Reading spans back from an in-memory exporter: the spans of one trace, one span by name
//! (and kind), attributes, parent chains, and a deterministic rendering of a trace's tree
//! for snapshots.

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use std::fmt::Write as _;
use std::time::Duration;

/// The finished spans of one trace in `exporter`, right now (no waiting).
pub fn finished_spans(exporter: &InMemorySpanExporter, trace_id: TraceId) -> Vec<SpanData> {
    exporter
        .get_finished_spans()
        .expect("in-memory exporter")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect()
}

/// The finished spans of one trace in `exporter`, waiting (up to 10 s) until there are at
/// least `want`: spans end when their response bodies end, a little after the caller has its
/// answer.
pub async fn wait_for_spans(
    exporter: &InMemorySpanExporter,
    trace_id: TraceId,
    want: usize,
) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = finished_spans(exporter, trace_id);
        if spans.len() >= want || tokio::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The finished spans of one trace in [`super::telemetry::exporter`], waiting (up to 10 s)
/// until there are at least `want`.
#[cfg(feature = "sdk")]
pub async fn spans_of(trace_id: TraceId, want: usize) -> Vec<SpanData> {
    wait_for_spans(super::telemetry::exporter(), trace_id, want).await
}

/// Runs `f` in a root span of its own (installing [`super::telemetry::exporter`] first);
/// returns its output and the trace id.
#[cfg(feature = "sdk")]
pub async fn in_root<F: std::future::Future>(f: F) -> (F::Output, TraceId) {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    super::telemetry::exporter();
    let root = tracing::info_span!(parent: None, "root");
    let trace_id = root.context().span().span_context().trace_id();
    (f.instrument(root).await, trace_id)
}

/// The one span among `spans` with this name and kind.
pub fn one<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && s.span_kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} span named {name:?} in {:?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.span_kind))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// The one span named `name` among `spans`.
pub fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one span named {name:?} in {:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

/// The value of attribute `key` on `span`.
pub fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| kv.value.clone())
}

/// The strings of attribute `key` on `span` (a recorded header's values, one per line); any
/// other value as its one text.
pub fn strings(span: &SpanData, key: &str) -> Option<Vec<String>> {
    attr(span, key).map(|value| match value {
        Value::Array(opentelemetry::Array::String(v)) => {
            v.iter().map(|s| s.as_str().to_owned()).collect()
        }
        other => vec![other.to_string()],
    })
}

/// A string attribute value.
pub fn s(v: &str) -> Value {
    Value::from(v.to_owned())
}

/// An `i64` attribute's value; panics on anything else.
pub fn int(v: Option<Value>) -> i64 {
    match v {
        Some(Value::I64(n)) => n,
        other => panic!("expected an int attribute, got {other:?}"),
    }
}

/// Asserts that `chain` names spans each of which is the parent of the next, with these kinds.
pub fn assert_chain(spans: &[SpanData], chain: &[(&str, SpanKind)]) {
    for window in chain.windows(2) {
        let parent = span(spans, window[0].0);
        let child = span(spans, window[1].0);
        assert_eq!(
            child.parent_span_id,
            parent.span_context.span_id(),
            "{:?} is the parent of {:?}",
            window[0].0,
            window[1].0
        );
    }
    for (name, kind) in chain {
        assert_eq!(span(spans, name).span_kind, *kind, "kind of {name:?}");
    }
}

/// A span as a line of a [`render_tree`]: its id, its parent's (`None` for a root) and the
/// text that stands for it.
pub struct Node {
    pub id: String,
    pub parent: Option<String>,
    pub line: String,
}

/// `name (kind) status key=value...`: a span's line in a tree, with the attributes named in
/// `keys` that it has, in the order of `keys`.
pub fn line<V: std::fmt::Display>(
    name: &str,
    kind: &dyn std::fmt::Debug,
    status: &str,
    keys: &[&str],
    attr: impl Fn(&str) -> Option<V>,
) -> String {
    let mut out = format!("{name} ({kind:?}) {status}");
    for key in keys {
        if let Some(value) = attr(key) {
            let _ = write!(out, " {key}={value}");
        }
    }
    out
}

/// The tree of `nodes` as text for a snapshot: one node a line, each child indented under
/// its parent. Roots are the nodes whose parent is not among `nodes`; one whose parent is
/// elsewhere (another service's span) is marked `<- remote parent`. Siblings are ordered by
/// what they render as, so the text is the same on every run as long as the lines hold no
/// ids, timings or ports.
pub fn render_tree(nodes: &[Node]) -> String {
    let known = |id: &Option<String>| {
        id.as_ref()
            .is_some_and(|id| nodes.iter().any(|n| &n.id == id))
    };
    let mut roots: Vec<String> = nodes
        .iter()
        .filter(|n| !known(&n.parent))
        .map(|n| {
            let mark = if n.parent.is_some() {
                " <- remote parent"
            } else {
                ""
            };
            subtree(nodes, n, mark, 0)
        })
        .collect();
    roots.sort();
    roots.concat()
}

fn subtree(nodes: &[Node], node: &Node, mark: &str, depth: usize) -> String {
    let mut out = format!("{}{}{mark}\n", "  ".repeat(depth), node.line);
    let mut children: Vec<String> = nodes
        .iter()
        .filter(|c| c.parent.as_deref() == Some(node.id.as_str()))
        .map(|c| subtree(nodes, c, "", depth + 1))
        .collect();
    children.sort();
    out.push_str(&children.concat());
    out
}

/// The tree of `spans` (see [`render_tree`]): name, kind, status and the attributes named in
/// `keys` of each span.
pub fn tree(spans: &[SpanData], keys: &[&str]) -> String {
    let nodes: Vec<Node> = spans
        .iter()
        .map(|span| {
            let status = match &span.status {
                Status::Unset => "unset".to_owned(),
                Status::Ok => "ok".to_owned(),
                Status::Error { description } => format!("error {description:?}"),
            };
            Node {
                id: span.span_context.span_id().to_string(),
                parent: (span.parent_span_id != SpanId::INVALID)
                    .then(|| span.parent_span_id.to_string()),
                line: line(&span.name, &span.span_kind, &status, keys, |k| {
                    attr(span, k)
                }),
            }
        })
        .collect();
    render_tree(&nodes)
}
