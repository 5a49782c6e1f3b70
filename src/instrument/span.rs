//! The spans the layers open and the semantic-convention attributes they carry. Attribute
//! names come from `opentelemetry-semantic-conventions`; numbers are recorded as `i64`.

use super::grpc::{GrpcCode, Side};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri, Version};
use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

// The `Empty` fields of the spans below are never recorded: the attributes go through
// `set_attribute`. They are declared because tracing-opentelemetry sizes a span's attribute
// list by its number of fields; without them the list grows, allocation by allocation, as
// the layers record the attributes every span gets.

/// The span of a request this process serves.
pub(crate) fn server_span(name: &str) -> Span {
    use tracing::field::Empty;
    tracing::info_span!(
        target: "meshtrace::server",
        "server",
        otel.name = name,
        otel.kind = "server",
        http.request.method = Empty,
        url.path = Empty,
        http.route = Empty,
        url.scheme = Empty,
        server.address = Empty,
        server.port = Empty,
        network.protocol.version = Empty,
        user_agent.original = Empty,
        http.request.header.x_request_id = Empty,
        http.response.status_code = Empty,
    )
}

/// The span of a request whose caller decided not to sample it: no name yet, since naming
/// it costs an allocation an unrecorded span does not need (the started OpenTelemetry span
/// is named if a sampler records it anyway).
pub(crate) fn unnamed_server_span() -> Span {
    tracing::info_span!(target: "meshtrace::server", "server", otel.name = tracing::field::Empty, otel.kind = "server")
}

/// The span of a call this process makes.
#[cfg(any(feature = "reqwest", feature = "tonic"))]
pub(crate) fn client_span(name: &str) -> Span {
    use tracing::field::Empty;
    tracing::info_span!(
        target: "meshtrace::client",
        "client",
        otel.name = name,
        otel.kind = "client",
        http.request.method = Empty,
        server.address = Empty,
        server.port = Empty,
        url.full = Empty,
        http.response.status_code = Empty,
        meshtrace.reply.origin = Empty,
    )
}

/// The method as the semantic conventions want it: one of the well-known methods, else
/// `_OTHER` with the original in `http.request.method_original`.
pub(crate) fn record_method(span: &Span, method: &Method) {
    match known_method(method) {
        Some(name) => span.set_attribute(semconv::HTTP_REQUEST_METHOD, name),
        None => {
            span.set_attribute(semconv::HTTP_REQUEST_METHOD, "_OTHER");
            span.set_attribute(
                semconv::HTTP_REQUEST_METHOD_ORIGINAL,
                method.as_str().to_owned(),
            );
        }
    }
}

/// One of the methods the semantic conventions know, by its static name; `None` for any
/// other (recorded as `_OTHER`: an arbitrary method would make names and series unbounded).
pub(crate) fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return None,
    })
}

/// The span name for an HTTP method: the method itself when well known, else `HTTP`, as the
/// semantic conventions say (an arbitrary method would make names unbounded).
pub(crate) fn method_for_name(method: &Method) -> &'static str {
    known_method(method).unwrap_or("HTTP")
}

pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// Host and port the request was addressed to: the URI's authority (HTTP/2 `:authority`,
/// absolute-form) or else the `Host` header.
pub(crate) fn server_host_port<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Option<(&'a str, Option<u16>)> {
    if let Some(host) = uri.host() {
        return Some((host, uri.port_u16()));
    }
    let raw = headers.get(http::header::HOST)?.to_str().ok()?;
    let (host, port) = match raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets, as `Uri::host` gives it.
        Some(rest) => {
            let end = rest.find(']')? + 2;
            (&raw[..end], raw[end..].strip_prefix(':'))
        }
        None => match raw.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        },
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    (!host.is_empty() && !host.contains(['/', '@', ' '])).then_some((host, port))
}

/// `server.address` and `server.port`: where the request was addressed to (servers) or
/// sent to (clients).
pub(crate) fn record_server_address(span: &Span, host: &str, port: Option<u16>) {
    span.set_attribute(semconv::SERVER_ADDRESS, host.to_owned());
    if let Some(port) = port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
}

/// Request headers whose values are never recorded on a span: credentials (SPECS §9).
pub(crate) const CREDENTIALS: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
];

/// What a redacted header's every value is recorded as.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// A header recorded on spans as `http.request.header.<name>` or
/// `http.response.header.<name>`, a string array (one element per header line). Its key is
/// built once, when the layer is configured, so that recording it costs no allocation for the
/// key.
#[derive(Clone, Debug)]
pub(crate) struct CapturedHeader {
    name: HeaderName,
    key: opentelemetry::Key,
    /// Every value is recorded as [`REDACTED`] (credentials and configured names).
    redacted: bool,
}

