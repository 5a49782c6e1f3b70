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

/// The `grpc-status`, if present and well formed.
pub(crate) fn status(headers: &HeaderMap) -> Option<GrpcCode> {
    let v = headers.get(GRPC_STATUS)?.to_str().ok()?;
    v.trim().parse::<u16>().ok().map(GrpcCode::from_wire)
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

/// A gRPC status code, named. A peer may send a number gRPC does not define; it is kept as
/// [`GrpcCode::Other`] and still recorded as the number it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
    Other(u16),
}

impl GrpcCode {
    /// The code a `grpc-status` number stands for.
    pub(crate) fn from_wire(code: u16) -> GrpcCode {
        match code {
            0 => GrpcCode::Ok,
            1 => GrpcCode::Cancelled,
            2 => GrpcCode::Unknown,
            3 => GrpcCode::InvalidArgument,
            4 => GrpcCode::DeadlineExceeded,
            5 => GrpcCode::NotFound,
            6 => GrpcCode::AlreadyExists,
            7 => GrpcCode::PermissionDenied,
            8 => GrpcCode::ResourceExhausted,
            9 => GrpcCode::FailedPrecondition,
            10 => GrpcCode::Aborted,
            11 => GrpcCode::OutOfRange,
            12 => GrpcCode::Unimplemented,
            13 => GrpcCode::Internal,
            14 => GrpcCode::Unavailable,
            15 => GrpcCode::DataLoss,
            16 => GrpcCode::Unauthenticated,
            other => GrpcCode::Other(other),
        }
    }

    /// The number on the wire, for `rpc.grpc.status_code`.
    pub(crate) fn as_i64(self) -> i64 {
        i64::from(match self {
            GrpcCode::Ok => 0,
            GrpcCode::Cancelled => 1,
            GrpcCode::Unknown => 2,
            GrpcCode::InvalidArgument => 3,
            GrpcCode::DeadlineExceeded => 4,
            GrpcCode::NotFound => 5,
            GrpcCode::AlreadyExists => 6,
            GrpcCode::PermissionDenied => 7,
            GrpcCode::ResourceExhausted => 8,
            GrpcCode::FailedPrecondition => 9,
            GrpcCode::Aborted => 10,
            GrpcCode::OutOfRange => 11,
            GrpcCode::Unimplemented => 12,
            GrpcCode::Internal => 13,
            GrpcCode::Unavailable => 14,
            GrpcCode::DataLoss => 15,
            GrpcCode::Unauthenticated => 16,
            GrpcCode::Other(n) => n,
        })
    }

    /// The canonical name, or `UNKNOWN_CODE` for a number gRPC does not define.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
            GrpcCode::Other(_) => "UNKNOWN_CODE",
        }
    }

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
