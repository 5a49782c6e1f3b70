//! The signal that ends a service: [`shutdown_signal`].

/// Resolves when the process is asked to stop: `SIGTERM` (what Kubernetes sends a pod it
/// stops, on every deploy) or Ctrl-C (`SIGINT`). Hand it to the server's graceful shutdown,
/// so that the server stops taking requests, finishes the ones in flight, and returns; `main`
/// then ends and drops the guard of [`init`](crate::init), which flushes every span.
///
/// Without it `axum::serve(..).await` never returns: the process dies of the signal with
/// the batch processor's last spans (up to `OTEL_BSP_SCHEDULE_DELAY`, 5 s by default) still in
/// memory, and the last requests before every deploy leave broken traces.
///
/// ```no_run
/// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
/// let _telemetry = meshtrace::init()?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(meshtrace::shutdown_signal())
///     .await?;
/// # Ok(()) }
/// ```
///
/// With tonic: `Server::builder()….serve_with_shutdown(addr, meshtrace::shutdown_signal())`.
/// Give Kubernetes' `terminationGracePeriodSeconds` (30 s by default) room for the requests in
/// flight and the guard's shutdown timeout (5 s by default) together.
///
/// If a signal handler cannot be installed (no signal driver: a runtime built without
/// `enable_io`), the future resolves at once and the failure is logged, rather than leaving a
/// service that can never stop cleanly.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(target: "meshtrace", error = %e, "cannot listen for Ctrl-C");
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::warn!(target: "meshtrace", error = %e, "cannot listen for SIGTERM")
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let which = tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    };
    tracing::info!(target: "meshtrace", signal = which, "shutting down: finishing the requests in flight");
}