/// Which request and response headers a layer records, from its builder methods and the
/// environment (the OpenTelemetry Java agent's variables, [`crate::header_list`]), with the
/// credentials and configured names redacted.
#[derive(Clone, Debug)]
pub(crate) struct HeaderCapture {
    /// Always recorded, with their static keys.
    fixed: &'static [(HeaderName, &'static str)],
    request_names: Vec<HeaderName>,
    response_names: Vec<HeaderName>,
    redact: Vec<HeaderName>,
    /// What each request records, from the above (rebuilt by each setter).
    request: std::sync::Arc<[CapturedHeader]>,
    response: std::sync::Arc<[CapturedHeader]>,
}

impl HeaderCapture {
    /// `fixed`, and the names the environment variables `request_var` and `response_var`
    /// list.
    pub(crate) fn from_env(
        fixed: &'static [(HeaderName, &'static str)],
        request_var: &str,
        response_var: &str,
    ) -> Self {
        let mut capture = HeaderCapture {
            fixed,
            request_names: crate::header_list::from_env(request_var),
            response_names: crate::header_list::from_env(response_var),
            redact: Vec::new(),
            request: Vec::new().into(),
            response: Vec::new().into(),
        };
        capture.rebuild();
        capture
    }

    pub(crate) fn add_request(&mut self, name: HeaderName) {
        self.request_names.push(name);
        self.rebuild();
    }

    pub(crate) fn add_response(&mut self, name: HeaderName) {
        self.response_names.push(name);
        self.rebuild();
    }

    pub(crate) fn add_redacted(&mut self, name: HeaderName) {
        self.redact.push(name);
        self.rebuild();
    }

    /// The request headers to record.
    pub(crate) fn request(&self) -> &std::sync::Arc<[CapturedHeader]> {
        &self.request
    }

    /// The response headers to record.
    pub(crate) fn response(&self) -> &std::sync::Arc<[CapturedHeader]> {
        &self.response
    }

    /// The names asked for, for `Debug`.
    pub(crate) fn names(&self) -> (&[HeaderName], &[HeaderName], &[HeaderName]) {
        (&self.request_names, &self.response_names, &self.redact)
    }

    fn rebuild(&mut self) {
        self.request = captured(
            semconv::HTTP_REQUEST_HEADER,
            self.fixed,
            &self.request_names,
            &self.redact,
        );
        self.response = captured(
            semconv::HTTP_RESPONSE_HEADER,
            &[],
            &self.response_names,
            &self.redact,
        );
    }
}

