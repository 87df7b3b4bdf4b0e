//! What a KAS Token History request asks, read strictly: its query parameters (`kind`,
//! `range`, `size`, `cursor`, `ca-filter(s)`, `exclude-zero-klay`, `from-only`, `to-only`,
//! `status`, `type`, `presets`), path addresses, hashes and token ids, the opaque cursors, and
//! KAS's `{code, message}` errors for each way they can be wrong. Pure: no store, no clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ruint::aliases::U256;
use sha2::{Digest, Sha256};

use crate::txpath::lifecycle::unhex;

/// KAS's default page size, and its largest.
pub const DEFAULT_SIZE: usize = 100;
/// The largest page.
pub const MAX_SIZE: usize = 1000;
/// The most contracts one `ca-filter(s)` may name.
pub const MAX_CA_FILTERS: usize = 100;

/// A KAS error: HTTP status, KAS code, message (`[Kind]detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KasError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl KasError {
    /// 400 1040010: a query parameter is wrong.
    pub fn query(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 400,
            code: 1040010,
            message: format!("[InvalidQueryParameterValue]{detail}"),
        }
    }

    /// 400 1040011: a query parameter is out of its range.
    pub fn range(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 400,
            code: 1040011,
            message: format!("[OutOfRangeQueryParameterValue]{detail}"),
        }
    }

    /// 400 1040020: a path segment is wrong.
    pub fn uri(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 400,
            code: 1040020,
            message: format!("[InvalidUriValue]{detail}"),
        }
    }

    /// 404 1040400: nothing there.
    pub fn not_found(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 404,
            code: 1040400,
            message: format!("[ResourceNotFound]{detail}"),
        }
    }

    /// 400 1040030: a request body is wrong (presets).
    pub fn body(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 400,
            code: 1040030,
            message: format!("[InvalidBodyValue]{detail}"),
        }
    }

    /// 404 1010007: no such path or method (KAS's own wording).
    pub fn no_route() -> Self {
        Self {
            status: 404,
            code: 1010007,
            message: "The path or method in request is invalid. Check the service API documentation and try again."
                .into(),
        }
    }

    /// 500 1040500: the index store failed.
    pub fn store(detail: impl std::fmt::Display) -> Self {
        Self {
            status: 500,
            code: 1040500,
            message: format!("[InternalServerError]{detail}"),
        }
    }
}

