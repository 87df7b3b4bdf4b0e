//! Strict, borrowing RLP reading for transaction decoding: items keep their encoded bytes (so signing hashes
//! are rebuilt from the wire bytes, never re-encoded), and field readers enforce the canonical forms Klaytn's
//! decoder demands (minimal lengths, no leading zeros, exact address sizes). No allocation beyond the item
//! list of one RLP list; never panics on any input.

use alloy_rlp::{Encodable, Header};
use sha3::{Digest, Keccak256};
use thiserror::Error;

/// Why bytes are not well-formed canonical RLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RlpError {
    /// A header or payload runs past the end of the input.
    #[error("input too short")]
    Truncated,
    /// A length or single byte is not in its shortest form.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// A byte string where a list belongs.
    #[error("expected a list")]
    ExpectedList,
}

impl From<alloy_rlp::Error> for RlpError {
    fn from(e: alloy_rlp::Error) -> Self {
        match e {
            alloy_rlp::Error::LeadingZero
            | alloy_rlp::Error::NonCanonicalSingleByte
            | alloy_rlp::Error::NonCanonicalSize => RlpError::NonCanonical,
            // InputTooShort, and Custom("Input too big") for a length beyond usize: the input is shorter anyway.
            _ => RlpError::Truncated,
        }
    }
}

/// One RLP item: its full encoding (header included) and its payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    /// The item exactly as on the wire; signing hashes splice these bytes.
    pub encoded: &'a [u8],
    /// The payload after the header.
    pub payload: &'a [u8],
    /// Whether the item is a list (else a byte string).
    pub list: bool,
}

/// Reads one item off the front of `buf`, advancing it.
pub(crate) fn read<'a>(buf: &mut &'a [u8]) -> Result<Item<'a>, RlpError> {
    let start = *buf;
    let header = Header::decode(buf)?;
    // Header::decode checked that `payload_length` bytes remain; `get` keeps that a non-panicking fact here.
    let payload = buf.get(..header.payload_length).ok_or(RlpError::Truncated)?;
    *buf = buf.get(header.payload_length..).ok_or(RlpError::Truncated)?;
    let consumed = start.len().checked_sub(buf.len()).ok_or(RlpError::Truncated)?;
    let encoded = start.get(..consumed).ok_or(RlpError::Truncated)?;
    Ok(Item {
        encoded,
        payload,
        list: header.list,
    })
}

/// The items of a list item (fails on a byte string).
pub(crate) fn items<'a>(item: &Item<'a>) -> Result<Vec<Item<'a>>, RlpError> {
    if !item.list {
        return Err(RlpError::ExpectedList);
    }
    let mut rest = item.payload;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(read(&mut rest)?);
    }
    Ok(out)
}

/// Why a well-formed item is not the value a field needs (combined with the field name by the caller).
pub(crate) type FieldResult<T> = Result<T, &'static str>;

impl<'a> Item<'a> {
    /// The payload of a byte string.
    pub fn bytes(&self) -> FieldResult<&'a [u8]> {
        if self.list {
            return Err("expected a byte string, got a list");
        }
        Ok(self.payload)
    }

    /// A big-endian unsigned integer of at most `max_bytes` bytes, minimal (no leading zero; 0 is empty).
    pub fn uint_bytes(&self, max_bytes: usize) -> FieldResult<&'a [u8]> {
        let b = self.bytes()?;
        if b.first() == Some(&0) {
            return Err("integer with a leading zero byte");
        }
        if b.len() > max_bytes {
            return Err("integer too large");
        }
        Ok(b)
    }

    /// A canonical integer that fits in 64 bits.
    pub fn u64(&self) -> FieldResult<u64> {
        let b = self.uint_bytes(8)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A canonical integer that fits in 8 bits.
    pub fn u8(&self) -> FieldResult<u8> {
        u8::try_from(self.u64()?).map_err(|_| "integer too large")
    }

    /// A canonical integer that fits in 256 bits (amounts, prices, R and S), returned as minimal bytes.
    pub fn u256(&self) -> FieldResult<&'a [u8]> {
        self.uint_bytes(32)
    }

    /// Go RLP's bool: 0x80 is false, 0x01 is true, anything else an error.
    pub fn bool(&self) -> FieldResult<bool> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("boolean neither 0 nor 1"),
        }
    }

    /// Exactly 20 bytes.
    pub fn address(&self) -> FieldResult<[u8; 20]> {
        <[u8; 20]>::try_from(self.bytes()?).map_err(|_| "address not 20 bytes")
    }

    /// 20 bytes, or empty for "none" (contract creation).
    pub fn opt_address(&self) -> FieldResult<Option<[u8; 20]>> {
        if self.bytes()?.is_empty() {
            return Ok(None);
        }
        self.address().map(Some)
    }

    /// Exactly 32 bytes (access-list storage keys).
    pub fn bytes32(&self) -> FieldResult<[u8; 32]> {
        <[u8; 32]>::try_from(self.bytes()?).map_err(|_| "storage key not 32 bytes")
    }
}

