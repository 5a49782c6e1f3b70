//! Request metrics: the semantic conventions' request-duration histograms, recorded by the
//! server and client layers for every request their filter lets through, sampled or not.
//!
//! - HTTP: `http.server.request.duration` and `http.client.request.duration` (stable).
//! - gRPC: `rpc.server.call.duration` and `rpc.client.call.duration`, the current names
//!   (release candidate, seconds), with `rpc.system.name`, a fully qualified `rpc.method` and
//!   `rpc.response.status_code` as a name. The spans keep the older names (see
//!   [`super::span::record_rpc`]); metrics have no older dashboards of ours to keep working.
//!
//! Besides the conventions' attributes, a server records Envoy's attempt number
//! (`meshtrace.envoy.attempt_count`, from `x-envoy-attempt-count`), so that the mesh's
//! retries show in the application's metrics, and a client who answered
//! (`meshtrace.reply.origin`: `upstream`, `envoy`, `unknown`).
//!
//! A request's attributes live on the stack; names that are not static (routes, hosts, gRPC
//! methods) are kept once per process in a bounded table ([`Names`]), so that recording
//! allocates nothing of ours.

use super::grpc::{GrpcCode, Side};
use http::{Method, StatusCode, Version};
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::{attribute as semconv, metric as names};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// The bucket boundaries, in seconds, the semantic conventions advise for request durations.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Envoy's attempt number of the request a server answered (`x-envoy-attempt-count`).
pub(crate) const ATTEMPT_COUNT: &str = "meshtrace.envoy.attempt_count";
/// Who answered a call: `upstream`, `envoy` or `unknown`.
pub(crate) const REPLY_ORIGIN: &str = "meshtrace.reply.origin";

/// Attempt numbers above this are not recorded: each value is one more series per route and
/// status, and Envoy's retries stop long before (Istio's default is 2).
const MAX_ATTEMPT: i64 = 16;

/// Distinct routes, hosts and gRPC methods one [`Metrics`] keeps; more are recorded as
/// `_OTHER`, so that a caller making up paths cannot grow the series without bound.
const MAX_NAMES: usize = 512;

/// What stands for a name beyond [`MAX_NAMES`], or for a gRPC method the server does not
/// have (the semantic conventions' `_OTHER`).
const OTHER: &str = "_OTHER";

/// The histograms of one side, and where they come from.
pub(crate) struct Metrics {
    side: Side,
    /// `None`: the global meter provider's, taken at the first request.
    meter: Option<Meter>,
    instruments: OnceLock<Instruments>,
    names: Names,
}

struct Instruments {
    http: Histogram<f64>,
    rpc: Histogram<f64>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("side", &self.side)
            .field(
                "meter",
                &match self.meter {
                    Some(_) => "given",
                    None => "global",
                },
            )
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `side` from `meter`.
    pub(crate) fn with_meter(side: Side, meter: Meter) -> Arc<Metrics> {
        Arc::new(Metrics::new(side, Some(meter)))
    }

    /// The metrics of `side` from the global meter provider, shared by every layer that was
    /// given no meter of its own (one set of instruments, one table of names).
    pub(crate) fn global(side: Side) -> Arc<Metrics> {
        static SERVER: OnceLock<Arc<Metrics>> = OnceLock::new();
        static CLIENT: OnceLock<Arc<Metrics>> = OnceLock::new();
        let cell = match side {
            Side::Server => &SERVER,
            Side::Client => &CLIENT,
        };
        cell.get_or_init(|| Arc::new(Metrics::new(side, None)))
            .clone()
    }

    fn new(side: Side, meter: Option<Meter>) -> Metrics {
        Metrics {
            side,
            meter,
            instruments: OnceLock::new(),
            names: Names::default(),
        }
    }