/// A request's query parameters, percent-decoded; a parameter given twice is an error.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Reads a query string.
    pub fn parse(query: &str) -> Result<Self, KasError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if out.iter().any(|(have, _)| *have == k) {
                return Err(KasError::query(format!("{k} given twice")));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(out))
    }

    /// A parameter's value (`None` when absent or empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every parameter except `cursor` and `size`, sorted: what a cursor is bound to.
    fn shape(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "cursor" && k != "size")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.sort_unstable();
        v
    }

    /// `size`: absent or 0 → 100; 1..=1000 as given; anything else is refused.
    pub fn size(&self) -> Result<usize, KasError> {
        match self.get("size") {
            None => Ok(DEFAULT_SIZE),
            Some(s) => match s.parse::<i64>() {
                Ok(0) => Ok(DEFAULT_SIZE),
                Ok(n) if (1..=MAX_SIZE as i64).contains(&n) => Ok(n as usize),
                Ok(_) => Err(KasError::range("invalid size: min=1, max=1000")),
                Err(_) => Err(KasError::query("invalid size")),
            },
        }
    }

    /// A `true` / `false` flag (default false).
    pub fn flag(&self, key: &str) -> Result<bool, KasError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(KasError::query(format!("invalid {key}"))),
        }
    }

    /// `kind` as kind bits (KLAY 1, FT 2, NFT 4, MT 8): every allowed kind when absent.
    pub fn kinds(&self, allowed: u8) -> Result<u8, KasError> {
        let Some(list) = self.get("kind") else {
            return Ok(allowed);
        };
        let mut bits = 0u8;
        for k in list.split(',').map(str::trim) {
            let bit = match k.to_ascii_lowercase().as_str() {
                "klay" | "kaia" => 1,
                "ft" => 2,
                "nft" => 4,
                "mt" => 8,
                _ => 0,
            };
            if bit & allowed == 0 {
                return Err(KasError::query(format!("invalid kind:{k}")));
            }
            bits |= bit;
        }
        Ok(bits)
    }

    /// A comma-separated list of contract addresses (`ca-filter`, `ca-filters`).
    pub fn contracts(&self, key: &str) -> Result<Vec<[u8; 20]>, KasError> {
        let Some(list) = self.get(key) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let a = address(a).ok_or_else(|| KasError::query(format!("invalid address: {a}")))?;
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.len() > MAX_CA_FILTERS {
            return Err(KasError::query(format!("too many {key} query value")));
        }
        Ok(out)
    }

    /// `range`: `from[,to]`, both decimal (unix seconds) or both `0x` hex (block numbers).
    pub fn range(&self) -> Result<Option<Range>, KasError> {
        let Some(r) = self.get("range") else { return Ok(None) };
        let parts: Vec<&str> = r.split(',').map(str::trim).collect();
        let (from, to) = match parts.as_slice() {
            [from] => (*from, None),
            [from, to] => (*from, Some(*to)),
            _ => return Err(KasError::query("invalid range")),
        };
        let hex = from.starts_with("0x");
        let num = |s: &str| -> Option<u64> {
            match hex {
                true => s.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()),
                false => s.parse().ok(),
            }
        };
        let lo = num(from).ok_or_else(|| KasError::query("invalid range"))?;
        let hi = match to {
            Some(t) if t.starts_with("0x") != hex => {
                return Err(KasError::query("invalid range: from and to in different formats"))
            }
            Some(t) => num(t).ok_or_else(|| KasError::query("invalid range"))?,
            None => u64::MAX,
        };
        if lo > hi {
            return Err(KasError::range(match hex {
                true => "invalid block range",
                false => "invalid timestamp range",
            }));
        }
        Ok(Some(match hex {
            true => Range::Blocks(lo, hi),
            false => Range::Times(lo, hi),
        }))
    }

    /// `presets`: a comma-separated list of preset ids (required).
    pub fn presets(&self) -> Result<Vec<i64>, KasError> {
        let Some(list) = self.get("presets") else {
            return Err(KasError::query("required presets"));
        };
        let mut out = Vec::new();
        for p in list.split(',').map(str::trim) {
            let id: i64 = p
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| KasError::query("invalid presets query"))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        if out.len() > MAX_CA_FILTERS {
            return Err(KasError::query("too many presets"));
        }
        Ok(out)
    }

    /// `status` of a contract list: one of KAS's labelling states.
    pub fn status(&self) -> Result<Option<&str>, KasError> {
        match self.get("status") {
            None => Ok(None),
            Some(s @ ("completed" | "processing" | "failed" | "cancelled")) => Ok(Some(s)),
            Some(_) => Err(KasError::query("invalid query value")),
        }
    }

    /// `type` of a contract list: one of the two standards of its kind.
    pub fn standard(&self, allowed: [&'static str; 2]) -> Result<Option<&'static str>, KasError> {
        match self.get("type") {
            None => Ok(None),
            Some(t) => allowed
                .into_iter()
                .find(|a| a.eq_ignore_ascii_case(t))
                .map(Some)
                .ok_or_else(|| KasError::query("invalid query value")),
        }
    }

    /// The cursor's position, if one was given; refused when it was made for another query.
    pub fn cursor(&self, route: &str, network: &str) -> Result<Option<Vec<String>>, KasError> {
        let Some(c) = self.get("cursor") else { return Ok(None) };
        let bad = || KasError::query("invalid cursor");
        let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let (mac, body) = raw.split_at_checked(8).ok_or_else(bad)?;
        if mac != self.fingerprint(route, network) {
            return Err(bad());
        }
        let parts: Vec<String> = serde_json::from_slice(body).map_err(|_| bad())?;
        Ok(Some(parts))
    }

    /// A cursor holding `position`, bound to this query (all but `cursor` and `size`).
    pub fn make_cursor(&self, route: &str, network: &str, position: &[String]) -> String {
        let mut raw = self.fingerprint(route, network).to_vec();
        raw.extend(serde_json::to_vec(position).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn fingerprint(&self, route: &str, network: &str) -> [u8; 8] {
        let mut h = Sha256::new();
        h.update(network.as_bytes());
        h.update([0]);
        h.update(route.as_bytes());
        for (k, v) in self.shape() {
            h.update([0]);
            h.update(k.as_bytes());
            h.update([1]);
            h.update(v.as_bytes());
        }
        // The first 8 bytes of the 32-byte digest.
        h.finalize().first_chunk::<8>().copied().unwrap_or_default()
    }
}

/// Bounds a `range` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Block numbers, inclusive.
    Blocks(u64, u64),
    /// Unix seconds, inclusive.
    Times(u64, u64),
}

/// A `0x` address of 40 hex digits (either case).
pub fn address(s: &str) -> Option<[u8; 20]> {
    if s.len() != 42 || !s.starts_with("0x") {
        return None;
    }
    unhex::<20>(&s.to_ascii_lowercase())
}

/// A `0x` hash of 64 hex digits.
pub fn hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 66 || !s.starts_with("0x") {
        return None;
    }
    unhex::<32>(&s.to_ascii_lowercase())
}

/// A token id in `0x` hex (at most 64 digits), as its 32-byte big-endian form.
pub fn token_id(s: &str) -> Option<[u8; 32]> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    U256::from_str_radix(digits, 16).ok().map(|v| v.to_be_bytes::<32>())
}

/// A cursor part as a number.
pub fn part_u64(p: Option<&String>) -> Result<u64, KasError> {
    p.and_then(|s| s.parse().ok())
        .ok_or_else(|| KasError::query("invalid cursor"))
}

