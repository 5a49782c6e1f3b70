//! Extract and inject of one realistic Istio request, meshtrace against the propagators
//! users combine today (opentelemetry_sdk's TraceContext + Baggage and
//! opentelemetry-propagator-b3 single+multi in a `TextMapCompositePropagator`), in one run.
//!
//! Then the formats of SPECS.md section 7, each alone: a Jaeger, an OpenTracing and an X-Ray
//! request, extracted and injected; X-Ray against opentelemetry-aws's `XrayPropagator`
//! (opentelemetry-rust has no Jaeger propagator at 0.33, nor an OpenTracing one).
//!
//! After the criterion report it prints a table of medians and ratios (baseline / ours),
//! and the extraction floor: the cost of only building the opentelemetry values that any
//! extractor must return, which bounds the ratio any implementation can reach. Then the
//! hostile requests of SPECS.md section 8 (a 1 MB baggage, 10,000 lines of a header, …),
//! each as a multiple of the limit-sized request's extract.

mod common;
use common::median_ns;

use criterion::{criterion_group, BatchSize, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use meshtrace::{Format, MeshPropagator};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_propagator_b3::{B3Encoding, Propagator as B3Propagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

/// Counts every allocation (and reallocation) the process makes, so that the report can give
/// allocations per operation: unlike times, they do not drift with the machine's load.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and allocated bytes per call of `op`, averaged over `n` calls; what `setup`
/// makes for each call (and what dropping the result frees) is not counted.
fn allocs_per_op<S, R>(
    n: u64,
    mut setup: impl FnMut() -> S,
    mut op: impl FnMut(&mut S) -> R,
) -> (f64, f64) {
    let (mut count, mut bytes) = (0, 0);
    for _ in 0..n {
        let mut input = setup();
        let (c0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        let out = black_box(op(&mut input));
        count += ALLOCS.load(Relaxed) - c0;
        bytes += BYTES.load(Relaxed) - b0;
        drop(out);
    }
    (count as f64 / n as f64, bytes as f64 / n as f64)
}

/// One request as an Istio sidecar delivers it to the application.
fn istio_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "reviews.default.svc.cluster.local:9080"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c"),
        ("x-envoy-attempt-count", "1"),
        ("x-envoy-expected-rq-timeout-ms", "15000"),
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-parentspanid", "a3ce929d0e0e4736"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "0"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (
            "baggage",
            "userId=alice,serverNode=DF%2028,isProduction=false",
        ),
        (
            "x-ot-span-context",
            "4bf92f3577b34da6;00f067aa0ba902b7;a3ce929d0e0e4736;cs",
        ),
    ] {
        h.append(k, v.parse().unwrap());
    }
    h
}

/// The pass-through values of a request, found before the floor is timed: finding them is
/// part of what an extractor does, not of building its output.
fn pass_through_values(headers: &HeaderMap) -> [HeaderValue; 2] {
    [
        headers["x-request-id"].clone(),
        headers["x-ot-span-context"].clone(),
    ]
}

