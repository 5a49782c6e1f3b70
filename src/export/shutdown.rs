//! The guard's shutdown: one deadline for flushing and shutting down every provider.

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the guard flushes and shuts down: the tracer, meter and logger providers.
pub(super) trait Provider: fmt::Debug + Send + 'static {
    /// Exports what is queued.
    fn force_flush(&self) -> OTelSdkResult;
    /// Exports what is left and stops, within `timeout`.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult;
}

impl Provider for SdkTracerProvider {
    fn force_flush(&self) -> OTelSdkResult {
        SdkTracerProvider::force_flush(self)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SdkTracerProvider::shutdown_with_timeout(self, timeout)
    }
}

impl Provider for SdkMeterProvider {
    fn force_flush(&self) -> OTelSdkResult {
        SdkMeterProvider::force_flush(self)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SdkMeterProvider::shutdown_with_timeout(self, timeout)
    }
}

impl Provider for SdkLoggerProvider {
    fn force_flush(&self) -> OTelSdkResult {
        SdkLoggerProvider::force_flush(self)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SdkLoggerProvider::shutdown_with_timeout(self, timeout)
    }
}

/// Flush, then shut down, every provider, all within one deadline; the first error in
/// `providers`' order, if any.
///
/// The SDK's own shutdown gives the whole timeout to each processor in turn (two exporters,
/// twice the time) and reports a refused final export as success, so each provider's work
/// runs on a helper thread of its own, all at once, and the caller waits for them at most
/// `timeout`: a collector that hangs holds back no other signal. Work still blocked on a
/// hanging collector then finishes in the background, bounded by the exporter's own timeout.
pub(super) fn shutdown_within(
    providers: Vec<Box<dyn Provider>>,
    timeout: Duration,
) -> Result<(), OTelSdkError> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<OTelSdkResult>> = Vec::new();
    for (i, provider) in providers.into_iter().enumerate() {
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("meshtrace-shutdown".into())
            .spawn(move || {
                let flushed = provider.force_flush();
                let left = deadline.saturating_duration_since(Instant::now());
                let shut = provider.shutdown_with_timeout(left);
                let _ = tx.send((i, flushed.and(shut)));
            });
        results.push(match spawned {
            Ok(_) => None,
            Err(e) => Some(Err(OTelSdkError::InternalFailure(format!(
                "cannot start the shutdown thread: {e}"
            )))),
        });
    }
    drop(tx);
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, result)) => results[i] = Some(result),
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .try_for_each(|r| r.unwrap_or(Err(OTelSdkError::Timeout(timeout))))
}
