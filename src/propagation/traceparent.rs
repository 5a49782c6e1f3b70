//! W3C Trace Context Level 2: the `traceparent` and `tracestate` headers.
//!
//! Parsing works on bytes and never allocates for `traceparent`; `tracestate` allocates
//! only for the [`TraceState`] it returns (and, when that cannot hold a Level 2 key, for the
//! list as received).

use super::{hex, ows};
use opentelemetry::trace::TraceState;

pub use super::format::name::{TRACEPARENT, TRACESTATE};

/// Flag bit: the caller may have recorded this trace.
pub const FLAG_SAMPLED: u8 = 0x01;
/// Flag bit (Level 2): at least the right-most 7 bytes of the trace id are random.
pub const FLAG_RANDOM: u8 = 0x02;
/// The flag bits this implementation understands and re-propagates.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// Length of a version-00 `traceparent` value.
const V00_LEN: usize = 55;
/// Most members a `tracestate` may hold before it is discarded.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Most bytes the `tracestate` lines (joined with commas) may hold before the list is
/// discarded unread: eight times the 512 W3C asks every vendor to propagate, and what keeps
/// every header one inject writes under 16 KiB.
pub const MAX_TRACESTATE_BYTES: usize = 4096;

/// A parsed, valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent {
    /// The version field as received (`00`, or a future version).
    pub version: u8,
    /// The 128-bit trace id, never zero.
    pub trace_id: u128,
    /// The caller's span id (the parent of the next span), never zero.
    pub parent_id: u64,
    /// The known flag bits (`sampled`, `random`); unknown bits are cleared as the spec says.
    pub flags: u8,
}

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceparentError {
    /// More than one `traceparent` value (several header lines or a comma list).
    #[error("more than one traceparent value")]
    Duplicate,
    /// Shorter than the 55 characters every version needs.
    #[error("traceparent is {0} bytes; at least 55 are needed")]
    TooShort(usize),
    /// The version is not two lowercase hex digits, or is the forbidden `ff`.
    #[error("invalid traceparent version")]
    InvalidVersion,
    /// A `-` separator is missing or misplaced.
    #[error("traceparent fields are not separated by '-' at the expected places")]
    Separator,
    /// The trace id is not 32 lowercase hex digits.
    #[error("traceparent trace-id is not 32 lowercase hex digits")]
    InvalidTraceId,
    /// The trace id is all zeros.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    #[error("traceparent parent-id is not 16 lowercase hex digits")]
    InvalidParentId,
    /// The parent id is all zeros.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent flags are not two lowercase hex digits")]
    InvalidFlags,
    /// Version 00 with anything after the flags, or a future version whose flags are not
    /// followed by the end or `-`.
    #[error("unexpected data after the traceparent flags")]
    TrailingData,
}

/// Why a `tracestate` was discarded (the trace itself is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TracestateError {
    /// More than 32 list members.
    #[error("tracestate has more than 32 members")]
    TooManyMembers,
    /// More than 4096 bytes, all lines together.
    #[error("tracestate is over 4096 bytes")]
    TooLong,
    /// A member has no `=`.
    #[error("tracestate member without '='")]
    MissingEquals,
    /// A key breaks the key grammar.
    #[error("invalid tracestate key")]
    InvalidKey,
    /// A value breaks the value grammar.
    #[error("invalid tracestate value")]
    InvalidValue,
}

/// Parses one `traceparent` value.
///
/// ```
/// use meshtrace::propagation::traceparent::{parse_traceparent, TraceparentError};
/// let tp = parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
/// assert_eq!(tp.parent_id, 0xb7ad6b7169203331);
/// assert_eq!(
///     parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x"),
///     Err(TraceparentError::TrailingData)
/// );
/// ```
pub fn parse_traceparent(value: &[u8]) -> Result<Traceparent, TraceparentError> {
    let v = ows::trim(value);
    if v.len() < V00_LEN {
        return Err(TraceparentError::TooShort(v.len()));
    }
    let version = hex::decode_u8(&v[0..2]).ok_or(TraceparentError::InvalidVersion)?;
    if version == 0xff {
        return Err(TraceparentError::InvalidVersion);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceparentError::Separator);
    }
    let trace_id = hex::decode_u128(&v[3..35]).ok_or(TraceparentError::InvalidTraceId)?;
    let parent_id = hex::decode_u64(&v[36..52]).ok_or(TraceparentError::InvalidParentId)?;
    let flags = hex::decode_u8(&v[53..55]).ok_or(TraceparentError::InvalidFlags)?;
    if v.len() > V00_LEN && (version == 0 || v[V00_LEN] != b'-') {
        return Err(TraceparentError::TrailingData);
    }
    if trace_id == 0 {
        return Err(TraceparentError::ZeroTraceId);
    }
    if parent_id == 0 {
        return Err(TraceparentError::ZeroParentId);
    }
    Ok(Traceparent {
        version,
        trace_id,
        parent_id,
        flags: flags & KNOWN_FLAGS,
    })
}