    fn instruments(&self) -> &Instruments {
        self.instruments.get_or_init(|| {
            let meter = self.meter.clone().unwrap_or_else(|| {
                opentelemetry::global::meter_with_scope(
                    InstrumentationScope::builder("meshtrace")
                        .with_version(env!("CARGO_PKG_VERSION"))
                        .build(),
                )
            });
            let (http, rpc, http_about, rpc_about) = match self.side {
                Side::Server => (
                    names::HTTP_SERVER_REQUEST_DURATION,
                    names::RPC_SERVER_CALL_DURATION,
                    "Duration of HTTP server requests.",
                    "Measures the duration of an incoming Remote Procedure Call (RPC).",
                ),
                Side::Client => (
                    names::HTTP_CLIENT_REQUEST_DURATION,
                    names::RPC_CLIENT_CALL_DURATION,
                    "Duration of HTTP client requests.",
                    "Measures the duration of an outgoing Remote Procedure Call (RPC).",
                ),
            };
            let histogram = |name: &'static str, about: &'static str| {
                meter
                    .f64_histogram(name)
                    .with_unit("s")
                    .with_description(about)
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build()
            };
            Instruments {
                http: histogram(http, http_about),
                rpc: histogram(rpc, rpc_about),
            }
        })
    }

    /// A request starting now: an HTTP request or call with this method.
    pub(crate) fn http(self: &Arc<Self>, method: &Method) -> Measurement {
        self.start(Kind::Http {
            method: super::span::known_method(method).unwrap_or(OTHER),
            route: None,
            scheme: None,
            version: None,
        })
    }

    /// A gRPC call this process makes, starting now.
    #[cfg(any(feature = "reqwest", feature = "tonic"))]
    pub(crate) fn grpc_client(self: &Arc<Self>, service: &str, method: &str) -> Measurement {
        self.start(Kind::Grpc {
            method: Some(self.names.get_joined(service, method)),
            path: None,
        })
    }

    /// A gRPC call this process serves, starting now. The method's name comes from the
    /// caller: it is kept only once the server has answered something other than
    /// UNIMPLEMENTED (until then the path is held, a reference count, not a copy).
    pub(crate) fn grpc_server(
        self: &Arc<Self>,
        service: &str,
        method: &str,
        uri: &http::Uri,
    ) -> Measurement {
        let known = self.names.lookup_joined(service, method);
        let path = match known {
            Some(_) => None,
            None => uri.path_and_query().cloned(),
        };
        self.start(Kind::Grpc {
            method: known,
            path,
        })
    }

    fn start(self: &Arc<Self>, kind: Kind) -> Measurement {
        Measurement {
            metrics: self.clone(),
            start: Instant::now(),
            kind,
            server: None,
            attempt: None,
            http_status: None,
            grpc_status: None,
            error: None,
            origin: None,
        }
    }
}

/// What a request is, as its metric's attributes say it.
enum Kind {
    Http {
        method: &'static str,
        route: Option<StringValue>,
        scheme: Option<&'static str>,
        version: Option<&'static str>,
    },
    Grpc {
        /// `service/method`, when known at the start.
        method: Option<StringValue>,
        /// A server's request path, when its method's name is not kept yet.
        path: Option<http::uri::PathAndQuery>,
    },
}

/// One request's measurement: recorded once, when it is dropped (at the end of the response
/// stream, at a failure, or when the request is abandoned), with what it learnt by then.
pub(crate) struct Measurement {
    metrics: Arc<Metrics>,
    start: Instant,
    kind: Kind,
    server: Option<(StringValue, Option<u16>)>,
    attempt: Option<i64>,
    http_status: Option<StatusCode>,
    grpc_status: Option<GrpcCode>,
    error: Option<&'static str>,
    origin: Option<&'static str>,
}

