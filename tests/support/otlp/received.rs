//! Received spans, flattened from OTLP ResourceSpans with their resource and scope.

use super::*;

/// An OTLP attribute value, kept as its type: an `int_value` stays [`Value::Int`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
    /// An `AnyValue` with no value set.
    Empty,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(super) fn from_proto(value: Option<&AnyValue>) -> Value {
        use any_value::Value as V;
        match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => Value::Str(s.clone()),
            Some(V::BoolValue(b)) => Value::Bool(*b),
            Some(V::IntValue(i)) => Value::Int(*i),
            Some(V::DoubleValue(d)) => Value::Double(*d),
            Some(V::BytesValue(b)) => Value::Bytes(b.clone()),
            Some(V::ArrayValue(a)) => Value::Array(
                a.values
                    .iter()
                    .map(|v| Value::from_proto(Some(v)))
                    .collect(),
            ),
            Some(V::KvlistValue(kv)) => Value::Map(attribute_map(&kv.values)),
            // Only meaningful for profiles; a trace receiver treats it as absent.
            Some(V::StringValueStrindex(_)) | None => Value::Empty,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Bytes(b) => f.write_str(&hex(b)),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Empty => Ok(()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

/// An event of a received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
}

/// A link of a received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLink {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: BTreeMap<String, Value>,
}

/// One received span, flattened with its resource and scope. Ids are lowercase hex.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// The resource's `service.name` (empty when it has none).
    pub service_name: String,
    /// All resource attributes.
    pub resource: BTreeMap<String, Value>,
    /// The instrumentation scope (the tracer's name) and its version.
    pub scope_name: String,
    pub scope_version: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
    pub status_code: SpanStatusCode,
    pub status_message: String,
    pub events: Vec<ReceivedEvent>,
    pub links: Vec<ReceivedLink>,
}

impl ReceivedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// The names of the span's events, in order.
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_str()).collect()
    }
}

/// The one span among `spans` with this name and kind.
pub fn one<'a>(spans: &'a [ReceivedSpan], name: &str, kind: SpanKind) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} span named {name:?} among {:?}",
        spans.iter().map(|s| (&s.name, s.kind)).collect::<Vec<_>>()
    );
    found[0]
}

/// The tree of `spans` for a snapshot (see [`crate::support::spans::render_tree`]): service,
/// name, kind, status and the attributes named in `keys` of each span.
pub fn tree(spans: &[ReceivedSpan], keys: &[&str]) -> String {
    use crate::support::spans::{line, render_tree, Node};
    let nodes: Vec<Node> = spans
        .iter()
        .map(|span| {
            let status = match span.status_code {
                SpanStatusCode::Unset => "unset".to_owned(),
                SpanStatusCode::Ok => "ok".to_owned(),
                SpanStatusCode::Error => format!("error {:?}", span.status_message),
            };
            let name = format!("[{}] {}", span.service_name, span.name);
            Node {
                id: span.span_id.clone(),
                parent: (!span.is_root()).then(|| span.parent_span_id.clone()),
                line: line(&name, &span.kind, &status, keys, |k| span.attr(k)),
            }
        })
        .collect();
    render_tree(&nodes)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn attribute_map(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), Value::from_proto(kv.value.as_ref())))
        .collect()
}

/// A resource's attributes, and its `service.name` (empty without one).
pub(super) fn resource_of(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
) -> (BTreeMap<String, Value>, String) {
    let attributes = resource
        .map(|r| attribute_map(&r.attributes))
        .unwrap_or_default();
    let service_name = attributes
        .get("service.name")
        .map(Value::to_string)
        .unwrap_or_default();
    (attributes, service_name)
}

/// Flattens `ResourceSpans` into one [`ReceivedSpan`] per span, in the order received.
pub fn flatten(resource_spans: &[ResourceSpans]) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let (resource, service_name) = resource_of(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
                .unwrap_or_default();
            for span in &ss.spans {
                let status = span.status.clone().unwrap_or_default();
                out.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    trace_state: span.trace_state.clone(),
                    flags: span.flags,
                    name: span.name.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    start_time_unix_nano: span.start_time_unix_nano,
                    end_time_unix_nano: span.end_time_unix_nano,
                    attributes: attribute_map(&span.attributes),
                    status_code: SpanStatusCode::try_from(status.code)
                        .unwrap_or(SpanStatusCode::Unset),
                    status_message: status.message,
                    events: span
                        .events
                        .iter()
                        .map(|e| ReceivedEvent {
                            name: e.name.clone(),
                            time_unix_nano: e.time_unix_nano,
                            attributes: attribute_map(&e.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|l| ReceivedLink {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                            trace_state: l.trace_state.clone(),
                            attributes: attribute_map(&l.attributes),
                        })
                        .collect(),
                });
            }
        }
    }
    out
}
