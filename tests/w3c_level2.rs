//! W3C Trace Context Level 2 through the layers, as a service runs them (server layer in,
//! reqwest middleware out, the SDK making the spans with `MeshSampler`): the random flag
//! survives an unsampled request, whose SDK spans carry no flags, and a `tracestate` with
//! Level 2 keys or duplicates is inherited. The end-to-end form of the W3C test harness's
//! level-2 cases (docs/propagation.md, "W3C test harness").
#![cfg(all(feature = "axum", feature = "reqwest", feature = "sdk"))]

mod support;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use meshtrace::server::MeshServerLayer;
use support::headers::{header, span_id_of, trace_id_of};
use support::servers::{seen_for, serve, start_back, Caller};
use support::telemetry;

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

/// Calls the back service with the tag of the request's path.
async fn forward(State(c): State<Caller>, Path(tag): Path<String>) -> (StatusCode, String) {
    match c.get(&tag).send().await {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// A front service behind `MeshServerLayer` that forwards to a recording back service;
/// returns the front's address and what the back service saw.
async fn start() -> (std::net::SocketAddr, support::servers::Seen) {
    telemetry::exporter();
    let (back, seen) = start_back().await;
    let app = Router::new()
        .route("/forward/{tag}", get(forward))
        .with_state(Caller::new(back))
        .layer(MeshServerLayer::new());
    (serve(app).await, seen)
}

/// (incoming flags, outgoing flags): the random flag re-sent, sampled or not.
#[rustfmt::skip]
const FLAGS: &[(&str, &str)] = &[
    ("02", "02"),
    ("03", "03"),
    ("00", "00"),
    ("01", "01"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_flag_survives_unsampled_sdk_spans() {
    let (front, seen) = start().await;
    let client = reqwest::Client::new();
    for (i, (flags_in, flags_out)) in FLAGS.iter().enumerate() {
        let tag = format!("flags-{i}");
        let res = client
            .get(format!("http://{front}/forward/{tag}"))
            .header("traceparent", format!("00-{TRACE}-{PARENT}-{flags_in}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "[{i}]");
        let h = seen_for(&seen, &tag);
        let tp = header(&h, "traceparent");
        assert_eq!(trace_id_of(tp).to_string(), TRACE, "[{i}] {tp}");
        assert_ne!(span_id_of(tp).to_string(), PARENT, "[{i}] {tp}");
        assert!(
            tp.ends_with(&format!("-{flags_out}")),
            "[{i}] -{flags_in} went out as {tp}"
        );
    }
}

/// (incoming tracestate lines, outgoing tracestate)
#[rustfmt::skip]
const TRACESTATE: &[(&[&str], &str)] = &[
    (&["foo@@bar=1,bar=2"],             "foo@@bar=1,bar=2"),
    (&["foo@bar@baz=1", " bar=2 ,"],    "foo@bar@baz=1,bar=2"),
    (&["foo=1,foo=2"],                  "foo=1"),
    (&["foo=1", "foo=1"],               "foo=1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level2_tracestate_inherited_through_the_layers() {
    let (front, seen) = start().await;
    let client = reqwest::Client::new();
    for (i, (lines, want)) in TRACESTATE.iter().enumerate() {
        for flags in ["00", "01"] {
            let tag = format!("ts-{i}-{flags}");
            let mut req = client
                .get(format!("http://{front}/forward/{tag}"))
                .header("traceparent", format!("00-{TRACE}-{PARENT}-{flags}"));
            for line in lines.iter() {
                req = req.header("tracestate", *line);
            }
            assert_eq!(req.send().await.unwrap().status(), 200, "[{i}]");
            let h = seen_for(&seen, &tag);
            assert_eq!(trace_id_of(header(&h, "traceparent")).to_string(), TRACE);
            assert_eq!(header(&h, "tracestate"), *want, "[{i}] -{flags} {lines:?}");
        }
    }
}