impl fmt::Debug for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Measurement")
            .field("side", &self.metrics.side)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Measurement {
    /// `http.route` (servers; a template such as `/orders/{id}`).
    pub(crate) fn route(&mut self, route: &str) {
        if let Kind::Http { route: slot, .. } = &mut self.kind {
            *slot = Some(self.metrics.names.get(route));
        }
    }

    /// `url.scheme` (servers).
    pub(crate) fn scheme(&mut self, scheme: Option<&str>) {
        if let Kind::Http { scheme: slot, .. } = &mut self.kind {
            *slot = Some(match scheme {
                Some("https") => "https",
                _ => "http",
            });
        }
    }

    /// `network.protocol.version`.
    pub(crate) fn version(&mut self, version: Version) {
        if let Kind::Http { version: slot, .. } = &mut self.kind {
            *slot = super::span::protocol_version(version);
        }
    }

    /// `server.address` and `server.port` (clients).
    #[cfg(any(feature = "reqwest", feature = "tonic"))]
    pub(crate) fn server(&mut self, host: &str, port: Option<u16>) {
        self.server = Some((self.metrics.names.get(host), port));
    }

    /// Envoy's attempt number, from `x-envoy-attempt-count` (servers).
    pub(crate) fn attempt(&mut self, headers: &http::HeaderMap) {
        self.attempt = headers
            .get(ATTEMPT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| (1..=MAX_ATTEMPT).contains(n));
    }

    /// The response's HTTP status.
    pub(crate) fn http_status(&mut self, status: StatusCode) {
        self.http_status = Some(status);
    }

    /// The call's gRPC status.
    pub(crate) fn grpc_status(&mut self, code: GrpcCode) {
        self.grpc_status = Some(code);
    }

    /// A failure without a status (`error.type`, low-cardinality).
    pub(crate) fn error(&mut self, error_type: &'static str) {
        self.error = Some(error_type);
    }

    /// Who answered (clients).
    pub(crate) fn origin(&mut self, origin: &crate::mesh::envoy::Origin) {
        self.origin = Some(origin.as_str());
    }

    /// `error.type`: the failure given, else the status when it is a failure for this side.
    fn error_type(&self) -> Option<Value> {
        if let Some(error) = self.error {
            return Some(error.into());
        }
        let side = self.metrics.side;
        if let Some(code) = self.grpc_status {
            return code.is_error(side).then(|| code.name().into());
        }
        let status = self.http_status?;
        let failed = match side {
            Side::Server => status.is_server_error(),
            Side::Client => status.is_client_error() || status.is_server_error(),
        };
        failed.then(|| status_text(status).into())
    }

    /// A served method's name at the end of the call: `_OTHER` when the server answered
    /// UNIMPLEMENTED (it has no such method), else the path's `service/method`, kept.
    fn server_method(&self, path: &Option<http::uri::PathAndQuery>) -> Option<StringValue> {
        let (service, method) = super::grpc::service_and_method(path.as_ref()?.path())?;
        Some(match self.grpc_status {
            Some(GrpcCode::Unimplemented) => OTHER.into(),
            _ => self.metrics.names.get_joined(service, method),
        })
    }

    fn record(&self) {
        let seconds = self.start.elapsed().as_secs_f64();
        let instruments = self.metrics.instruments();
        let mut attrs = Attributes::new();
        let histogram = match &self.kind {
            Kind::Http {
                method,
                route,
                scheme,
                version,
            } => {
                attrs.push(semconv::HTTP_REQUEST_METHOD, *method);
                if let Some(route) = route {
                    attrs.push(semconv::HTTP_ROUTE, route.clone());
                }
                if let Some(scheme) = scheme {
                    attrs.push(semconv::URL_SCHEME, *scheme);
                }
                if let Some(version) = version {
                    attrs.push(semconv::NETWORK_PROTOCOL_VERSION, *version);
                }
                if let Some(status) = self.http_status {
                    attrs.push(
                        semconv::HTTP_RESPONSE_STATUS_CODE,
                        i64::from(status.as_u16()),
                    );
                }
                &instruments.http
            }
            Kind::Grpc { method, path } => {
                attrs.push(semconv::RPC_SYSTEM_NAME, "grpc");
                if let Some(method) = method.clone().or_else(|| self.server_method(path)) {
                    attrs.push(semconv::RPC_METHOD, method);
                }
                if let Some(code) = self.grpc_status {
                    attrs.push(semconv::RPC_RESPONSE_STATUS_CODE, code.name());
                }
                &instruments.rpc
            }
        };
        if let Some(error) = self.error_type() {
            attrs.push(semconv::ERROR_TYPE, error);
        }
        if let Some((host, port)) = &self.server {
            attrs.push(semconv::SERVER_ADDRESS, host.clone());
            if let Some(port) = port {
                attrs.push(semconv::SERVER_PORT, i64::from(*port));
            }
        }
        if let Some(attempt) = self.attempt {
            attrs.push(ATTEMPT_COUNT, attempt);
        }
        if let Some(origin) = self.origin {
            attrs.push(REPLY_ORIGIN, origin);
        }
        histogram.record(seconds, attrs.as_slice());
    }
}