/// Writes a version-00 `traceparent`.
#[inline]
pub(crate) fn write_traceparent(trace_id: u128, span_id: u64, flags: u8) -> [u8; V00_LEN] {
    let mut out = [b'-'; V00_LEN];
    out[0] = b'0';
    out[1] = b'0';
    hex::encode_into(trace_id, &mut out[3..35]);
    hex::encode_into(u128::from(span_id), &mut out[36..52]);
    hex::encode_into(u128::from(flags & KNOWN_FLAGS), &mut out[53..55]);
    out
}

#[inline]
fn valid_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.len() <= 255
                && rest.iter().all(|&b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
                })
        }
        None => false,
    }
}

#[inline]
fn valid_value(value: &[u8]) -> bool {
    // Level 2: value = 0*255(chr) nblk-chr, so 1..=256 printable characters, not ending in a space.
    !value.is_empty()
        && value.len() <= 256
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// Splits a member at its first `=`, checking key and value; both are printable ASCII after.
#[inline]
fn split_member(member: &str) -> Result<(&str, &str), TracestateError> {
    let eq = member
        .as_bytes()
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TracestateError::MissingEquals)?;
    // `=` is ASCII, so this is a character boundary.
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    if !valid_key(key.as_bytes()) {
        return Err(TracestateError::InvalidKey);
    }
    if !valid_value(value.as_bytes()) {
        return Err(TracestateError::InvalidValue);
    }
    Ok((key, value))
}

/// [`split_member`] for a member that may not be UTF-8.
fn split_member_bytes(member: &[u8]) -> Result<(&str, &str), TracestateError> {
    let eq = member
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TracestateError::MissingEquals)?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    if !valid_key(key) {
        return Err(TracestateError::InvalidKey);
    }
    if !valid_value(value) {
        return Err(TracestateError::InvalidValue);
    }
    match (std::str::from_utf8(key), std::str::from_utf8(value)) {
        (Ok(k), Ok(v)) => Ok((k, v)),
        _ => Err(TracestateError::InvalidValue),
    }
}

/// The members of a valid `tracestate`, in order; a key's later duplicates are dropped.
struct Members<'a> {
    kv: [(&'a str, &'a str); MAX_TRACESTATE_MEMBERS],
    n: usize,
}

impl<'a> Members<'a> {
    fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.kv[..self.n]
    }
}

impl<'a> Members<'a> {
    /// Counts one more member received, and keeps it unless its key came before.
    #[inline]
    fn add(
        &mut self,
        received: &mut usize,
        split: impl FnOnce() -> Result<(&'a str, &'a str), TracestateError>,
    ) -> Result<(), TracestateError> {
        if *received == MAX_TRACESTATE_MEMBERS {
            return Err(TracestateError::TooManyMembers);
        }
        *received += 1;
        let (key, value) = split()?;
        // At most 32 members, so comparing with the earlier keys stays cheap.
        if !self.as_slice().iter().any(|&(k, _)| k == key) {
            self.kv[self.n] = (key, value);
            self.n += 1;
        }
        Ok(())
    }
}

/// Validates every non-empty member of the combined lines, trimmed (at most 32 as
/// received, duplicates counted), keeping the first occurrence of each key, into `m` (empty):
/// filled in place, as the list is a kilobyte of slices, not worth moving.
/// Returns how many non-empty members were received (duplicates counted).
fn members<'a>(lines: &'a [&'a [u8]], m: &mut Members<'a>) -> Result<usize, TracestateError> {
    let mut received = 0;
    for line in lines {
        // A line that is UTF-8 as a whole is checked once; else each member is checked as
        // bytes (a valid member is printable ASCII).
        match std::str::from_utf8(line) {
            Ok(text) => {
                for member in text.split(',').map(ows::trim_str) {
                    if !member.is_empty() {
                        m.add(&mut received, || split_member(member))?;
                    }
                }
            }
            Err(_) => {
                for member in line.split(|&b| b == b',').map(ows::trim) {
                    if !member.is_empty() {
                        m.add(&mut received, || split_member_bytes(member))?;
                    }
                }
            }
        }
    }
    Ok(received)
}

/// Parses the `tracestate` header lines, combined in order; a key's later duplicates are
/// dropped.
///
/// The result is what opentelemetry's [`TraceState`] can hold: it still applies Level 1's
/// multi-tenant key rule, so members with Level 2 keys such as `foo@@bar` or `a@b@c` are left
/// out of it (the propagator still forwards them: see [`MeshPropagator`]). An empty result
/// (no lines, or only empty members) is `TraceState::NONE`. Lines over
/// [`MAX_TRACESTATE_BYTES`] are discarded unread, and reading stops at a 33rd member.
///
/// ```
/// use meshtrace::propagation::traceparent::parse_tracestate;
/// let ts = parse_tracestate(&[b"congo=t61rcWkgMzE".as_slice(), b" rojo=00f067aa0ba902b7 ".as_slice()]).unwrap();
/// assert_eq!(ts.header(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// let ts = parse_tracestate(&[b"a=1,foo@@bar=2,a=3".as_slice()]).unwrap();
/// assert_eq!(ts.header(), "a=1");
/// ```
///
/// [`MeshPropagator`]: super::MeshPropagator
pub fn parse_tracestate(lines: &[&[u8]]) -> Result<TraceState, TracestateError> {
    read_tracestate(lines).map(|read| read.held)
}

