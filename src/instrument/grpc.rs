//! gRPC over HTTP/2 as the layers see it: the path names the method, the status travels in a
//! `grpc-status` header (trailers-only responses) or in the trailers.

use http::HeaderMap;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";

/// True for `application/grpc` and its `+proto`, `+json`, ... variants.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `/package.Service/Method` as `("package.Service", "Method")`.
pub(crate) fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The numeric `grpc-status`, if present and well formed.
pub(crate) fn status(headers: &HeaderMap) -> Option<i64> {
    let v = headers.get(GRPC_STATUS)?.to_str().ok()?;
    v.trim().parse::<u16>().ok().map(i64::from)
}

/// The `grpc-message`, percent-decoded as the gRPC HTTP/2 protocol says.
pub(crate) fn message(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(GRPC_MESSAGE)?.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Which side of the call a span describes; the semantic conventions judge gRPC codes
/// differently for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Whether a gRPC status code marks the span as failed. For clients every code but OK does;
/// for servers only the codes that say the server failed (UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), not those that blame the caller.
pub(crate) fn is_error(side: Side, code: i64) -> bool {
    match side {
        Side::Client => code != 0,
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}

/// The canonical name of a gRPC status code.
pub(crate) fn code_name(code: i64) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN_CODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const PATHS: &[(&str, Option<(&str, &str)>)] = &[
        ("/helloworld.Greeter/SayHello", Some(("helloworld.Greeter", "SayHello"))),
        ("/Svc/M",                       Some(("Svc", "M"))),
        ("/Svc/",                        None),
        ("//M",                          None),
        ("/Svc",                         None),
        ("Svc/M",                        None),
        ("/a/b/c",                       None),
        ("",                             None),
    ];

    #[test]
    fn paths() {
        for (path, want) in PATHS {
            assert_eq!(service_and_method(path), *want, "{path:?}");
        }
    }

    #[test]
    fn status_and_message() {
        let mut h = HeaderMap::new();
        assert_eq!(status(&h), None);
        h.insert(GRPC_STATUS, "14".parse().unwrap());
        h.insert(
            GRPC_MESSAGE,
            "no%20healthy%20upstream%zz%4".parse().unwrap(),
        );
        assert_eq!(status(&h), Some(14));
        assert_eq!(message(&h).unwrap(), "no healthy upstream%zz%4");
        h.insert(GRPC_STATUS, "x".parse().unwrap());
        assert_eq!(status(&h), None);
    }

    #[test]
    fn server_and_client_judge_codes_differently() {
        let server: Vec<i64> = (0..17).filter(|c| is_error(Side::Server, *c)).collect();
        assert_eq!(server, [2, 4, 12, 13, 14, 15]);
        let client: Vec<i64> = (0..17).filter(|c| is_error(Side::Client, *c)).collect();
        assert_eq!(client, (1..17).collect::<Vec<_>>());
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(99), "UNKNOWN_CODE");
    }
}