/// keccak256 of the concatenation of `parts`.
pub(crate) fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// keccak256(`prefix` || rlp-list of `items`), where each item is already RLP-encoded: the signing hashes
/// and Klaytn's SenderTxHash, built from the wire bytes of the fields.
pub(crate) fn keccak_list(prefix: &[u8], items: &[&[u8]]) -> [u8; 32] {
    let payload_length = items.iter().map(|i| i.len()).sum();
    let mut header = Vec::with_capacity(9);
    Header {
        list: true,
        payload_length,
    }
    .encode(&mut header);
    let mut h = Keccak256::new();
    h.update(prefix);
    h.update(&header);
    for i in items {
        h.update(i);
    }
    h.finalize().into()
}

/// The RLP encoding of an unsigned integer (EIP-155's chain id in the legacy signing hash).
pub(crate) fn encode_u64(v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    v.encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` as one item and applies `f` to it; Err strings are RlpError or field reasons.
    fn check<T: PartialEq + std::fmt::Debug>(
        input: &[u8],
        f: fn(&Item) -> FieldResult<T>,
        expected: Result<T, String>,
    ) {
        let mut buf = input;
        let got = match read(&mut buf) {
            Err(e) => Err(e.to_string()),
            Ok(_) if !buf.is_empty() => Err("trailing".to_string()),
            Ok(item) => f(&item).map_err(str::to_string),
        };
        assert_eq!(got, expected, "input {input:02x?}");
    }

    #[test]
    fn integers() {
        let u64f: fn(&Item) -> FieldResult<u64> = |i| i.u64();
        let cases: &[(&[u8], Result<u64, &str>)] = &[
            (&[0x80], Ok(0)),
            (&[0x01], Ok(1)),
            (&[0x7f], Ok(0x7f)),
            (&[0x81, 0x80], Ok(0x80)),
            (&[0x82, 0x04, 0x00], Ok(0x400)),
            (&[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Ok(u64::MAX)),
            (&[0x00], Err("integer with a leading zero byte")),
            (&[0x82, 0x00, 0x01], Err("integer with a leading zero byte")),
            (&[0x81, 0x05], Err("non-canonical encoding")),
            (&[0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0], Err("integer too large")),
            (&[0xc0], Err("expected a byte string, got a list")),
            (&[0x82, 0x01], Err("input too short")),
            (&[], Err("input too short")),
        ];
        for (input, expected) in cases {
            check(input, u64f, expected.map_err(str::to_string));
        }
    }

    #[test]
    fn headers() {
        let len: fn(&Item) -> FieldResult<usize> = |i| Ok(i.payload.len());
        let long = [&[0xb8, 56][..], &[7u8; 56]].concat();
        let cases: &[(&[u8], Result<usize, &str>)] = &[
            (&long, Ok(56)),
            (&[0xb8, 55], Err("non-canonical encoding")), // long form for a short string
            (&[0xb9, 0x00, 0x40], Err("non-canonical encoding")), // length with a leading zero
            (
                &[0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Err("input too short"),
            ), // 2^64-1 bytes
            (
                &[0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Err("input too short"),
            ),
            (&[0xf8], Err("input too short")),
            (&[0xc1, 0x80], Ok(1)),
        ];
        for (input, expected) in cases {
            check(input, len, expected.map_err(str::to_string));
        }
    }

    #[test]
    fn addresses_and_bools() {
        let addr = [&[0x94][..], &[0xaa; 20]].concat();
        check(&addr, |i| i.address(), Ok([0xaa; 20]));
        check(&addr, |i| i.opt_address(), Ok(Some([0xaa; 20])));
        check(&[0x80], |i| i.opt_address(), Ok(None));
        check(
            &[
                0x93, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
                0xaa, 0xaa, 0xaa,
            ],
            |i| i.address(),
            Err("address not 20 bytes".into()),
        );
        check(&[0x80], |i| i.bool(), Ok(false));
        check(&[0x01], |i| i.bool(), Ok(true));
        check(&[0x02], |i| i.bool(), Err("boolean neither 0 nor 1".into()));
    }

    #[test]
    fn list_items_keep_their_encoding() {
        let input = [0xc4, 0x01, 0x82, 0x04, 0x00];
        let mut buf = &input[..];
        let list = read(&mut buf).unwrap();
        let items = items(&list).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].encoded, &[0x01]);
        assert_eq!(items[1].encoded, &[0x82, 0x04, 0x00]);
        assert_eq!(
            keccak_list(&[], &[items[0].encoded, items[1].encoded]),
            keccak(&[&input])
        );
        assert_eq!(encode_u64(1337), vec![0x82, 0x05, 0x39]);
        assert_eq!(super::items(&items[0]).unwrap_err(), RlpError::ExpectedList);
    }
}
