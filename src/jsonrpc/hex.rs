//! Hex on the wire: `0x`-prefixed lowercase for what kengate writes, either case for what it
//! reads. The one place bytes become hex and back.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex digits, no prefix.
pub fn hex_digits(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_digits(&mut s, bytes);
    s
}

/// `0x` + lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    push_digits(&mut s, bytes);
    s
}

fn push_digits(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 15] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                s.push(char::from(d));
            }
        }
    }
}

/// Parses `0x` + exactly `2N` hex digits (either case).
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    unhex_digits(s.strip_prefix("0x")?)
}

/// Parses exactly `2N` hex digits (either case), no prefix.
pub fn unhex_digits<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex::<2>("0xabCD"), Some([0xab, 0xcd]));
        assert_eq!(hex(&[0xab, 0xcd]), "0xabcd");
        assert_eq!(hex_digits(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(unhex::<2>("0xabc"), None);
        assert_eq!(unhex::<2>("abcd"), None);
        assert_eq!(unhex::<2>("0x+bcd"), None);
        assert_eq!(unhex_digits::<2>("ABcd"), Some([0xab, 0xcd]));
        assert_eq!(unhex_digits::<2>("0xab"), None);
    }
}
