//! The lowercase-hex codec shared by every format.
//!
//! W3C and B3 both require lowercase hex, so decoding rejects uppercase instead of
//! folding it: an id that a peer wrote in uppercase is a broken peer, not a variant.

/// Decoded value of one lowercase hex digit, or `0xff` for anything else.
const DECODE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const ENCODE: &[u8; 16] = b"0123456789abcdef";

/// Decodes up to 32 lowercase hex digits into an integer; `None` on any other byte,
/// on an empty input or on more than 32 digits.
#[inline]
pub(crate) fn decode_u128(hex: &[u8]) -> Option<u128> {
    if hex.is_empty() || hex.len() > 32 {
        return None;
    }
    let mut acc: u128 = 0;
    for &b in hex {
        let v = DECODE[b as usize];
        if v == 0xff {
            return None;
        }
        acc = (acc << 4) | u128::from(v);
    }
    Some(acc)
}

/// Decodes up to 16 lowercase hex digits.
#[inline]
pub(crate) fn decode_u64(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    let mut acc: u64 = 0;
    for &b in hex {
        let v = DECODE[b as usize];
        if v == 0xff {
            return None;
        }
        acc = (acc << 4) | u64::from(v);
    }
    Some(acc)
}

/// Decodes exactly two lowercase hex digits.
#[inline]
pub(crate) fn decode_u8(hex: &[u8]) -> Option<u8> {
    match hex {
        [hi, lo] => {
            let (h, l) = (DECODE[*hi as usize], DECODE[*lo as usize]);
            (h != 0xff && l != 0xff).then_some((h << 4) | l)
        }
        _ => None,
    }
}

/// Writes `value` as exactly `out.len()` lowercase hex digits (most significant first).
#[inline]
pub(crate) fn encode_into(mut value: u128, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = ENCODE[(value & 0xf) as usize];
        value >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let mut buf = [0u8; 32];
        encode_into(0x0af7651916cd43dd8448eb211c80319c, &mut buf);
        assert_eq!(&buf, b"0af7651916cd43dd8448eb211c80319c");
        assert_eq!(decode_u128(&buf), Some(0x0af7651916cd43dd8448eb211c80319c));
        assert_eq!(decode_u128(b"0AF7"), None);
        assert_eq!(decode_u128(b""), None);
        assert_eq!(decode_u128(&[b'0'; 33]), None);
        assert_eq!(decode_u64(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(decode_u64(b"g"), None);
        assert_eq!(decode_u8(b"01"), Some(1));
        assert_eq!(decode_u8(b"1"), None);
        assert_eq!(decode_u8(b"0F"), None);
    }
}