/// A cursor part as bytes (hex).
pub fn part_bytes(p: Option<&String>) -> Result<Vec<u8>, KasError> {
    let p = p.ok_or_else(|| KasError::query("invalid cursor"))?;
    if p.len() % 2 != 0 || p.len() > 128 {
        return Err(KasError::query("invalid cursor"));
    }
    (0..p.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(p.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| KasError::query("invalid cursor"))
}

/// Bytes as a cursor part.
pub fn bytes_part(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_as_kas_reads_them() {
        let q = Params::parse("kind=ft,nft&size=0&range=0x10,0x20&exclude-zero-klay=TRUE&ca-filter=0xAb00000000000000000000000000000000000001%2C0xab00000000000000000000000000000000000001").unwrap();
        assert_eq!(q.kinds(15), Ok(6));
        assert_eq!(q.size(), Ok(100));
        assert_eq!(q.range(), Ok(Some(Range::Blocks(16, 32))));
        assert_eq!(q.flag("exclude-zero-klay"), Ok(true));
        assert_eq!(q.flag("from-only"), Ok(false));
        assert_eq!(q.contracts("ca-filter").unwrap().len(), 1, "one contract, named twice");
        assert_eq!(Params::parse("kind=klay").unwrap().kinds(14).unwrap_err().code, 1040010);
        assert_eq!(Params::parse("size=1001").unwrap().size().unwrap_err().code, 1040011);
        assert_eq!(Params::parse("size=-1").unwrap().size().unwrap_err().code, 1040011);
        assert_eq!(Params::parse("size=x").unwrap().size().unwrap_err().code, 1040010);
        assert_eq!(Params::parse("size=1000").unwrap().size(), Ok(1000));
        assert_eq!(
            Params::parse("range=1600000000").unwrap().range(),
            Ok(Some(Range::Times(1_600_000_000, u64::MAX)))
        );
        assert_eq!(Params::parse("range=20,10").unwrap().range().unwrap_err().code, 1040011);
        assert_eq!(
            Params::parse("range=0x1,10").unwrap().range().unwrap_err().code,
            1040010
        );
        assert_eq!(Params::parse("range=1,2,3").unwrap().range().unwrap_err().code, 1040010);
        assert_eq!(
            Params::parse("presets=").unwrap().presets().unwrap_err().message,
            "[InvalidQueryParameterValue]required presets"
        );
        assert_eq!(
            Params::parse("presets=1,x").unwrap().presets().unwrap_err().message,
            "[InvalidQueryParameterValue]invalid presets query"
        );
        assert_eq!(Params::parse("presets=3,1,3").unwrap().presets(), Ok(vec![3, 1]));
        assert!(Params::parse("a=1&a=2").is_err(), "a parameter twice is ambiguous");
        assert_eq!(
            Params::parse("type=kip-7").unwrap().standard(["KIP-7", "ERC-20"]),
            Ok(Some("KIP-7"))
        );
        assert!(Params::parse("type=KIP-17")
            .unwrap()
            .standard(["KIP-7", "ERC-20"])
            .is_err());
        assert!(Params::parse("status=done").unwrap().status().is_err());
    }

    #[test]
    fn cursors_belong_to_their_query() {
        let q = Params::parse("kind=ft&size=2").unwrap();
        let c = q.make_cursor("/transfer/account/0x1", "klaytn", &["5".into(), "ab".into()]);
        // the next page may change its size, nothing else
        let next = Params::parse(&format!("kind=ft&size=7&cursor={c}")).unwrap();
        assert_eq!(
            next.cursor("/transfer/account/0x1", "klaytn").unwrap(),
            Some(vec!["5".to_owned(), "ab".to_owned()])
        );
        for (query, route, net) in [
            (format!("kind=nft&cursor={c}"), "/transfer/account/0x1", "klaytn"),
            (format!("kind=ft&cursor={c}"), "/transfer/account/0x2", "klaytn"),
            (format!("kind=ft&cursor={c}"), "/transfer/account/0x1", "kaia"),
            ("kind=ft&cursor=%%%".to_owned(), "/transfer/account/0x1", "klaytn"),
            ("kind=ft&cursor=AAAA".to_owned(), "/transfer/account/0x1", "klaytn"),
        ] {
            let err = Params::parse(&query).unwrap().cursor(route, net).unwrap_err();
            assert_eq!(
                err.message, "[InvalidQueryParameterValue]invalid cursor",
                "{query} {route} {net}"
            );
        }
        assert_eq!(part_bytes(Some(&"0a".to_owned())), Ok(vec![10]));
        assert!(part_bytes(Some(&"0".to_owned())).is_err());
        assert!(part_bytes(Some(&"zz".to_owned())).is_err());
        assert!(part_u64(None).is_err());
    }

    #[test]
    fn path_values() {
        assert!(address("0xAB00000000000000000000000000000000000001").is_some());
        assert!(address("0xab0000000000000000000000000000000000001").is_none());
        assert!(address("ab00000000000000000000000000000000000001").is_none());
        assert!(hash(&format!("0x{}", "1".repeat(64))).is_some());
        assert!(hash("0x12").is_none());
        assert_eq!(token_id("0x7b").map(|b| b[31]), Some(0x7b));
        assert!(token_id("0x").is_none());
        assert!(token_id("123").is_none());
        assert!(token_id(&format!("0x{}", "f".repeat(65))).is_none());
    }
}
