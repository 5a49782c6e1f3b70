//! A thousand requests in flight at once through the three-service mesh: every call the
//! services make carries its own request's `x-request-id` and trace, never another's.
#![cfg(all(
    feature = "axum",
    feature = "reqwest",
    feature = "tonic",
    feature = "sdk"
))]

mod support;

use meshtrace::server::MeshServerLayer;
use std::collections::HashMap;
use support::headers::trace_id_of;
use support::mesh::Mesh;

const REQUESTS: usize = 1000;

fn trace_id(i: usize) -> String {
    format!(
        "{:032x}",
        0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_keep_their_own_context() {
    let mesh = Mesh::start(MeshServerLayer::new()).await;
    let client = reqwest::Client::new();
    let requests = (0..REQUESTS).map(|i| {
        let client = client.clone();
        let url = format!("http://{}/front/{i}", mesh.front);
        tokio::spawn(async move {
            let res = client
                .get(url)
                .header("x-request-id", format!("request-{i}"))
                .header(
                    "traceparent",
                    format!("00-{}-00f067aa0ba902b7-01", trace_id(i)),
                )
                .header("baggage", format!("request={i}"))
                .send()
                .await
                .expect("front answers");
            (res.status(), res.text().await.expect("body"))
        })
    });
    // All spawned before any is awaited: they are in flight together.
    let requests: Vec<_> = requests.collect();
    for (i, handle) in requests.into_iter().enumerate() {
        let (status, body) = handle.await.expect("task");
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(body, format!("back {i}"));
    }

    let seen = mesh.received();
    assert_eq!(seen.len(), REQUESTS);
    let mut by_request: HashMap<String, usize> = HashMap::new();
    for h in &seen {
        let id = h["x-request-id"].to_str().unwrap().to_owned();
        let i: usize = id.strip_prefix("request-").unwrap().parse().unwrap();
        assert_eq!(
            h.get_all("x-request-id").iter().count(),
            1,
            "{id}: one x-request-id"
        );
        let traceparent = h["traceparent"].to_str().unwrap();
        assert_eq!(
            trace_id_of(traceparent).to_string(),
            trace_id(i),
            "{id}: its own trace"
        );
        assert_eq!(
            h["x-b3-traceid"],
            trace_id(i),
            "{id}: B3 names its own trace"
        );
        assert_eq!(
            h["baggage"],
            format!("request={i}"),
            "{id}: its own baggage"
        );
        *by_request.entry(id).or_default() += 1;
    }
    assert_eq!(
        by_request.len(),
        REQUESTS,
        "every request reached the back service once"
    );
}
