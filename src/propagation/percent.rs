//! Percent-encoding, shared by every header that carries it (W3C `baggage` values, and the
//! `OTEL_RESOURCE_ATTRIBUTES` / `OTEL_EXPORTER_OTLP_HEADERS` variables, which use the same
//! encoding).

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept literally, as decoders
/// commonly do. Bytes that are not UTF-8 once decoded become U+FFFD. The result has no spare
/// capacity, so that turning it into a `Box<str>` (opentelemetry's keys and values) does not
/// reallocate.
pub(crate) fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let escape = |at: usize| match (bytes.get(at + 1), bytes.get(at + 2)) {
        (Some(&hi), Some(&lo)) => Some((hex_digit(hi)? << 4) | hex_digit(lo)?),
        _ => None,
    };
    // An escape's digits are never `%`, so escapes do not overlap: counting them where they
    // start gives the decoded length.
    let escapes = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'%' && escape(i).is_some())
        .count();
    if escapes == 0 {
        return value.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len() - 2 * escapes);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = escape(i) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[inline]
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `value` to `out`, writing every byte for which `keep` is false (and `%` itself) as
/// `%XX` with uppercase hex.
pub(crate) fn encode_into(value: &str, keep: impl Fn(u8) -> bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if keep(b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_stray_percents() {
        assert_eq!(decode("a%20b"), "a b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz%41"), "%zzA");
        assert_eq!(decode("%C3%A9"), "é");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("%%41%"), "%A%");
        assert_eq!(decode("%4%41"), "%4A");
        for v in ["a%20b", "%41%42%43", "%4", "x%C3%A9y"] {
            let d = decode(v);
            assert_eq!(d.capacity(), d.len(), "{v}");
        }
    }

    #[test]
    fn encode_round_trips() {
        let mut out = Vec::new();
        encode_into("José, 100%", |b| b.is_ascii_alphanumeric(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "Jos%C3%A9%2C%20100%25");
        assert_eq!(decode(&text), "José, 100%");
    }
}