/// The floor of any extractor that returns opentelemetry types: build the same Context
/// (remote span context with a two-member TraceState, three-member Baggage, one more
/// context value holding the pass-through headers) from values already parsed. No parsing,
/// no header lookup: the pass-through values are given, their names are constants (a
/// `HeaderValue` clone is a reference count), and each opentelemetry value is built the
/// cheapest way its public API allows.
fn build_output_only(empty: &Context, pass_through: &[HeaderValue; 2]) -> Context {
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    const X_OT_SPAN_CONTEXT: HeaderName = HeaderName::from_static("x-ot-span-context");
    let mut baggage = Baggage::new();
    baggage.insert_with_metadata(String::from("userId"), String::from("alice"), "");
    baggage.insert_with_metadata(String::from("serverNode"), String::from("DF 28"), "");
    baggage.insert_with_metadata(String::from("isProduction"), String::from("false"), "");
    let trace_state =
        TraceState::from_key_value([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
            .expect("valid trace state");
    let span_context = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        trace_state,
    );
    let pass_through = vec![
        (X_REQUEST_ID, pass_through[0].clone()),
        (X_OT_SPAN_CONTEXT, pass_through[1].clone()),
    ];
    empty
        .with_remote_span_context(span_context)
        .with_baggage(baggage)
        .with_value(pass_through)
}

/// The largest request the limits let through whole: 32 tracestate members in 4095 bytes,
/// 64 baggage members in 8191 bytes, every B3 header, both pass-through headers at 512 bytes.
fn limit_sized() -> HeaderMap {
    let tracestate = (0..32)
        .map(|i| format!("k{i:02}={}", "v".repeat(123)))
        .collect::<Vec<_>>()
        .join(",");
    let baggage = (0..64)
        .map(|i| format!("k{i:02}={}abcd;p=1", "a%20b".repeat(23)))
        .collect::<Vec<_>>()
        .join(",");
    let mut h = istio_request();
    h.insert("tracestate", tracestate.parse().unwrap());
    h.insert("baggage", baggage.parse().unwrap());
    h.insert("x-request-id", "r".repeat(512).parse().unwrap());
    h.insert("x-ot-span-context", "o".repeat(512).parse().unwrap());
    h
}

/// Hostile requests (SPECS.md section 8), each against the limit-sized one.
fn hostile_requests() -> Vec<(&'static str, HeaderMap)> {
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let lines = |name: &'static str, value: &dyn Fn(usize) -> String| {
        let mut h = istio_request();
        for i in 0..10_000 {
            h.append(name, value(i).parse().unwrap());
        }
        h
    };
    let mut baggage_1mb = istio_request();
    baggage_1mb.insert("baggage", members(80_000).parse().unwrap());
    let mut percent_90kb = istio_request();
    percent_90kb.insert(
        "baggage",
        format!("k={}", "%41".repeat(30_000)).parse().unwrap(),
    );
    vec![
        ("baggage_1mb", baggage_1mb),
        ("baggage_value_90kb_percent", percent_90kb),
        (
            "baggage_10k_lines",
            lines("baggage", &|i| format!("k{i}=v{i}")),
        ),
        (
            "tracestate_10k_lines",
            lines("tracestate", &|i| format!("k{i}=v{i}")),
        ),
        (
            "traceparent_10k_lines",
            lines("traceparent", &|_| {
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
            }),
        ),
        (
            "x_request_id_10k_lines",
            lines("x-request-id", &|i| format!("id-{i}")),
        ),
    ]
}

fn baseline() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
        Box::new(B3Propagator::with_encoding(
            B3Encoding::SingleAndMultiHeader,
        )),
    ])
}

/// A request of one of the formats of SPECS.md section 7, with a request's usual headers.
fn format_request(format: Format) -> HeaderMap {
    let trace: &[(&str, &str)] = match format {
        Format::Jaeger => &[
            ("uber-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"),
            ("uberctx-userid", "alice"),
            ("uberctx-servernode", "DF%2028"),
        ],
        Format::OtTrace => &[
            ("ot-tracer-traceid", "a3ce929d0e0e4736"),
            ("ot-tracer-spanid", "00f067aa0ba902b7"),
            ("ot-tracer-sampled", "true"),
            ("ot-baggage-userid", "alice"),
            ("ot-baggage-servernode", "DF 28"),
        ],
        _ => &[(
            "x-amzn-trace-id",
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
        )],
    };
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "reviews.default.svc.cluster.local:9080"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", "application/json"),
        ("x-request-id", "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c"),
    ]
    .iter()
    .chain(trace)
    {
        h.append(*k, v.parse().unwrap());
    }
    h
}

