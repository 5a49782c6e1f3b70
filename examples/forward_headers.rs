//! What meshtrace does to one request: the headers an Envoy sidecar delivers, what the
//! propagator understood, and the headers the next call carries.
//!
//! `cargo run --example forward_headers`

use http::HeaderMap;
use meshtrace::{MeshContextExt, MeshPropagator};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;

fn main() {
    let mut incoming = HeaderMap::new();
    for (name, value) in [
        ("x-request-id", "6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c"),
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-parentspanid", "b7ad6b7169203331"),
        ("x-b3-sampled", "1"),
        (
            "x-ot-span-context",
            "a3ce929d0e0e4736;00f067aa0ba902b7;b7ad6b7169203331;cs",
        ),
        ("baggage", "tenant=acme,region=eu%20west"),
        ("x-envoy-attempt-count", "1"),
    ] {
        incoming.append(name, value.parse().expect("static header value"));
    }
    println!("incoming (as Envoy delivers it):");
    for (name, value) in &incoming {
        println!("  {name}: {}", value.to_str().unwrap_or("<binary>"));
    }

    let propagator = MeshPropagator::istio();
    let cx = propagator.extract_from_headers(&incoming);
    let sc = cx.span().span_context().clone();
    let mesh = cx.mesh().expect("the request carried mesh headers");
    println!("\nunderstood:");
    println!(
        "  trace id    {} (from {:?})",
        sc.trace_id(),
        mesh.remote().map(|r| r.format)
    );
    println!(
        "  parent span {}  sampled={}",
        sc.span_id(),
        sc.is_sampled()
    );
    println!("  request id  {:?}", mesh.request_id());
    for (key, (value, _)) in cx.baggage() {
        println!("  baggage     {key} = {:?}", value.as_str());
    }

    let mut outgoing = HeaderMap::new();
    propagator.inject_into_headers(&cx, &mut outgoing);
    println!("\noutgoing (on the next call; a client span would replace the span id):");
    for (name, value) in &outgoing {
        println!("  {name}: {}", value.to_str().unwrap_or("<binary>"));
    }
}
