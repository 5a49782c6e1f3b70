//! Optional whitespace (RFC 9110 `OWS`: spaces and tabs), which every format allows around
//! a header value and its parts.

/// `v` without leading and trailing spaces and tabs.
#[inline]
pub(super) fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// [`trim`] for text.
#[inline]
pub(super) fn trim_str(s: &str) -> &str {
    let bytes = s.as_bytes();
    let (mut start, mut end) = (0, bytes.len());
    while start < end && matches!(bytes[start], b' ' | b'\t') {
        start += 1;
    }
    while end > start && matches!(bytes[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    // Spaces and tabs are ASCII, so these are character boundaries.
    &s[start..end]
}
