//! W3C Baggage: the `baggage` header.
//!
//! Every line of the header is read; each member stands or falls on its own; values are
//! percent-decoded to UTF-8 (bad sequences become U+FFFD) and may contain `=`; properties
//! after `;` are kept verbatim as the member's metadata.

use super::{ows, percent};
use opentelemetry::baggage::{Baggage, BaggageMetadata};
use opentelemetry::{Key, StringValue};

pub use super::format::name::BAGGAGE;
/// Most members that must be propagated.
pub const MAX_MEMBERS: usize = 64;
/// Most bytes (all baggage lines together) that must be propagated.
pub const MAX_BYTES: usize = 8192;

/// Why one baggage member was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaggageError {
    /// The member has no `=` between key and value.
    #[error("baggage member without '='")]
    MissingEquals,
    /// The key is empty or not an HTTP token.
    #[error("baggage key is not an HTTP token")]
    InvalidKey,
    /// The value holds a byte that must have been percent-encoded.
    #[error("baggage value holds a byte that must be percent-encoded")]
    InvalidValue,
    /// A property after `;` is malformed.
    #[error("malformed baggage property")]
    InvalidProperty,
    /// Keeping the member would pass 64 members or 8192 bytes.
    #[error("baggage over 64 members or 8192 bytes")]
    OverLimit,
}

/// One decoded baggage member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key (an HTTP token).
    pub key: &'a str,
    /// The percent-decoded value.
    pub value: String,
    /// The properties after the first `;`, verbatim but trimmed; empty when there are none.
    pub properties: &'a str,
}

/// Byte classes of the baggage grammar, looked up once per byte.
const TCHAR: u8 = 1;
const OCTET: u8 = 2;

const fn class_of(b: u8) -> u8 {
    let tchar = b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        );
    // `baggage-octet` of the W3C grammar: printable ASCII but space, `"`, `,`, `;` and `\`.
    let octet = matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
    (if tchar { TCHAR } else { 0 }) | (if octet { OCTET } else { 0 })
}

static CLASS: [u8; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = class_of(i as u8);
        i += 1;
    }
    table
};

#[inline]
fn is_tchar(b: u8) -> bool {
    CLASS[usize::from(b)] & TCHAR != 0
}

/// `baggage-octet` of the W3C grammar: printable ASCII but space, `"`, `,`, `;` and `\`.
#[inline]
fn is_baggage_octet(b: u8) -> bool {
    CLASS[usize::from(b)] & OCTET != 0
}

#[inline]
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn valid_properties(props: &str) -> bool {
    props.split(';').all(|prop| {
        let prop = ows::trim_str(prop);
        match prop.split_once('=') {
            Some((k, v)) => {
                valid_token(ows::trim_str(k)) && ows::trim_str(v).bytes().all(is_baggage_octet)
            }
            None => valid_token(prop),
        }
    })
}

/// The parts of a valid member: key, value still percent-encoded, properties, and how many
/// `%` the value holds (none: the value needs no decoding).
type Parts<'a> = (&'a str, &'a str, &'a str, usize);

/// Splits a member (`key=value;prop;prop=v`) and checks every part: the key, the still
/// percent-encoded value, and the properties. One pass over the bytes for the common shape
/// (`key`, optional whitespace, `=`, optional whitespace, value, optional whitespace, then
/// the end or `;`); anything else goes to [`split_member_slow`], which tells the error.
#[inline]
fn split_member(member: &str) -> Result<Parts<'_>, BaggageError> {
    let bytes = member.as_bytes();
    let ows = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    let mut i = 0;
    ows(&mut i);
    let key_start = i;
    while i < bytes.len() && is_tchar(bytes[i]) {
        i += 1;
    }
    let key_end = i;
    ows(&mut i);
    if key_end == key_start || bytes.get(i) != Some(&b'=') {
        return split_member_slow(member);
    }
    i += 1;
    ows(&mut i);
    let value_start = i;
    let mut percents = 0;
    while i < bytes.len() && is_baggage_octet(bytes[i]) {
        percents += usize::from(bytes[i] == b'%');
        i += 1;
    }
    let value_end = i;
    ows(&mut i);
    let properties = match bytes.get(i) {
        None => "",
        Some(b';') => {
            let props = ows::trim_str(&member[i + 1..]);
            if !props.is_empty() && !valid_properties(props) {
                return Err(BaggageError::InvalidProperty);
            }
            props
        }
        Some(_) => return split_member_slow(member),
    };
    // Every index is at an ASCII byte, so at a character boundary.
    Ok((
        &member[key_start..key_end],
        &member[value_start..value_end],
        properties,
        percents,
    ))
}

