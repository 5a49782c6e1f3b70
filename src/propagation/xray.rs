//! AWS X-Ray: `X-Amzn-Trace-Id: Root=1-{8 hex epoch}-{24 hex};Parent={16 hex};Sampled={0|1}`
//! (SPECS.md section 7). Fields come in any order; the ones this format does not read
//! (`Lineage`, `Self`, ...) are kept verbatim and passed on.

use super::b3::SamplingState;
use super::{hex, ows};

pub use super::format::name::X_AMZN_TRACE_ID;

/// Bound on the fields passed through untouched, in bytes (joined by `;`).
pub const MAX_OTHER_LEN: usize = 256;

/// An X-Ray context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XRayContext {
    /// The 32 hex digits of epoch and random part, as one trace id.
    pub trace_id: u128,
    /// The caller's segment id (`Parent`).
    pub span_id: u64,
    /// `Accept`, `Deny`, or `Deferred` for `Sampled=?` and an absent flag.
    pub sampling: SamplingState,
    /// The other fields, verbatim, joined by `;` (`Lineage=...`); empty when none.
    pub other: String,
}

/// Why an `X-Amzn-Trace-Id` header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XRayError {
    /// A field without `=`, or one that is not visible ASCII.
    #[error("X-Amzn-Trace-Id has a field that is not `key=value` in visible ASCII")]
    Field,
    /// No `Root` field.
    #[error("X-Amzn-Trace-Id has no Root")]
    MissingRoot,
    /// `Root` is not `1-{8 hex}-{24 hex}` in lowercase hex.
    #[error("X-Amzn-Trace-Id Root is not 1-{{8 hex}}-{{24 hex}}")]
    InvalidRoot,
    /// `Root` is all zeros.
    #[error("X-Amzn-Trace-Id Root is all zeros")]
    ZeroRoot,
    /// No `Parent` field: there is no span to be the child of.
    #[error("X-Amzn-Trace-Id has no Parent")]
    MissingParent,
    /// `Parent` is not 16 lowercase hex digits.
    #[error("X-Amzn-Trace-Id Parent is not 16 lowercase hex digits")]
    InvalidParent,
    /// `Parent` is all zeros.
    #[error("X-Amzn-Trace-Id Parent is all zeros")]
    ZeroParent,
    /// `Sampled` is none of `0`, `1`, `?`.
    #[error("X-Amzn-Trace-Id Sampled is none of 0, 1, ?")]
    InvalidSampled,
    /// `Root`, `Parent` or `Sampled` given twice, or the header sent more than once.
    #[error("X-Amzn-Trace-Id field or header given more than once")]
    Duplicate,
    /// The fields passed through are longer than [`MAX_OTHER_LEN`].
    #[error("X-Amzn-Trace-Id fields to pass on exceed {MAX_OTHER_LEN} bytes")]
    OtherTooLong,
}

fn root(v: &[u8]) -> Result<u128, XRayError> {
    if v.len() != 35 || !v.starts_with(b"1-") || v[10] != b'-' {
        return Err(XRayError::InvalidRoot);
    }
    let high = hex::decode_u128(&v[2..10]).ok_or(XRayError::InvalidRoot)?;
    let low = hex::decode_u128(&v[11..]).ok_or(XRayError::InvalidRoot)?;
    match (high << 96) | low {
        0 => Err(XRayError::ZeroRoot),
        id => Ok(id),
    }
}

fn parent(v: &[u8]) -> Result<u64, XRayError> {
    if v.len() != 16 {
        return Err(XRayError::InvalidParent);
    }
    match hex::decode_u64(v) {
        Some(0) => Err(XRayError::ZeroParent),
        Some(id) => Ok(id),
        None => Err(XRayError::InvalidParent),
    }
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), XRayError> {
    match slot.replace(value) {
        Some(_) => Err(XRayError::Duplicate),
        None => Ok(()),
    }
}

