//! The guard's shutdown: one deadline for flushing and shutting down every provider.

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::{Duration, Instant};

/// A provider the guard flushes and shuts down: spans, metrics.
pub(super) trait Provider: Send + 'static {
    fn flush(&self) -> OTelSdkResult;
    fn shut_down(&self, timeout: Duration) -> OTelSdkResult;
}

impl Provider for SdkTracerProvider {
    fn flush(&self) -> OTelSdkResult {
        self.force_flush()
    }
    fn shut_down(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
}

impl Provider for SdkMeterProvider {
    fn flush(&self) -> OTelSdkResult {
        self.force_flush()
    }
    fn shut_down(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
}

/// Flush every provider, then shut every one down, all within one deadline; the first error
/// is the result.
///
/// The SDK's own shutdown gives the whole timeout to each processor in turn (two exporters,
/// twice the time) and reports a refused final export as success, so the work runs on a
/// helper thread that the caller waits for at most `timeout`. A flush or shutdown still
/// blocked on a hanging collector then finishes in the background, bounded by the exporter's
/// own timeout. Spans go first: a metrics collector that hangs must not hold them back.
pub(super) fn shutdown_within(
    providers: Vec<Box<dyn Provider>>,
    timeout: Duration,
) -> Result<(), OTelSdkError> {
    if providers.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("meshtrace-shutdown".into())
        .spawn(move || {
            let flushed: Vec<OTelSdkResult> = providers.iter().map(|p| p.flush()).collect();
            let shut: Vec<OTelSdkResult> = providers
                .iter()
                .map(|p| p.shut_down(deadline.saturating_duration_since(Instant::now())))
                .collect();
            let _ = tx.send(flushed.into_iter().chain(shut).collect::<OTelSdkResult>());
        });
    if let Err(e) = spawned {
        return Err(OTelSdkError::InternalFailure(format!(
            "cannot start the shutdown thread: {e}"
        )));
    }
    rx.recv_timeout(timeout)
        .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
}
