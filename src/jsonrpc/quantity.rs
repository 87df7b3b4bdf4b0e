//! Ethereum-style hex quantities (`"0x1f"`), the only number format on the wire.

/// Parses a `0x`-prefixed quantity that fits in a u64.
pub fn parse_quantity(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Formats a number as a quoted JSON quantity: `"0x1f"`. Written out by hand: it runs once
/// per `latest` rewrite on the hot path, where `format!`'s machinery showed in the profile.
pub fn format_quantity(n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1);
    let mut s = String::with_capacity(4 + 16);
    s.push_str("\"0x");
    for i in (0..digits).rev() {
        let nibble = (n >> (i * 4)) & 0xf;
        s.push(char::from(HEX.get(nibble as usize).copied().unwrap_or(b'0')));
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_quantity("0x1f"), Some(31));
        assert_eq!(parse_quantity("0X0"), Some(0));
        assert_eq!(parse_quantity("0x"), None);
        assert_eq!(parse_quantity("12"), None);
        assert_eq!(parse_quantity("0xzz"), None);
        assert_eq!(parse_quantity("0x10000000000000000"), None);
        assert_eq!(format_quantity(31), "\"0x1f\"");
        assert_eq!(format_quantity(0), "\"0x0\"");
    }

    #[test]
    fn formats_as_format_does() {
        let mut n = 1u64;
        for shift in 0..64 {
            for m in [n, n - 1, n | 0xf, n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift] {
                assert_eq!(format_quantity(m), format!("\"{m:#x}\""), "{m}");
            }
            n = 1 << shift;
        }
        assert_eq!(format_quantity(u64::MAX), "\"0xffffffffffffffff\"");
    }
}
