//! Header-name lists from the environment: which headers the layers record on spans, under
//! the OpenTelemetry Java agent's variable names. Read by the layers (leniently: a name that
//! is not a header name is left out) and checked by [`crate::init`] (strictly: it is an error
//! naming the variable).

use http::HeaderName;

/// Server request headers recorded as `http.request.header.<name>`.
pub(crate) const SERVER_REQUEST: &str = "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_REQUEST_HEADERS";
/// Server response headers recorded as `http.response.header.<name>`.
pub(crate) const SERVER_RESPONSE: &str =
    "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS";
/// Client request headers recorded as `http.request.header.<name>`.
#[cfg(any(feature = "reqwest", feature = "tonic", feature = "otlp"))]
pub(crate) const CLIENT_REQUEST: &str = "OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS";
/// Client response headers recorded as `http.response.header.<name>`.
#[cfg(any(feature = "reqwest", feature = "tonic", feature = "otlp"))]
pub(crate) const CLIENT_RESPONSE: &str =
    "OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS";

/// `x-tenant, User-Agent`: comma-separated names, trimmed and lowercased, empty entries
/// skipped; the first entry that is not a header name is the error.
pub(crate) fn parse(v: &str) -> Result<Vec<HeaderName>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            HeaderName::from_bytes(e.to_ascii_lowercase().as_bytes()).map_err(|_| e.to_owned())
        })
        .collect()
}

/// The names variable `var` of the process environment lists; names that are not header
/// names are left out (init() refuses them).
#[cfg(feature = "tower")]
pub(crate) fn from_env(var: &str) -> Vec<HeaderName> {
    let Ok(v) = std::env::var(var) else {
        return Vec::new();
    };
    v.split(',')
        .filter_map(|e| parse(e).ok())
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists() {
        assert_eq!(
            super::parse(" X-Tenant ,user-agent,,").unwrap(),
            ["x-tenant", "user-agent"]
        );
        assert_eq!(
            super::parse("ok, not a header").unwrap_err(),
            "not a header"
        );
        assert!(super::parse("").unwrap().is_empty());
    }
}
