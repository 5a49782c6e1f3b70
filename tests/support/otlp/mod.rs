//! An OTLP receiver on 127.0.0.1 for the tests that check what meshtrace exports: a
//! stand-in for an OpenTelemetry Collector or Jaeger, neither of which is on the test machines.
//!
//! [`Receiver::start_grpc`] serves OTLP/gRPC (`TraceService/Export`, the generated server of
//! `opentelemetry-proto`); [`Receiver::start_http`] serves OTLP/HTTP with protobuf bodies
//! (`POST /v1/traces`, `content-type: application/x-protobuf`). Either one keeps every
//! `ResourceSpans` it accepted and the headers (gRPC: the request metadata) of every export
//! request, and reads them back flattened into [`ReceivedSpan`]s.
//!
//! For fault-tolerance tests it can be switched at run time, while an exporter is using it:
//! [`Mode::Error`] refuses every export, [`Mode::Hang`] holds every export unanswered, and
//! [`Receiver::stop`] / [`Receiver::restart`] take the collector down and bring it back on the
//! same port.
//!
//! It also takes metrics exports (`MetricsService/Export`, `POST /v1/metrics`), and reads
//! histograms back ([`Receiver::histogram`]); the fault modes answer them as they answer
//! traces. Both also serve
//! OTLP logs (`LogsService/Export`, `POST /v1/logs`; see [`logs`]), read back as
//! [`ReceivedLog`]s.
//!
//! [`service`] runs an instrumented service exporting to it, for the tests built with
//! meshtrace's `otlp` feature.

#[cfg(feature = "otlp")]
pub mod service;

mod logs;
mod metrics;
mod received;
mod receiver;
mod store;

// Re-exported so that the tests name everything from here; each test uses some of it.
#[allow(unused_imports)]
pub use self::{logs::*, metrics::*, received::*, receiver::*, store::*};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The span kind as OTLP carries it.
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
/// The span status code as OTLP carries it.
pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatusCode;

/// The path of OTLP/HTTP trace exports.
pub const TRACES_PATH: &str = "/v1/traces";

/// How often the `wait_for_*` helpers look again.
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------- modes and transports

/// How the receiver answers export requests. Switch with [`Receiver::set_mode`] at any time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store the spans and answer success.
    Healthy,
    /// Store nothing and answer an error: gRPC `UNAVAILABLE`, HTTP `503 Service Unavailable`
    /// (no `Retry-After`, so an exporter retries on its own backoff).
    Error,
    /// Accept the request and never answer it. A held request is released when the mode
    /// changes or the receiver stops; it is then answered with the `Error` answer and its
    /// spans are not stored (the exporter has given up on it long before).
    Hang,
}

/// Which OTLP transport a receiver serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC (HTTP/2, `opentelemetry.proto.collector.trace.v1.TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`), over HTTP/1.1 or HTTP/2.
    Http,
}

/// What became of one export request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled: held by [`Mode::Hang`].
    Pending,
    /// Its spans were stored and success was answered.
    Stored,
    /// Refused by [`Mode::Error`]; nothing stored.
    Refused,
    /// Held by [`Mode::Hang`], then released by a mode change or a stop; nothing stored.
    Released,
}

/// One export request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    /// The request's headers; for gRPC, its metadata (including `content-type`, `te`, ...).
    pub headers: HeaderMap,
    /// The number of spans the request carried.
    pub spans: usize,
    /// What the receiver did with it.
    pub outcome: Outcome,
}
