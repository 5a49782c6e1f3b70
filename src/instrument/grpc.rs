//! gRPC over HTTP/2 as the layers see it: the path names the method, the status travels in a
//! `grpc-status` header (trailers-only responses) or in the trailers.

pub(crate) use crate::grpc::GrpcCode;
use crate::propagation::percent;
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

/// The `grpc-status`, if present and well formed.
pub(crate) fn status(headers: &HeaderMap) -> Option<GrpcCode> {
    let v = headers.get(GRPC_STATUS)?.to_str().ok()?;
    v.trim().parse::<u16>().ok().map(GrpcCode::from_wire)
}

/// The `grpc-message`, percent-decoded as the gRPC HTTP/2 protocol says.
pub(crate) fn message(headers: &HeaderMap) -> Option<String> {
    let raw = String::from_utf8_lossy(headers.get(GRPC_MESSAGE)?.as_bytes());
    Some(percent::decode(&raw))
}

/// Which side of the call a span describes; the semantic conventions judge gRPC codes
/// differently for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

impl GrpcCode {
    /// Whether this code marks the span as failed. For clients every code but OK does; for
    /// servers only the codes that say the server failed (UNKNOWN, DEADLINE_EXCEEDED,
    /// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), not those that blame the caller.
    pub(crate) fn is_error(self, side: Side) -> bool {
        match side {
            Side::Client => self != GrpcCode::Ok,
            Side::Server => matches!(
                self,
                GrpcCode::Unknown
                    | GrpcCode::DeadlineExceeded
                    | GrpcCode::Unimplemented
                    | GrpcCode::Internal
                    | GrpcCode::Unavailable
                    | GrpcCode::DataLoss
            ),
        }
    }
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
        assert_eq!(status(&h), Some(GrpcCode::Unavailable));
        assert_eq!(message(&h).unwrap(), "no healthy upstream%zz%4");
        h.insert(GRPC_STATUS, "x".parse().unwrap());
        assert_eq!(status(&h), None);
    }

    #[test]
    fn server_and_client_judge_codes_differently() {
        let failing = |side| -> Vec<i64> {
            (0..17)
                .map(GrpcCode::from_wire)
                .filter(|c| c.is_error(side))
                .map(GrpcCode::as_i64)
                .collect()
        };
        assert_eq!(failing(Side::Server), [2, 4, 12, 13, 14, 15]);
        assert_eq!(failing(Side::Client), (1..17).collect::<Vec<_>>());
        assert_eq!(GrpcCode::from_wire(14), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::Unavailable.name(), "UNAVAILABLE");
        assert_eq!(GrpcCode::from_wire(99).name(), "UNKNOWN_CODE");
        assert_eq!(GrpcCode::from_wire(99).as_i64(), 99);
    }
}
