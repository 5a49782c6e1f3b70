//! The layers settle on the registered propagator at their first request, so that no request
//! pays for a lock; a registration after that cannot reach them, and says so instead of being
//! silently ignored.
#![cfg(feature = "tower")]

use std::sync::{Arc, Mutex};
use tower::{Layer, ServiceExt};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

#[tokio::test]
async fn registering_after_the_first_request_is_warned_about() {
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let late = |w: &Warnings| {
        w.0.lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("set_global_propagator called after"))
            .count()
    };

    // Before any request: registering is the normal start-up order, and silent.
    meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
    assert_eq!(late(&warnings), 0);

    let service = meshtrace::server::MeshServerLayer::new().layer(tower::service_fn(
        |_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        },
    ));
    let response = service
        .oneshot(http::Request::new(()))
        .await
        .expect("the handler answers");
    assert_eq!(response.status(), 200);

    meshtrace::set_global_propagator(meshtrace::MeshPropagator::istio());
    assert_eq!(late(&warnings), 1, "{:?}", warnings.0.lock().unwrap());
}