/// What [`read_tracestate`] read.
pub(crate) struct ReadTracestate {
    /// What opentelemetry's `TraceState` can hold of the list.
    pub(crate) held: TraceState,
    /// The whole list (valid members joined by `,`, duplicates dropped), when `held` is not
    /// all of it.
    pub(crate) whole: Option<bytes::Bytes>,
    /// The list came as one line that is exactly what [`write_tracestate`] writes for
    /// `held`: no whitespace, empty member or duplicate key.
    pub(crate) as_written: bool,
}

/// Parses the `tracestate` lines into the trace state opentelemetry can hold and, when that
/// is not the whole list, the whole list, to be forwarded as received.
pub(crate) fn read_tracestate(lines: &[&[u8]]) -> Result<ReadTracestate, TracestateError> {
    let joined = lines.iter().map(|l| l.len() + 1).sum::<usize>();
    if joined > MAX_TRACESTATE_BYTES + 1 {
        return Err(TracestateError::TooLong);
    }
    let mut m = Members {
        kv: [("", ""); MAX_TRACESTATE_MEMBERS],
        n: 0,
    };
    let received = members(lines, &mut m)?;
    let kv = m.as_slice();
    if kv.is_empty() {
        return Ok(ReadTracestate {
            held: TraceState::NONE,
            whole: None,
            as_written: false,
        });
    }
    if let Ok(held) = TraceState::from_key_value(kv.iter().copied()) {
        // Every member was kept and the line holds nothing but them, `=` and `,`.
        let as_written = matches!(lines, [line] if received == kv.len()
            && line.len() + 1 == kv.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>());
        return Ok(ReadTracestate {
            held,
            whole: None,
            as_written,
        });
    }
    // Some key is Level 2 only: the SpanContext gets every member opentelemetry accepts.
    let held = TraceState::from_key_value(
        kv.iter()
            .copied()
            .filter(|&member| TraceState::from_key_value([member]).is_ok()),
    )
    .unwrap_or(TraceState::NONE);
    let mut whole = Vec::with_capacity(kv.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (key, value)) in kv.iter().enumerate() {
        if i > 0 {
            whole.push(b',');
        }
        whole.extend_from_slice(key.as_bytes());
        whole.push(b'=');
        whole.extend_from_slice(value.as_bytes());
    }
    Ok(ReadTracestate {
        held,
        whole: Some(whole.into()),
        as_written: false,
    })
}

/// True when `line` is exactly what [`write_tracestate`] writes for `ts` (its members as
/// `key=value` joined by `,`, nothing else): a line received so can go out again as it is.
/// Compares bytes, allocates nothing.
pub(crate) fn is_written_as(ts: &TraceState, line: &[u8]) -> bool {
    let mut rest = line;
    for (i, (key, value)) in ts.into_iter().enumerate() {
        if i > 0 {
            let Some(r) = rest.strip_prefix(b",") else {
                return false;
            };
            rest = r;
        }
        let Some(r) = rest
            .strip_prefix(key.as_bytes())
            .and_then(|r| r.strip_prefix(b"="))
            .and_then(|r| r.strip_prefix(value.as_bytes()))
        else {
            return false;
        };
        rest = r;
    }
    rest.is_empty() && !line.is_empty()
}

/// Writes a trace state as one header line, leaving it empty if any member is invalid
/// (a `TraceState` built in code is checked less strictly than the W3C grammar) or if it
/// would pass [`MAX_TRACESTATE_BYTES`].
pub(crate) fn write_tracestate(ts: &TraceState, out: &mut Vec<u8>) {
    let start = out.len();
    for (i, (key, value)) in ts.into_iter().enumerate() {
        if i == MAX_TRACESTATE_MEMBERS
            || !valid_key(key.as_bytes())
            || !valid_value(value.as_bytes())
        {
            out.truncate(start);
            return;
        }
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    // A trace state built in code is not held to the limit on receive; it is on send.
    if out.len() - start > MAX_TRACESTATE_BYTES {
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_written_as_is_only_when_writing_gives_its_bytes() {
        let ts =
            parse_tracestate(&[b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".as_slice()]).unwrap();
        let mut written = Vec::new();
        write_tracestate(&ts, &mut written);
        assert!(is_written_as(&ts, &written));
        for line in [
            "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,,congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,rojo=1",
            "rojo=00f067aa0ba902b7",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,",
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            "",
        ] {
            assert!(!is_written_as(&ts, line.as_bytes()), "{line}");
            let read = read_tracestate(&[line.as_bytes()]);
            assert!(!read.is_ok_and(|r| r.as_written && r.held == ts), "{line}");
        }
        assert!(!is_written_as(&TraceState::NONE, b""));
    }
}
