//! One request through the sidecar: timeouts, attempts, retries, the upstream call.

use super::*;

pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

pub(super) fn grpc_status_of(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses a `grpc-timeout` value (`1S`, `500m`, `100u`, ...).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The route timeout of one request (Envoy's `FilterUtility::finalTimeout`, old-style
/// timeouts): `grpc-timeout` capped by `max_grpc_timeout` for gRPC when that is set, else the
/// route's.
pub(super) fn route_timeout(
    config: &SidecarConfig,
    headers: &HeaderMap,
    grpc: bool,
) -> Option<Duration> {
    if let (true, Some(max)) = (grpc, config.max_grpc_timeout) {
        let mut timeout = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(Duration::ZERO);
        if !max.is_zero() && (timeout.is_zero() || timeout > max) {
            timeout = max;
        }
        return (!timeout.is_zero()).then_some(timeout);
    }
    config.route_timeout
}

/// `x-envoy-expected-rq-timeout-ms` for an attempt `elapsed` into the request (Envoy's
/// `FilterUtility::setTimeoutHeaders`).
pub(super) fn expected_timeout_ms(
    global: Option<Duration>,
    per_try: Option<Duration>,
    elapsed: Duration,
) -> Option<u64> {
    let expected = per_try.or(global)?.as_millis() as u64;
    match global {
        Some(global) => {
            let global = global.as_millis() as u64;
            let elapsed = elapsed.as_millis() as u64;
            Some(if elapsed >= global {
                1
            } else {
                expected.min(global - elapsed)
            })
        }
        None => Some(expected),
    }
}

pub(super) const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.get("te").is_some_and(|te| te != "trailers") {
        headers.remove("te");
    }
}

/// The request body: read whole (so that it can be sent again) or streamed once.
pub(super) enum Source {
    Buffered(Bytes, Option<HeaderMap>),
    Stream(Option<Incoming>),
}

impl Source {
    pub(super) fn body(&mut self) -> UpBody {
        match self {
            Source::Buffered(data, trailers) => UpBody::Replay(Payload {
                data: Some(data.clone()),
                trailers: trailers.clone(),
            }),
            Source::Stream(body) => match body.take() {
                Some(body) => UpBody::Stream(body),
                None => UpBody::Replay(Payload::empty()),
            },
        }
    }
}

pub(super) enum UpstreamError {
    Connect,
    Reset,
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    guard: ActiveGuard,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let request = shared.requests.fetch_add(1, Ordering::SeqCst);
    let grpc = is_grpc(req.headers());
    let reply = lock(&shared.reply).clone();
    if let Some(reply) = reply {
        return reply.rendered(&shared.config).into_response(grpc);
    }
    forward(&shared, request, guard, req, grpc).await
}

pub(super) async fn forward(
    shared: &Arc<Shared>,
    request: usize,
    guard: ActiveGuard,
    req: Request<Incoming>,
    grpc: bool,
) -> Response<ProxyBody> {
    let config = &shared.config;
    let downstream_version = req.version();
    let h2 = grpc || downstream_version == Version::HTTP_2;
    let (parts, body) = req.into_parts();
    let mut source = if config.retries > 0 {
        match read_body(body).await {
            Ok((data, trailers)) => Source::Buffered(data, trailers),
            // The client went away mid-request; nobody reads this.
            Err(_) => return Rendered::connect_error(TERMINATION_REASON, 0).into_response(grpc),
        }
    } else {
        Source::Stream(Some(body))
    };

    let start = Instant::now();
    let global = route_timeout(config, &parts.headers, grpc);
    let per_try = config
        .per_try_timeout
        .filter(|p| global.is_none_or(|g| *p < g));
    let deadline = global.map(|g| start + g);
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let uri: Uri = if h2 {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| shared.upstream.to_string());
        format!("http://{authority}{path}").parse().expect("uri")
    } else {
        path.parse().expect("path")
    };

    let mut number = 0u32;
    loop {
        number += 1;
        if number > 1 && !config.retry_backoff.is_zero() {
            let wake = Instant::now() + config.retry_backoff;
            if let Some(deadline) = deadline.filter(|d| wake >= *d) {
                tokio::time::sleep_until(deadline.into()).await;
                return Rendered::upstream_timeout(config).into_response(grpc);
            }
            tokio::time::sleep_until(wake.into()).await;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Rendered::upstream_timeout(config).into_response(grpc);
        }

        let elapsed = start.elapsed();
        let mut headers = parts.headers.clone();
        strip_hop_by_hop(&mut headers);
        if !h2 && !headers.contains_key(http::header::HOST) {
            headers.insert(
                http::header::HOST,
                HeaderValue::from_str(&shared.upstream.to_string()).expect("host"),
            );
        }
        headers.insert(ATTEMPT_COUNT, HeaderValue::from(number));
        if let Some(ms) = expected_timeout_ms(global, per_try, elapsed) {
            headers.insert(EXPECTED_RQ_TIMEOUT_MS, HeaderValue::from(ms));
            if grpc && config.max_grpc_timeout.is_some() {
                headers.insert(
                    "grpc-timeout",
                    HeaderValue::from_str(&format!("{ms}m")).expect("grpc-timeout"),
                );
            }
        }
        let sent = Instant::now();
        let version = if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let index = shared.record(Attempt {
            request,
            number,
            at: sent,
            elapsed,
            method: parts.method.clone(),
            path: path.clone(),
            version,
            headers: headers.clone(),
            outcome: AttemptOutcome::Pending,
        });
        let mut upstream_req = Request::new(source.body());
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = uri.clone();
        *upstream_req.version_mut() = version;
        *upstream_req.headers_mut() = headers;

        let per_try_deadline = per_try.map(|p| sent + p);
        let try_deadline = match (deadline, per_try_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let attempt = send_upstream(&shared.tasks, shared.upstream, upstream_req, h2);
        let result = match try_deadline {
            Some(d) => tokio::time::timeout_at(d.into(), attempt).await.ok(),
            None => Some(attempt.await),
        };
        let retries_left = number <= config.retries;
        match result {
            None => {
                let route_fired = deadline.is_some() && try_deadline == deadline;
                shared.set_outcome(
                    index,
                    if route_fired {
                        AttemptOutcome::RouteTimeout
                    } else {
                        AttemptOutcome::PerTryTimeout
                    },
                );
                if !route_fired && retries_left {
                    continue;
                }
                return Rendered::upstream_timeout(config).into_response(grpc);
            }
            Some(Err(UpstreamError::Connect)) => {
                shared.set_outcome(index, AttemptOutcome::ConnectFailure);
                if retries_left && config.retry_on_connect_failure {
                    continue;
                }
                return Rendered::connect_error(REFUSED_REASON, number).into_response(grpc);
            }
            Some(Err(UpstreamError::Reset)) => {
                shared.set_outcome(index, AttemptOutcome::Reset);
                if retries_left && config.retry_on_reset {
                    continue;
                }
                return Rendered::connect_error(TERMINATION_REASON, number).into_response(grpc);
            }
            Some(Ok((response, connection))) => {
                let status = response.status();
                let grpc_status = grpc_status_of(response.headers());
                shared.set_outcome(
                    index,
                    AttemptOutcome::Response {
                        status,
                        grpc_status,
                    },
                );
                let retriable = (config.retry_on_503 && status == StatusCode::SERVICE_UNAVAILABLE)
                    || (config.retry_on_grpc_unavailable
                        && grpc
                        && grpc_status == Some(GRPC_UNAVAILABLE));
                if retriable && retries_left {
                    continue;
                }
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                head.headers.insert(
                    UPSTREAM_SERVICE_TIME,
                    HeaderValue::from(sent.elapsed().as_millis() as u64),
                );
                head.headers
                    .insert(http::header::SERVER, HeaderValue::from_static("envoy"));
                head.version = downstream_version;
                let body = ForwardBody {
                    inner: body,
                    deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
                    _connection: connection,
                    _guard: guard,
                };
                return Response::from_parts(head, ProxyBody::Upstream(Box::new(body)));
            }
        }
    }
}

/// Sends one attempt on a new connection to the upstream. The connection's task is aborted
/// when the returned handle is dropped (with the response body) or when this future is
/// dropped (an abandoned attempt).
pub(super) async fn send_upstream(
    tasks: &Arc<Tasks>,
    upstream: SocketAddr,
    req: Request<UpBody>,
    h2: bool,
) -> Result<(Response<Incoming>, Option<AbortOnDrop>), UpstreamError> {
    let tcp = TcpStream::connect(upstream)
        .await
        .map_err(|_| UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let io = TokioIo::new(tcp);
    if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(Exec(tasks.clone()), io)
                .await
                .map_err(|_| UpstreamError::Reset)?;
        let task = tasks
            .spawn(async move {
                let _ = connection.await;
            })
            .map(AbortOnDrop);
        let response = sender
            .send_request(req)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        Ok((response, task))
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        let task = tasks
            .spawn(async move {
                let _ = connection.await;
            })
            .map(AbortOnDrop);
        let response = sender
            .send_request(req)
            .await
            .map_err(|_| UpstreamError::Reset)?;
        Ok((response, task))
    }
}
