//! Interop with the official OpenTelemetry Python propagators of SPECS.md section 7
//! (`opentelemetry-propagator-jaeger`, `-ot-trace`, `-aws-xray`, pinned in
//! `tests/peers/python/requirements.txt`): random contexts they write are read back by us,
//! and the ones we write are read back by them.
//!
//! The peer runs under the Python named by `MESHTRACE_PYTHON` (`.ci/run` makes a venv and
//! sets it). Without it, or without the modules, each test says why in one line and passes,
//! so the README's test command needs only Rust; with `MESHTRACE_REQUIRE_PEERS=1` (set by
//! `.ci/run`) a missing peer fails instead.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use meshtrace::{Format, MeshPropagator};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use support::peers;

/// Random contexts per format and direction.
const N: usize = 200;
const FORMATS: [(&str, Format); 3] = [
    ("jaeger", Format::Jaeger),
    ("ottrace", Format::OtTrace),
    ("xray", Format::XRay),
];
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python/peer.py");

/// The peer's Python, or `None` (after saying why) when the test is to be skipped.
fn peer_python(test: &str) -> Option<String> {
    let Ok(python) = std::env::var("MESHTRACE_PYTHON") else {
        return peers::skip(test, "MESHTRACE_PYTHON is not set (.ci/run sets it)");
    };
    let probe = Command::new(&python)
        .args(["-c", "import opentelemetry.propagators.jaeger, opentelemetry.propagators.ot_trace, opentelemetry.propagators.aws"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => peers::skip(
            test,
            format!(
                "{python} lacks the propagators: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        ),
        Err(e) => peers::skip(test, format!("cannot run {python}: {e}")),
    }
}

fn run_peer(python: &str, args: &[&str], stdin: &[u8]) -> Value {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the peer starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("the peer reads its input");
    let out = child.wait_with_output().expect("the peer ends");
    assert!(
        out.status.success(),
        "peer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the peer prints JSON")
}

fn propagator(format: Format) -> MeshPropagator {
    MeshPropagator::builder()
        .extract(format)
        .inject(format)
        .build()
        .expect("a valid configuration")
}

fn format_of(name: &str) -> Format {
    FORMATS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a known format")
}

/// What a context is compared by: ids, the sampled flag, baggage.
#[derive(Debug, PartialEq)]
struct Seen {
    trace_id: String,
    span_id: String,
    sampled: bool,
    baggage: BTreeMap<String, String>,
}

fn seen_in(cx: &Context) -> Option<Seen> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| Seen {
        trace_id: format!("{}", sc.trace_id()),
        span_id: format!("{}", sc.span_id()),
        sampled: sc.is_sampled(),
        baggage: cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect(),
    })
}

fn seen_in_json(v: &Value) -> Seen {
    Seen {
        trace_id: v["trace_id"].as_str().expect("trace_id").to_owned(),
        span_id: v["span_id"].as_str().expect("span_id").to_owned(),
        sampled: v["sampled"].as_bool().expect("sampled"),
        baggage: v["baggage"]
            .as_object()
            .expect("baggage")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_owned()))
            .collect(),
    }
}

/// OpenTracing carries the low 64 bits of the trace id.
fn expected_trace_id(format: Format, trace_id: &str) -> String {
    match format {
        Format::OtTrace => format!("{:0>32}", &trace_id[16..]),
        _ => trace_id.to_owned(),
    }
}

#[test]
fn they_write_we_read() {
    let Some(python) = peer_python("they_write_we_read") else {
        return;
    };
    let written = run_peer(&python, &["write", &N.to_string(), "10"], b"");
    let items = written.as_array().expect("a list");
    assert_eq!(items.len(), N * FORMATS.len());
    let mut failures = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let format = format_of(item["format"].as_str().expect("format"));
        let mut want = seen_in_json(item);
        want.trace_id = expected_trace_id(format, &want.trace_id);
        let mut map = HeaderMap::new();
        for (name, value) in item["headers"].as_object().expect("headers") {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value.as_str().expect("a string")).expect("a value"),
            );
        }
        let p = propagator(format);
        let fast = seen_in(&p.extract_from_headers_with_context(&Context::new(), &map));
        let generic = seen_in(&p.extract_with_context(&Context::new(), &HeaderExtractor(&map)));
        for (path, got) in [("HeaderMap", fast), ("Extractor", generic)] {
            if got.as_ref() != Some(&want) {
                failures.push(format!(
                    "[{i}] {path} {map:?}:\n  want {want:?}\n  got  {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        items.len() * 2,
        failures.join("\n")
    );
    println!(
        "read {} contexts written by the Python propagators, on both paths",
        items.len()
    );
}

/// xorshift64*: reproducible random contexts without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, chars: &[char]) -> char {
        chars[self.below(chars.len())]
    }

    fn text(&mut self, chars: &[char], len: usize) -> String {
        (0..len).map(|_| self.pick(chars)).collect()
    }
}