/// The headers to record: `fixed` (static keys) then `extra` under `prefix`, each once,
/// redacted when a credential or one of `redact`.
fn captured(
    prefix: &str,
    fixed: &[(HeaderName, &'static str)],
    extra: &[HeaderName],
    redact: &[HeaderName],
) -> std::sync::Arc<[CapturedHeader]> {
    let redacted = |name: &HeaderName| CREDENTIALS.contains(name) || redact.contains(name);
    let mut out: Vec<CapturedHeader> = fixed
        .iter()
        .map(|(name, key)| CapturedHeader {
            name: name.clone(),
            key: opentelemetry::Key::from_static_str(key),
            redacted: redacted(name),
        })
        .collect();
    for name in extra {
        if out.iter().all(|c| c.name != *name) {
            out.push(CapturedHeader {
                name: name.clone(),
                key: opentelemetry::Key::from(std::sync::Arc::<str>::from(format!(
                    "{prefix}.{}",
                    name.as_str()
                ))),
                redacted: redacted(name),
            });
        }
    }
    out.into()
}

/// `http.{request,response}.header.<name>` for each captured header `headers` has, as the
/// string arrays the semantic conventions define; a redacted header's values as
/// [`REDACTED`].
pub(crate) fn record_headers(span: &Span, headers: &HeaderMap, names: &[CapturedHeader]) {
    for captured in names {
        let values: Vec<opentelemetry::StringValue> = headers
            .get_all(&captured.name)
            .iter()
            .filter_map(|v| match captured.redacted {
                true => Some(REDACTED.into()),
                false => v.to_str().ok().map(|v| v.to_owned().into()),
            })
            .collect();
        if !values.is_empty() {
            span.set_attribute(captured.key.clone(), Value::Array(values.into()));
        }
    }
}

/// `rpc.system`, `rpc.service` and `rpc.method` for a gRPC call.
///
/// The RPC conventions are still in development and semconv 1.37 renamed these
/// (`rpc.system.name`, a fully qualified `rpc.method`, `rpc.response.status_code` as a string).
/// We keep the names tracing backends and their gRPC views key on today, which are also the
/// names the mesh's own spans carry.
#[allow(deprecated)]
pub(crate) fn record_rpc(span: &Span, service: &str, method: &str) {
    span.set_attribute(semconv::RPC_SYSTEM, "grpc");
    span.set_attribute(semconv::RPC_SERVICE, service.to_owned());
    span.set_attribute(semconv::RPC_METHOD, method.to_owned());
}

/// `http.response.status_code`, and an error status for 5xx (servers) or 4xx and 5xx
/// (clients), with the code as `error.type`.
pub(crate) fn record_http_status(span: &Span, side: Side, status: StatusCode) {
    if span.is_none() {
        // A call of an unrecorded trace has no span: nothing to build the values for.
        return;
    }
    span.set_attribute(
        semconv::HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    );
    let failed = match side {
        Side::Server => status.is_server_error(),
        Side::Client => status.is_client_error() || status.is_server_error(),
    };
    if failed {
        span.set_attribute(semconv::ERROR_TYPE, status.as_str().to_owned());
        span.set_status(Status::error(
            status.canonical_reason().unwrap_or_default().to_owned(),
        ));
    }
}

/// `rpc.grpc.status_code`, and an error status when the semantic conventions call the code a
/// failure for this side, described by `grpc-message` when there is one.
#[allow(deprecated)] // see `record_rpc`
pub(crate) fn record_grpc_status(span: &Span, side: Side, code: GrpcCode, message: Option<String>) {
    if span.is_none() {
        // A call of an unrecorded trace has no span: nothing to build the values for.
        return;
    }
    span.set_attribute(semconv::RPC_GRPC_STATUS_CODE, code.as_i64());
    if code.is_error(side) {
        let name = code.name();
        span.set_attribute(semconv::ERROR_TYPE, name);
        span.set_status(Status::error(match message {
            Some(m) if !m.is_empty() => format!("{name}: {m}"),
            _ => name.to_owned(),
        }));
    }
}

/// An error and its sources, joined, for the span status.
#[cfg(feature = "reqwest")]
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Many errors repeat their source's text in their own.
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

/// A failure with no response: `error.type`, an error status and an `exception` event.
pub(crate) fn record_error(span: &Span, error_type: &'static str, message: String) {
    if span.is_none() {
        // A call of an unrecorded trace has no span: nothing to build the values for.
        return;
    }
    span.set_attribute(semconv::ERROR_TYPE, error_type);
    span.add_event(
        "exception",
        vec![
            KeyValue::new(semconv::EXCEPTION_TYPE, error_type),
            KeyValue::new(semconv::EXCEPTION_MESSAGE, message.clone()),
        ],
    );
    span.set_status(Status::error(message));
}

#[cfg(test)]
mod tests {
    use super::server_host_port;
    use http::{HeaderMap, Uri};

    type HostPort = Option<(&'static str, Option<u16>)>;

    #[rustfmt::skip]
    const HOSTS: &[(&str, HostPort)] = &[
        ("reviews:9080",        Some(("reviews", Some(9080)))),
        ("reviews",             Some(("reviews", None))),
        ("10.0.0.7:80",         Some(("10.0.0.7", Some(80)))),
        ("[::1]:8080",          Some(("[::1]", Some(8080)))),
        ("[::1]",               Some(("[::1]", None))),
        ("[::1",                None),
        ("reviews:http",        None),
        ("reviews:99999",       None),
        (":80",                 None),
        ("user@reviews",        None),
    ];

    #[test]
    fn host_header() {
        for (host, want) in HOSTS {
            let mut h = HeaderMap::new();
            h.insert(http::header::HOST, host.parse().unwrap());
            assert_eq!(
                server_host_port(&Uri::from_static("/x"), &h),
                *want,
                "{host:?}"
            );
        }
        // The URI's authority (HTTP/2 `:authority`) comes first.
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "other:1".parse().unwrap());
        let uri = Uri::from_static("http://reviews:9080/x");
        assert_eq!(server_host_port(&uri, &h), Some(("reviews", Some(9080))));
        assert_eq!(
            server_host_port(&Uri::from_static("/x"), &HeaderMap::new()),
            None
        );
    }
}
