//! gRPC status codes, named (the core needs them too: [`crate::mesh::envoy::classify_grpc`]
//! reads Envoy's gRPC replies).
//!
//! ```
//! use meshtrace::GrpcCode;
//! let code = GrpcCode::from_wire(14);
//! assert_eq!(code, GrpcCode::Unavailable);
//! assert_eq!((code.name(), code.as_i64()), ("UNAVAILABLE", 14));
//! assert_eq!(GrpcCode::from_wire(99).to_string(), "UNKNOWN_CODE(99)");
//! ```

use std::fmt;

/// A gRPC status code, named. A peer may send a number gRPC does not define; it is kept as
/// [`GrpcCode::Other`] and still recorded as the number it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `0`.
    Ok,
    /// `1`.
    Cancelled,
    /// `2`.
    Unknown,
    /// `3`.
    InvalidArgument,
    /// `4`.
    DeadlineExceeded,
    /// `5`.
    NotFound,
    /// `6`.
    AlreadyExists,
    /// `7`.
    PermissionDenied,
    /// `8`.
    ResourceExhausted,
    /// `9`.
    FailedPrecondition,
    /// `10`.
    Aborted,
    /// `11`.
    OutOfRange,
    /// `12`.
    Unimplemented,
    /// `13`.
    Internal,
    /// `14`.
    Unavailable,
    /// `15`.
    DataLoss,
    /// `16`.
    Unauthenticated,
    /// A number gRPC does not define.
    Other(u16),
}

impl GrpcCode {
    /// The code a `grpc-status` number stands for.
    pub fn from_wire(code: u16) -> GrpcCode {
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
    pub fn as_i64(self) -> i64 {
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
    pub fn name(self) -> &'static str {
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
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrpcCode::Other(n) => write!(f, "UNKNOWN_CODE({n})"),
            code => f.write_str(code.name()),
        }
    }
}