const KEY_START: &str = "abcdefghijklmnopqrstuvwxyz";
const KEY_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789-_";
const ASCII_VALUE: &str = "abcXYZ019 !#$&'()*+-./:<=>?@[]^_`{|}~%,;";
const ANY_VALUE: &str = "abcXYZ019 !#$&'()*+-./:<=>?@[]^_`{|}~%,;éü☃\"\\";

fn random_context(rng: &mut Rng, format: Format) -> (Context, Seen) {
    let trace_id = (u128::from(rng.next()) << 64 | u128::from(rng.next())) | 1;
    let span_id = rng.next() | 1;
    let sampled = rng.next() % 2 == 0;
    let sc = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::NONE,
    );
    let mut baggage = BTreeMap::new();
    if format != Format::XRay {
        let chars: Vec<char> = match format {
            Format::Jaeger => ANY_VALUE.chars().collect(),
            _ => ASCII_VALUE.chars().collect(),
        };
        let (start, rest): (Vec<char>, Vec<char>) =
            (KEY_START.chars().collect(), KEY_CHARS.chars().collect());
        for _ in 0..rng.below(5) {
            let first = rng.pick(&start);
            let len = rng.below(9);
            let key = format!("{first}{}", rng.text(&rest, len));
            let len = 1 + rng.below(12);
            let value = rng.text(&chars, len).trim().to_owned();
            baggage.insert(key, if value.is_empty() { "v".into() } else { value });
        }
    }
    let cx = Context::new().with_remote_span_context(sc).with_baggage(
        baggage
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let want = Seen {
        trace_id: expected_trace_id(format, &format!("{trace_id:032x}")),
        span_id: format!("{span_id:016x}"),
        sampled,
        baggage,
    };
    (cx, want)
}

#[test]
fn we_write_they_read() {
    let Some(python) = peer_python("we_write_they_read") else {
        return;
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut items = Vec::new();
    let mut wants = Vec::new();
    for (name, format) in FORMATS {
        let p = propagator(format);
        for i in 0..N {
            let (cx, want) = random_context(&mut rng, format);
            // Half through the HeaderMap path, half through the Injector path.
            let headers: BTreeMap<String, String> = if i % 2 == 0 {
                let mut map = HeaderMap::new();
                p.inject_into_headers(&cx, &mut map);
                map.iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().expect("ASCII").to_owned()))
                    .collect()
            } else {
                let mut map = HeaderMap::new();
                p.inject_context(&cx, &mut HeaderInjector(&mut map));
                let mut plain = HashMap::new();
                p.inject_context(&cx, &mut plain);
                assert_eq!(plain.len(), map.len(), "both carriers get the same headers");
                plain.into_iter().collect()
            };
            items.push(json!({ "format": name, "headers": headers }));
            wants.push(want);
        }
    }
    let input = serde_json::to_vec(&items).expect("JSON");
    let read = run_peer(&python, &["read"], &input);
    let read = read.as_array().expect("a list");
    assert_eq!(read.len(), items.len());
    let mut failures = Vec::new();
    for (i, ((got, want), item)) in read.iter().zip(&wants).zip(&items).enumerate() {
        let got = (got["valid"] == true).then(|| seen_in_json(got));
        if got.as_ref() != Some(want) {
            failures.push(format!(
                "[{i}] {}:\n  want {want:?}\n  got  {got:?}",
                item["headers"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        items.len(),
        failures.join("\n")
    );
    println!(
        "the Python propagators read {} contexts we wrote",
        items.len()
    );
}
