//! Ethereum-style hex quantities (`"0x1f"`), the only number format on the wire.

/// Parses a `0x`-prefixed quantity that fits in a u64.
pub fn parse_quantity(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Formats a number as a quoted JSON quantity: `"0x1f"`.
pub fn format_quantity(n: u64) -> String {
    format!("\"{n:#x}\"")
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
}
