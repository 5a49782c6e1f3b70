//! Timeouts that cooperate with the mesh: a call with no timeout of its own gets the code
//! timeout derived from the mesh route's, and a call whose own timeout is shorter than the
//! route's is logged once per destination, not per request.
#![cfg(all(feature = "axum", feature = "reqwest"))]

mod support;

use axum::routing::get;
use axum::Router;
use meshtrace::client::reqwest::MeshClientMiddleware;
use meshtrace::mesh::timeouts::MeshTimeout;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::servers::serve;
use tracing_subscriber::layer::SubscriberExt;

/// Counts WARN events from meshtrace.
struct Warnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN
            && event.metadata().target().starts_with("meshtrace")
        {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_timeout_applies_and_short_timeouts_are_logged_once() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let _default = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(Warnings(warnings.clone())),
    );
    let slow = serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late"
        }),
    ))
    .await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            MeshClientMiddleware::new()
                .mesh_timeout("127.0.0.1", MeshTimeout::route(Duration::from_millis(200))),
        )
        .build();
    let url = format!("http://{slow}/slow");

    // No timeout of its own: the code timeout (200 ms + 100 ms) applies.
    let started = Instant::now();
    let err = client.get(&url).send().await.expect_err("times out");
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(warnings.load(Ordering::SeqCst), 0);

    // Shorter than the mesh's: logged once, however many calls.
    for _ in 0..3 {
        let _ = client
            .get(&url)
            .timeout(Duration::from_millis(50))
            .send()
            .await;
    }
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
    // Longer than the mesh's: nothing to say.
    let _ = client
        .get(&url)
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}