impl Drop for Measurement {
    fn drop(&mut self) {
        if self.http_status.is_none() && self.grpc_status.is_none() && self.error.is_none() {
            // Dropped before any answer: the caller went away, or the call was dropped.
            self.error = Some("cancelled");
        }
        self.record();
    }
}

const ATTEMPT_HEADER: http::HeaderName = http::HeaderName::from_static("x-envoy-attempt-count");

/// A request's attributes, on the stack: at most the eight any request has.
struct Attributes {
    list: [KeyValue; 8],
    len: usize,
}

impl Attributes {
    fn new() -> Self {
        Attributes {
            list: std::array::from_fn(|_| KeyValue::new("", false)),
            len: 0,
        }
    }

    fn push(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = KeyValue::new(key, value);
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[KeyValue] {
        &self.list[..self.len]
    }
}

/// A status code's three digits, kept once per process (`error.type` of a failed request).
fn status_text(status: StatusCode) -> StringValue {
    static STATUSES: OnceLock<Names> = OnceLock::new();
    STATUSES.get_or_init(Names::default).get(status.as_str())
}

/// Names kept once, shared by every measurement: a read lock and a hash on the way, no
/// allocation once a name is in. At most [`MAX_NAMES`]; later ones are `_OTHER`.
#[derive(Default)]
struct Names(RwLock<HashMap<Box<str>, StringValue>>);

impl Names {
    /// The kept name, if it is.
    fn lookup(&self, name: &str) -> Option<StringValue> {
        self.read().get(name).cloned()
    }

    fn get(&self, name: &str) -> StringValue {
        if let Some(value) = self.lookup(name) {
            return value;
        }
        let mut names = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = names.get(name) {
            return value.clone();
        }
        if names.len() >= MAX_NAMES {
            return OTHER.into();
        }
        let value = StringValue::from(Arc::<str>::from(name));
        names.insert(name.into(), value.clone());
        value
    }

    /// `service/method`, kept.
    fn get_joined(&self, service: &str, method: &str) -> StringValue {
        with_joined(service, method, |name| self.get(name))
    }

    /// `service/method`, if kept.
    fn lookup_joined(&self, service: &str, method: &str) -> Option<StringValue> {
        with_joined(service, method, |name| self.lookup(name))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, StringValue>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// `f` of `service/method`, joined on the stack when short (no allocation for a name that
/// is already kept).
fn with_joined<R>(service: &str, method: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 128];
    let len = service.len() + 1 + method.len();
    match buf.get_mut(..len) {
        Some(joined) => {
            joined[..service.len()].copy_from_slice(service.as_bytes());
            joined[service.len()] = b'/';
            joined[service.len() + 1..].copy_from_slice(method.as_bytes());
            // Two strings and an ASCII byte are UTF-8.
            f(std::str::from_utf8(joined).unwrap_or(OTHER))
        }
        None => f(&format!("{service}/{method}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_once_and_bounded() {
        let names = Names::default();
        let a = names.get("/orders/{id}");
        assert_eq!(a.as_str(), "/orders/{id}");
        assert_eq!(names.get("/orders/{id}").as_str(), "/orders/{id}");
        assert_eq!(names.read().len(), 1);
        for i in 0..MAX_NAMES + 10 {
            names.get(&format!("/r{i}"));
        }
        assert_eq!(names.read().len(), MAX_NAMES);
        assert_eq!(names.get("/one-more").as_str(), OTHER);
        // Kept names stay.
        assert_eq!(names.get("/orders/{id}").as_str(), "/orders/{id}");
    }

    #[test]
    fn joined_names() {
        let names = Names::default();
        assert_eq!(
            names.get_joined("helloworld.Greeter", "SayHello").as_str(),
            "helloworld.Greeter/SayHello"
        );
        let long = "s".repeat(200);
        assert_eq!(names.get_joined(&long, "M").as_str(), format!("{long}/M"));
    }

    #[test]
    fn attributes_hold_what_a_request_has() {
        let mut attrs = Attributes::new();
        for _ in 0..10 {
            attrs.push("k", 1_i64);
        }
        assert_eq!(attrs.as_slice().len(), 8);
    }
}