/// Parses an `X-Amzn-Trace-Id` value.
///
/// ```
/// use meshtrace::propagation::xray::parse_xray;
/// use meshtrace::SamplingState;
/// let cx = parse_xray(b"Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1|68fd508a:5;Parent=53995c3f42cd8ad8;Sampled=?").unwrap();
/// assert_eq!(cx.trace_id, 0x5759e988bd862e3fe1be46a994272793);
/// assert_eq!(cx.sampling, SamplingState::Deferred);
/// assert_eq!(cx.other, "Lineage=a87bd80c:1|68fd508a:5");
/// ```
pub fn parse_xray(value: &[u8]) -> Result<XRayContext, XRayError> {
    let (mut trace_id, mut span_id, mut sampling) = (None, None, None);
    let mut other: Vec<u8> = Vec::new();
    for field in value.split(|&b| b == b';') {
        let field = ows::trim(field);
        if field.is_empty() {
            continue;
        }
        let eq = field
            .iter()
            .position(|&b| b == b'=')
            .ok_or(XRayError::Field)?;
        let (k, v) = (ows::trim(&field[..eq]), ows::trim(&field[eq + 1..]));
        match k {
            b"Root" => set(&mut trace_id, root(v)?)?,
            b"Parent" => set(&mut span_id, parent(v)?)?,
            b"Sampled" => set(
                &mut sampling,
                match v {
                    b"1" => SamplingState::Accept,
                    b"0" => SamplingState::Deny,
                    b"?" => SamplingState::Deferred,
                    _ => return Err(XRayError::InvalidSampled),
                },
            )?,
            _ => {
                if !field.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
                    return Err(XRayError::Field);
                }
                let sep = usize::from(!other.is_empty());
                if other.len() + sep + field.len() > MAX_OTHER_LEN {
                    return Err(XRayError::OtherTooLong);
                }
                if sep == 1 {
                    other.push(b';');
                }
                other.extend_from_slice(field);
            }
        }
    }
    Ok(XRayContext {
        trace_id: trace_id.ok_or(XRayError::MissingRoot)?,
        span_id: span_id.ok_or(XRayError::MissingParent)?,
        sampling: sampling.unwrap_or(SamplingState::Deferred),
        // Only visible ASCII and spaces were kept.
        other: String::from_utf8(other).unwrap_or_default(),
    })
}

/// Appends `Root=1-{8}-{24};Parent={16}[;Sampled={0|1}][;{other}]`; a deferred decision
/// leaves `Sampled` out.
pub(crate) fn write_xray(
    trace_id: u128,
    span_id: u64,
    sampling: SamplingState,
    other: &str,
    out: &mut Vec<u8>,
) {
    let mut id = [0u8; 32];
    hex::encode_into(trace_id, &mut id);
    out.extend_from_slice(b"Root=1-");
    out.extend_from_slice(&id[..8]);
    out.push(b'-');
    out.extend_from_slice(&id[8..]);
    out.extend_from_slice(b";Parent=");
    let mut span = [0u8; 16];
    hex::encode_into(u128::from(span_id), &mut span);
    out.extend_from_slice(&span);
    match sampling.is_sampled() {
        Some(true) => out.extend_from_slice(b";Sampled=1"),
        Some(false) => out.extend_from_slice(b";Sampled=0"),
        None => {}
    }
    if !other.is_empty() {
        out.push(b';');
        out.extend_from_slice(other.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let mut out = Vec::new();
        write_xray(
            1 << 100 | 5,
            9,
            SamplingState::Accept,
            "Lineage=x:1",
            &mut out,
        );
        let cx = parse_xray(&out).unwrap();
        assert_eq!((cx.trace_id, cx.span_id), (1 << 100 | 5, 9));
        assert_eq!(
            (cx.sampling, cx.other.as_str()),
            (SamplingState::Accept, "Lineage=x:1")
        );
    }
}
