//! The guard's shutdown: one deadline for flushing and shutting down every exporter.

use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;

/// Flush, then shut down, both within one deadline.
///
/// The SDK's own shutdown gives the whole timeout to each span processor in turn (two
/// exporters, twice the time) and reports a refused final export as success, so the work
/// runs on a helper thread that the caller waits for at most `timeout`. A flush or shutdown
/// still blocked on a hanging collector then finishes in the background, bounded by the
/// exporter's own timeout.
pub(super) fn shutdown_within(
    provider: SdkTracerProvider,
    timeout: Duration,
) -> Result<(), OTelSdkError> {
    let deadline = std::time::Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("meshtrace-shutdown".into())
        .spawn(move || {
            let flushed = provider.force_flush();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let shut = provider.shutdown_with_timeout(left);
            let _ = tx.send(flushed.and(shut));
        });
    if let Err(e) = spawned {
        return Err(OTelSdkError::InternalFailure(format!(
            "cannot start the shutdown thread: {e}"
        )));
    }
    rx.recv_timeout(timeout)
        .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
}
