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
    s.trim_matches([' ', '\t'])
}
