//! What the test files share. Each test file declares `mod support;` once and uses what it
//! needs from here:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`headers`] | trace header names, header maps from table rows, ids a `traceparent` names |
//! | [`tables`] | the failure report of table tests, rows shown in a failure message |
//! | [`propagation`] | extracted baggage and errors in comparable form, propagation generators |
//! | [`telemetry`] | the global subscriber, the in-memory exporter, runtimes with a dispatch |
//! | [`metrics`] | a meter provider over the in-memory metric exporter, histograms read back |
//! | [`spans`] | spans of a trace, one span by name, attributes, chains, the tree for snapshots |
//! | [`servers`] | serving on 127.0.0.1, the traced reqwest client, a recording back service |
//! | [`relay`] | the gRPC relay service `meshtrace.test.Relay` and its clients |
//! | [`mesh`] | front (axum) → relay (tonic) → back (axum) on 127.0.0.1 |
//! | [`otlp`] | an OTLP receiver (a collector stand-in) and services exporting to it |
//! | [`logs`] | log lines captured from `TelemetryBuilder::log_writer`, and their ids |
//! | [`sidecar`] | a stand-in for an Istio sidecar (Envoy) |
//! | [`demo`] | the `mesh_demo` example, run as a child process |
//! | [`peers`] | programs we did not write (other languages' SDKs, Jaeger): found, or skipped |
//! | [`jaeger`] | a real Jaeger on 127.0.0.1, and traces read back from its query API |
//! | [`go_peer`] | the Go peers of `tests/peers/go` (otelgrpc, hand-forwarding) |
//!
//! Each test file is its own crate and uses only some of these helpers, so unused ones are
//! not an error here.
#![allow(dead_code)]

pub mod headers;
pub mod propagation;
pub mod tables;

pub mod metrics;
pub mod spans;
pub mod telemetry;

#[cfg(all(feature = "axum", feature = "reqwest"))]
pub mod servers;

#[cfg(all(feature = "axum", feature = "reqwest", feature = "tonic"))]
pub mod relay;

#[cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]
pub mod mesh;

pub mod otlp;
pub mod sidecar;

#[cfg(feature = "otlp")]
pub mod logs;

pub mod demo;
pub mod peers;

pub mod go_peer;
pub mod jaeger;