/// [`split_member`] for any member: splits at the first `;`, then at the first `=` before
/// it, and tells which part is invalid.
#[cold]
fn split_member_slow(member: &str) -> Result<Parts<'_>, BaggageError> {
    let (kv, properties) = match member.split_once(';') {
        Some((kv, props)) => (kv, ows::trim_str(props)),
        None => (member, ""),
    };
    let (key, value) = kv.split_once('=').ok_or(BaggageError::MissingEquals)?;
    let (key, value) = (ows::trim_str(key), ows::trim_str(value));
    if !valid_token(key) {
        return Err(BaggageError::InvalidKey);
    }
    if !value.bytes().all(is_baggage_octet) {
        return Err(BaggageError::InvalidValue);
    }
    if !properties.is_empty() && !valid_properties(properties) {
        return Err(BaggageError::InvalidProperty);
    }
    Ok((
        key,
        value,
        properties,
        value.bytes().filter(|&b| b == b'%').count(),
    ))
}

/// The value of a member, percent-decoded when it holds a `%`.
#[inline]
fn decode_value(value: &str, percents: usize) -> String {
    if percents == 0 {
        value.to_owned()
    } else {
        percent::decode(value)
    }
}

/// Parses one list member (`key=value;prop;prop=v`).
///
/// ```
/// use meshtrace::propagation::baggage::parse_member;
/// let m = parse_member(" user=a%20b=c ;ttl=3 ").unwrap();
/// assert_eq!((m.key, m.value.as_str(), m.properties), ("user", "a b=c", "ttl=3"));
/// ```
pub fn parse_member(member: &str) -> Result<Member<'_>, BaggageError> {
    let (key, value, properties, percents) = split_member(member)?;
    Ok(Member {
        key,
        value: decode_value(value, percents),
        properties,
    })
}

/// What [`parse_baggage`] read from the `baggage` lines.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ParsedBaggage {
    /// The members kept.
    pub baggage: Baggage,
    /// How many members that were read were dropped as malformed.
    pub dropped: usize,
    /// True when the lines went past 64 members or 8192 bytes: reading stopped there, and
    /// the member that crossed the limit and everything after it were not read.
    pub truncated: bool,
}

/// Parses all `baggage` lines, in order, into a [`Baggage`], reading at most the first
/// 8192 bytes of the lines (joined with commas) and stopping before a 65th member: work is
/// bounded by the limits whatever the size of the header.
///
/// ```
/// use meshtrace::propagation::baggage::parse_baggage;
/// let p = parse_baggage(&[b"a=1, bad member, b=x%3Dy".as_slice(), b"a=2".as_slice()]);
/// assert_eq!((p.baggage.get("a").unwrap().as_str(), p.baggage.get("b").unwrap().as_str()), ("2", "x=y"));
/// assert_eq!((p.dropped, p.truncated), (1, false));
/// let huge = format!("a=1,b={}", "x".repeat(1 << 20));
/// let p = parse_baggage(&[huge.as_bytes()]);
/// assert_eq!((p.baggage.len(), p.truncated), (1, true));
/// ```
pub fn parse_baggage(lines: &[&[u8]]) -> ParsedBaggage {
    let mut out = ParsedBaggage::default();
    let mut left = MAX_BYTES;
    for (i, &line) in lines.iter().enumerate() {
        let join = usize::from(i > 0);
        if line.len() + join <= left {
            left -= line.len() + join;
            if !out.read_members(line) {
                break;
            }
            continue;
        }
        // The limit falls inside this line: read the members wholly before it.
        out.truncated = true;
        let end = left.saturating_sub(join);
        let whole = if line.get(end) == Some(&b',') {
            end
        } else {
            line[..end].iter().rposition(|&b| b == b',').unwrap_or(0)
        };
        out.read_members(&line[..whole]);
        break;
    }
    out
}