/// The formats of section 7, each through a propagator of that format alone.
fn bench_formats(c: &mut Criterion) {
    let empty = Context::new();
    for format in [Format::Jaeger, Format::OtTrace, Format::XRay] {
        let headers = format_request(format);
        let mesh = MeshPropagator::builder()
            .extract(format)
            .inject(format)
            .build()
            .unwrap();
        let mut g = c.benchmark_group(format.as_str());
        let cx = mesh.extract_from_headers_with_context(&empty, &headers);
        g.bench_function("extract_headermap", |b| {
            b.iter(|| mesh.extract_from_headers_with_context(&empty, black_box(&headers)))
        });
        g.bench_function("extract_textmap", |b| {
            b.iter(|| mesh.extract_with_context(&empty, &HeaderExtractor(black_box(&headers))))
        });
        g.bench_function("inject_headermap", |b| {
            b.iter_batched_ref(
                || HeaderMap::with_capacity(32),
                |out| mesh.inject_into_headers(black_box(&cx), out),
                BatchSize::SmallInput,
            )
        });
        if format == Format::XRay {
            let base = XrayPropagator::default();
            let base_cx = base.extract_with_context(&empty, &HeaderExtractor(&headers));
            g.bench_function("extract_baseline", |b| {
                b.iter(|| base.extract_with_context(&empty, &HeaderExtractor(black_box(&headers))))
            });
            g.bench_function("inject_baseline", |b| {
                b.iter_batched_ref(
                    || HeaderMap::with_capacity(32),
                    |out| base.inject_context(black_box(&base_cx), &mut HeaderInjector(out)),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

fn bench(c: &mut Criterion) {
    let headers = istio_request();
    let base = baseline();
    let mesh = MeshPropagator::istio();
    let empty = Context::new();

    let mut g = c.benchmark_group("extract");
    g.bench_function("baseline", |b| {
        b.iter(|| base.extract_with_context(&empty, &HeaderExtractor(black_box(&headers))))
    });
    g.bench_function("meshtrace_headermap", |b| {
        b.iter(|| mesh.extract_from_headers_with_context(&empty, black_box(&headers)))
    });
    g.bench_function("meshtrace_textmap", |b| {
        b.iter(|| mesh.extract_with_context(&empty, &HeaderExtractor(black_box(&headers))))
    });
    let pass_through = pass_through_values(&headers);
    g.bench_function("floor", |b| {
        b.iter(|| build_output_only(&empty, black_box(&pass_through)))
    });
    g.finish();

    let base_cx = base.extract_with_context(&empty, &HeaderExtractor(&headers));
    let mesh_cx = mesh.extract_from_headers_with_context(&empty, &headers);
    let mut g = c.benchmark_group("inject");
    g.bench_function("baseline", |b| {
        b.iter_batched_ref(
            || HeaderMap::with_capacity(32),
            |out| base.inject_context(black_box(&base_cx), &mut HeaderInjector(out)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("meshtrace_headermap", |b| {
        b.iter_batched_ref(
            || HeaderMap::with_capacity(32),
            |out| mesh.inject_into_headers(black_box(&mesh_cx), out),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("meshtrace_textmap", |b| {
        b.iter_batched_ref(
            || HeaderMap::with_capacity(32),
            |out| mesh.inject_context(black_box(&mesh_cx), &mut HeaderInjector(out)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let limit = limit_sized();
    let hostile = hostile_requests();
    let mut g = c.benchmark_group("hostile");
    g.bench_function("limit_sized", |b| {
        b.iter(|| mesh.extract_from_headers_with_context(&empty, black_box(&limit)))
    });
    for (name, headers) in &hostile {
        g.bench_function(*name, |b| {
            b.iter(|| mesh.extract_from_headers_with_context(&empty, black_box(headers)))
        });
    }
    g.finish();
}

/// Each hostile request's extract as a multiple of the limit-sized one's.
fn report_hostile(since: SystemTime) {
    let Some(limit) = median_ns("hostile", "limit_sized", since) else {
        return;
    };
    println!("\n| hostile request (HeaderMap extract) | median | / limit-sized ({limit:.0} ns) |");
    println!("|---|---|---|");
    for (name, _) in hostile_requests() {
        if let Some(t) = median_ns("hostile", name, since) {
            println!("| {name} | {t:.0} ns | {:.2}x |", t / limit);
        }
    }
}

fn report(since: SystemTime) {
    println!(
        "\n| operation | baseline | meshtrace HeaderMap | ratio | meshtrace TextMap | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for group in ["extract", "inject"] {
        let (Some(b), Some(h), Some(t)) = (
            median_ns(group, "baseline", since),
            median_ns(group, "meshtrace_headermap", since),
            median_ns(group, "meshtrace_textmap", since),
        ) else {
            println!("| {group} | (not measured in this run) |||||");
            continue;
        };
        println!(
            "| {group} | {:.0} ns | {:.0} ns | {:.1}x | {:.0} ns | {:.1}x |",
            b,
            h,
            b / h,
            t,
            b / t
        );
    }
    println!("\n| format alone | extract HeaderMap | extract TextMap | inject HeaderMap | baseline extract / inject |");
    println!("|---|---|---|---|---|");
    for format in [Format::Jaeger, Format::OtTrace, Format::XRay] {
        let group = format.as_str();
        let ns =
            |name| median_ns(group, name, since).map_or("-".to_owned(), |v| format!("{v:.0} ns"));
        println!(
            "| {group} | {} | {} | {} | {} / {} |",
            ns("extract_headermap"),
            ns("extract_textmap"),
            ns("inject_headermap"),
            ns("extract_baseline"),
            ns("inject_baseline"),
        );
    }
    if let (Some(b), Some(f)) = (
        median_ns("extract", "baseline", since),
        median_ns("extract", "floor", since),
    ) {
        println!(
            "\nextract floor (building the same opentelemetry Context, Baggage and TraceState \
             from parsed values, no parsing): {f:.0} ns = {:.0}% of the baseline; \
             no extractor returning these types can be more than {:.1}x faster than the baseline.",
            100.0 * f / b,
            b / f
        );
    }
}

/// The Istio request, both propagators, and what each extracted from it: what the
/// allocation count and the profiling loop measure.
struct Fixture {
    headers: HeaderMap,
    base: TextMapCompositePropagator,
    mesh: MeshPropagator,
    empty: Context,
    base_cx: Context,
    mesh_cx: Context,
    pass_through: [HeaderValue; 2],
}

impl Fixture {
    fn new() -> Fixture {
        let headers = istio_request();
        let base = baseline();
        let mesh = MeshPropagator::istio();
        let empty = Context::new();
        let base_cx = base.extract_with_context(&empty, &HeaderExtractor(&headers));
        let mesh_cx = mesh.extract_from_headers_with_context(&empty, &headers);
        let pass_through = pass_through_values(&headers);
        Fixture {
            headers,
            base,
            mesh,
            empty,
            base_cx,
            mesh_cx,
            pass_through,
        }
    }
}

/// Allocations per extract and per inject of the Istio request, counted outside criterion's
/// timing: the baseline, both meshtrace paths and the floor.
fn report_allocations() {
    const N: u64 = 1000;
    let Fixture {
        headers,
        base,
        mesh,
        empty,
        base_cx,
        mesh_cx,
        pass_through,
    } = Fixture::new();
    let none = || ();
    let extract = [
        allocs_per_op(N, none, |_| {
            base.extract_with_context(&empty, &HeaderExtractor(&headers))
        }),
        allocs_per_op(N, none, |_| {
            mesh.extract_from_headers_with_context(&empty, &headers)
        }),
        allocs_per_op(N, none, |_| {
            mesh.extract_with_context(&empty, &HeaderExtractor(&headers))
        }),
        allocs_per_op(N, none, |_| build_output_only(&empty, &pass_through)),
    ];
    let out = || HeaderMap::with_capacity(32);
    let inject = [
        allocs_per_op(N, out, |h| {
            base.inject_context(&base_cx, &mut HeaderInjector(h))
        }),
        allocs_per_op(N, out, |h| mesh.inject_into_headers(&mesh_cx, h)),
        allocs_per_op(N, out, |h| {
            mesh.inject_context(&mesh_cx, &mut HeaderInjector(h))
        }),
    ];
    println!("\n| allocations per call (bytes) | baseline | meshtrace HeaderMap | meshtrace TextMap | floor |");
    println!("|---|---|---|---|---|");
    let cell = |(n, b): (f64, f64)| format!("{n:.1} ({b:.0} B)");
    println!(
        "| extract | {} | {} | {} | {} |",
        cell(extract[0]),
        cell(extract[1]),
        cell(extract[2]),
        cell(extract[3])
    );
    println!(
        "| inject | {} | {} | {} | - |",
        cell(inject[0]),
        cell(inject[1]),
        cell(inject[2])
    );
}

/// `PROPAGATION_PROFILE=allocations` prints only the allocation table.
/// `PROPAGATION_PROFILE=<group>/<name> [PROPAGATION_PROFILE_N=n]`: runs one operation of the
/// Istio request `n` times (default 100,000) with no criterion around it, for
/// `valgrind --tool=callgrind` (instruction counts stay stable on a loaded machine).
fn profile(op: &str) {
    let n: u64 = std::env::var("PROPAGATION_PROFILE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let Fixture {
        headers,
        base,
        mesh,
        empty,
        base_cx,
        mesh_cx,
        pass_through,
    } = Fixture::new();
    let headers = black_box(&headers);
    for _ in 0..n {
        match op {
            "extract/baseline" => {
                black_box(base.extract_with_context(&empty, &HeaderExtractor(headers)));
            }
            "extract/meshtrace_headermap" => {
                black_box(mesh.extract_from_headers_with_context(&empty, headers));
            }
            "extract/meshtrace_textmap" => {
                black_box(mesh.extract_with_context(&empty, &HeaderExtractor(headers)));
            }
            "extract/floor" => {
                black_box(build_output_only(&empty, black_box(&pass_through)));
            }
            "inject/baseline" => {
                let mut out = HeaderMap::with_capacity(32);
                base.inject_context(&base_cx, &mut HeaderInjector(&mut out));
                black_box(out);
            }
            "inject/meshtrace_headermap" => {
                let mut out = HeaderMap::with_capacity(32);
                mesh.inject_into_headers(&mesh_cx, &mut out);
                black_box(out);
            }
            "inject/meshtrace_textmap" => {
                let mut out = HeaderMap::with_capacity(32);
                mesh.inject_context(&mesh_cx, &mut HeaderInjector(&mut out));
                black_box(out);
            }
            other => panic!("unknown operation {other}"),
        }
    }
}

criterion_group!(benches, bench, bench_formats);

fn main() {
    match std::env::var("PROPAGATION_PROFILE").as_deref() {
        Ok("allocations") => return report_allocations(),
        Ok(op) => return profile(op),
        Err(_) => {}
    }
    let since = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    report(since);
    report_allocations();
    report_hostile(since);
}
