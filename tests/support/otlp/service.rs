//! An instrumented service exporting to the receiver: telemetry from
//! `TelemetryBuilder::from_env_source` over an explicit [`Env`] (never the process
//! environment: the tests run in parallel), used without installing it. The service runs on a
//! runtime whose threads take `Telemetry::dispatch` as their default, and
//! [`Service::block_on`] gives the calling thread the same default.
//!
//! The gRPC exporter's channel lives on the runtime it is built in, so the telemetry is built
//! inside a small background runtime of the service's own that outlives the exporter (the
//! service runtime cannot be it: its threads need the dispatch before it exists).
//!
//! Nothing here serves HTTP: each test file brings its own app (front and back services) as
//! the future [`Service::launch`] runs on the service's runtime, and keeps what it returns in
//! [`Service::app`].

use super::{Receiver, Transport};
use crate::support::telemetry::runtime;
use meshtrace::export::{TelemetryBuilder, TelemetryGuard};
use meshtrace::MeshPropagator;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tracing::Dispatch;

/// A service's environment variables, as a deployment would set them.
pub type Env = BTreeMap<&'static str, String>;

/// The environment of service `name` exporting over `transport` to `endpoint`
/// (`http://127.0.0.1:PORT`; for OTLP/HTTP the base URL, to which the exporter appends
/// `/v1/traces`).
pub fn env(name: &str, transport: Transport, endpoint: String) -> Env {
    let protocol = match transport {
        Transport::Grpc => "grpc",
        Transport::Http => "http/protobuf",
    };
    Env::from([
        ("OTEL_SERVICE_NAME", name.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
    ])
}

/// `TelemetryBuilder::from_env_source` over `env`, with no fmt layer (it writes to the real
/// stdout, past the test harness's capture).
pub fn builder(env: &Env) -> TelemetryBuilder {
    TelemetryBuilder::from_env_source(|var| env.get(var).cloned())
        .expect("a valid environment")
        .logs(None)
}

/// A runtime of its own for a collector, as in another process.
pub fn collector_runtime() -> Runtime {
    runtime("collector", 1, None)
}

/// A receiver for `transport` on a [`collector_runtime`].
pub fn collector(transport: Transport) -> (Runtime, Receiver) {
    let runtime = collector_runtime();
    let receiver = runtime.block_on(Receiver::start(transport));
    (runtime, receiver)
}

/// `force_flush` on the blocking pool (it blocks; on a runtime thread it would starve the
/// exporter's tasks).
pub async fn force_flush(provider: &SdkTracerProvider) -> OTelSdkResult {
    let provider = provider.clone();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .expect("flush task")
}

/// Flushes `provider` until `receiver` holds `n` spans of `trace_id` (the server spans end
/// when their response bodies end, a little after the caller has its answer), or 10 s have
/// passed; returns the spans of the trace it holds.
pub async fn flush_until(
    provider: &SdkTracerProvider,
    receiver: &Receiver,
    trace_id: &str,
    n: usize,
) -> Vec<super::ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let flushed = force_flush(provider).await;
        let spans = receiver.spans_of_trace(trace_id);
        if spans.len() >= n || Instant::now() >= deadline {
            flushed.expect("flush to a healthy receiver");
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shuts `guard` down on the blocking pool (never on a runtime thread: the batch processor
/// blocks); its result and how long it took.
pub async fn shutdown(guard: TelemetryGuard) -> (Result<(), String>, Duration) {
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let result = guard.shutdown().map_err(|e| e.to_string());
        (result, start.elapsed())
    })
    .await
    .expect("shutdown task")
}

/// An instrumented service: its app `A`, on a runtime whose threads record into its
/// telemetry.
pub struct Service<A> {
    /// Declared first: its threads (and the dispatch they hold) go before `background`.
    pub runtime: Runtime,
    pub dispatch: Dispatch,
    /// `None` when the SDK is disabled.
    pub provider: Option<SdkTracerProvider>,
    /// `None` when the SDK is disabled or `OTEL_METRICS_EXPORTER=none`.
    pub meters: Option<SdkMeterProvider>,
    pub guard: Option<TelemetryGuard>,
    /// What `launch` made of the app: addresses, clients, ...
    pub app: A,
    /// Where the gRPC exporter's channel lives.
    _background: Runtime,
}

impl<A> Service<A> {
    /// Builds `telemetry` on a background runtime, then runs `app` to completion on a runtime
    /// named `name` whose threads record into it, with the istio propagator as the global one.
    pub fn launch(
        name: &str,
        telemetry: TelemetryBuilder,
        app: impl Future<Output = A>,
    ) -> Service<A> {
        Service::launch_measured(name, telemetry, |_| app)
    }

    /// Like [`Service::launch`], the app made by `app` from the telemetry's meter provider
    /// (for its layers' `.meter(..)`: the provider is not installed globally).
    pub fn launch_measured<F: Future<Output = A>>(
        name: &str,
        telemetry: TelemetryBuilder,
        app: impl FnOnce(Option<SdkMeterProvider>) -> F,
    ) -> Service<A> {
        meshtrace::set_global_propagator(MeshPropagator::istio());
        let background = runtime("exporter", 1, None);
        let telemetry = {
            let _entered = background.enter();
            telemetry.build().expect("build telemetry")
        };
        let dispatch = telemetry.dispatch().clone();
        let runtime = runtime(name, 2, Some(&dispatch));
        let meters = telemetry.meter_provider().cloned();
        let app = runtime.block_on(app(meters.clone()));
        Service {
            runtime,
            dispatch,
            provider: telemetry.provider().cloned(),
            meters,
            guard: Some(telemetry.into_guard()),
            app,
            _background: background,
        }
    }

    /// Runs `f` to completion on the service's runtime, from this thread with the service's
    /// subscriber as its default.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        let _default = tracing::dispatcher::set_default(&self.dispatch);
        self.runtime.block_on(f)
    }

    /// [`force_flush`] of the service's tracer provider.
    pub fn flush(&self) -> OTelSdkResult {
        let provider = self.provider.as_ref().expect("the SDK is enabled");
        self.block_on(force_flush(provider))
    }

    /// [`shutdown`] of the service's guard, which it gives up.
    pub fn shutdown(&mut self) -> (Result<(), String>, Duration) {
        let guard = self.guard.take().expect("shut down once");
        self.block_on(shutdown(guard))
    }
}