impl ParsedBaggage {
    /// Reads the members of `segment`; false (and `truncated`) when a 65th member came.
    fn read_members(&mut self, segment: &[u8]) -> bool {
        // A member that is not UTF-8 cannot be valid (the grammar is ASCII): a line that is
        // UTF-8 as a whole is checked once, else member by member.
        if let Ok(text) = std::str::from_utf8(segment) {
            let mut rest = text;
            loop {
                let (raw, next) = match rest.as_bytes().iter().position(|&b| b == b',') {
                    // `,` is ASCII, so these are character boundaries.
                    Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                    None => (rest, None),
                };
                if !self.read_member(raw) {
                    return false;
                }
                match next {
                    Some(next) => rest = next,
                    None => return true,
                }
            }
        }
        for raw in segment.split(|&b| b == b',') {
            match std::str::from_utf8(raw) {
                Ok(raw) => {
                    if !self.read_member(raw) {
                        return false;
                    }
                }
                Err(_) => self.dropped += 1,
            }
        }
        true
    }

    /// Reads one member; false (and `truncated`) when it would be a 65th.
    #[inline]
    fn read_member(&mut self, raw: &str) -> bool {
        let trimmed = ows::trim_str(raw);
        if trimmed.is_empty() {
            return true;
        }
        let Ok((key, value, properties, percents)) = split_member(trimmed) else {
            self.dropped += 1;
            return true;
        };
        if self.baggage.len() == MAX_MEMBERS && self.baggage.get(key).is_none() {
            self.truncated = true;
            return false;
        }
        self.baggage.insert_with_metadata(
            Key::from(key.to_owned()),
            StringValue::from(decode_value(value, percents)),
            BaggageMetadata::from(properties),
        );
        true
    }
}

/// Serializes baggage as one header value, percent-encoding what needs it, so that
/// parsing the result gives the same baggage back. Members that would pass the limits,
/// keys that are not tokens and properties that are not well-formed are left out; the
/// result never holds a control character. `None` when nothing is left to send.
///
/// ```
/// use meshtrace::propagation::baggage::{encode_baggage, parse_baggage};
/// use opentelemetry::baggage::Baggage;
/// let mut b = Baggage::new();
/// b.insert("user", "José, 100%");
/// let header = encode_baggage(&b).unwrap();
/// assert_eq!(header, "user=Jos%C3%A9%2C%20100%25");
/// assert_eq!(parse_baggage(&[header.as_bytes()]).baggage.get("user").unwrap().as_str(), "José, 100%");
/// ```
pub fn encode_baggage(baggage: &Baggage) -> Option<String> {
    let mut out = Vec::new();
    encode_baggage_into(baggage, &mut out);
    // Only ASCII is ever written.
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// [`encode_baggage`] appending to a buffer; writes nothing when nothing is left to send.
/// The members of `baggage` ordered by key. opentelemetry's `Baggage` is a hash map whose
/// iteration order is its own: written in key order, the same baggage always gives the same
/// bytes, and the same members when a limit leaves some out (found by the `extract` fuzz
/// target, whose two extraction paths wrote one baggage two ways).
pub(crate) fn in_key_order(
    baggage: &Baggage,
) -> Vec<(
    &opentelemetry::Key,
    &(
        opentelemetry::StringValue,
        opentelemetry::baggage::BaggageMetadata,
    ),
)> {
    let mut members: Vec<_> = baggage.iter().collect();
    members.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    members
}

pub(crate) fn encode_baggage_into(baggage: &Baggage, out: &mut Vec<u8>) {
    let base = out.len();
    let mut members = 0;
    for (key, (value, metadata)) in in_key_order(baggage) {
        let key = key.as_str();
        if members == MAX_MEMBERS || !valid_token(key) {
            continue;
        }
        let start = out.len();
        if start > base {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        percent::encode_into(value.as_str(), is_baggage_octet, out);
        let props = metadata.as_str();
        if !props.is_empty() && valid_properties(props) {
            out.push(b';');
            out.extend_from_slice(props.as_bytes());
        }
        if out.len() - base > MAX_BYTES {
            out.truncate(start);
            continue;
        }
        members += 1;
    }
}
