//! No spans lost on a deploy: `examples/graceful.rs` (the README's quick-start shape with
//! `axum::serve(..).with_graceful_shutdown(meshtrace::shutdown_signal())`) runs as a real child
//! process exporting over OTLP/HTTP to the test's receiver, with a batch delay of a minute so
//! that nothing leaves before shutdown. Clients keep sending requests; in the middle of the
//! traffic the test sends the process SIGTERM, as Kubernetes does. Every request that got its
//! answer must have its server span and its handler's spans at the receiver, exported once,
//! and the process must exit on its own, successfully.
#![cfg(all(unix, feature = "otlp", feature = "axum"))]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::demo::example_binary;
use support::otlp::service::collector;
use support::otlp::{SpanKind, Transport, Value};
use support::peers::listening_on;

/// Clients sending at the same time.
const CLIENTS: usize = 4;
/// Answered requests before the signal.
const BEFORE_SIGNAL: usize = 200;

#[test]
fn sigterm_mid_traffic_loses_no_finished_request() {
    let (collector_rt, receiver) = collector(Transport::Http);
    let mut child = Command::new(example_binary("graceful"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LISTEN", "127.0.0.1:0")
        .env("OTEL_SERVICE_NAME", "graceful")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        // Nothing is exported on the way: what the receiver gets, the shutdown flushed.
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the graceful example");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let addr = listening_on(&mut stdout, "the graceful example");
    let rest = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });

    // x-request-id → answered; requests keep going until the server stops answering.
    let answered: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, answered, stop) = (addr.clone(), answered.clone(), stop.clone());
            traffic.spawn(async move {
                let http = reqwest::Client::new();
                let mut refused = 0;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) || refused > 20 {
                        break;
                    }
                    let id = format!("c{c}-r{n}");
                    let res = http
                        .get(format!("http://{addr}/orders/{n}"))
                        .header("x-request-id", &id)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    let ok = match res {
                        Ok(r) if r.status().is_success() => r.text().await.is_ok(),
                        _ => false,
                    };
                    if ok {
                        answered.lock().expect("lock").insert(id);
                    } else {
                        // Connections refused or reset once the server stops taking them.
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    while answered.lock().expect("lock").len() < BEFORE_SIGNAL {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "traffic too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_signal = answered.lock().expect("lock").len();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());

    // The process ends by itself after finishing its requests and flushing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, Ordering::Relaxed);
    traffic.block_on(async {
        for c in clients {
            c.await.expect("client task");
        }
    });
    assert!(status.success(), "exit status {status}");
    let out = rest.join().expect("stdout");
    assert!(out.contains("stopped serving"), "{out}");

    let answered = answered.lock().expect("lock").clone();
    assert!(answered.len() >= at_signal, "{} answered", answered.len());
    // Three spans per request: server, handler, its nested fn.
    let spans =
        collector_rt.block_on(receiver.wait_for_spans(3 * answered.len(), Duration::from_secs(10)));
    let mut servers: BTreeMap<String, usize> = BTreeMap::new();
    for span in spans.iter().filter(|s| s.kind == SpanKind::Server) {
        if let Some(Value::Array(ids)) = span.attr("http.request.header.x-request-id") {
            for id in ids.iter().filter_map(Value::as_str) {
                *servers.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !servers.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no server span: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<(&String, &usize)> = servers.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "exported more than once: {twice:?}");
    // Each answered request's handler spans are there too, in its trace.
    let by_trace: BTreeMap<&str, usize> = spans.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.trace_id.as_str()).or_default() += 1;
        m
    });
    for span in spans.iter().filter(|s| s.kind == SpanKind::Server) {
        assert_eq!(
            by_trace.get(span.trace_id.as_str()),
            Some(&3),
            "trace {} of {:?} is whole",
            span.trace_id,
            span.attr("http.request.header.x-request-id")
        );
    }
    eprintln!(
        "{} requests answered ({at_signal} before SIGTERM), {} spans exported at shutdown",
        answered.len(),
        spans.len()
    );
}
