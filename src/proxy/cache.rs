//! The final-data cache: answers that can never change (Klaytn has immediate finality, so
//! everything at or below the served head is final), bounded by bytes.
//!
//! Keys are the upstream method name and the params kengate sends, so `klay_x` and `kaia_x`
//! (both sent as `klay_x`) share entries while `eth_x` answers, which Klaytn formats
//! differently, keep their own. Values are the `result` JSON only; each hit is wrapped in a
//! response with the caller's id.

use std::sync::Arc;

use bytes::Bytes;
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::jsonrpc::parse_quantity;
use crate::routing::CachePolicy;

/// Upstream method + params, as sent: the identity of a read.
pub type ReadKey = Arc<[u8]>;

/// Builds the key of a call: `method`, a NUL, then the params JSON.
pub fn read_key(upstream_method: &str, params: &str) -> ReadKey {
    let mut k = Vec::with_capacity(upstream_method.len() + 1 + params.len());
    k.extend_from_slice(upstream_method.as_bytes());
    k.push(0);
    k.extend_from_slice(params.as_bytes());
    k.into()
}

/// Per-entry bookkeeping counted against the bound besides key and value bytes.
const ENTRY_OVERHEAD: usize = 96;

/// Bounded cache of final answers.
#[derive(Debug, Clone)]
pub struct FinalCache {
    /// aHash, as the coalescer's map: a key is a method and its params, hashed on every read.
    inner: Option<Cache<ReadKey, Bytes, ahash::RandomState>>,
    max_bytes: u64,
}

impl FinalCache {
    /// A cache holding at most `max_bytes` (keys, values and bookkeeping); 0 disables it.
    pub fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &ReadKey, v: &Bytes| weight(k, v))
                .build_with_hasher(ahash::RandomState::new())
        });
        Self { inner, max_bytes }
    }

    /// Its configured size.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether caching is on.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// A cached result.
    pub fn get(&self, key: &ReadKey) -> Option<Bytes> {
        self.inner.as_ref()?.get(key)
    }

    /// Keeps `result` if `policy` says it is final at `served_head`. Returns whether it was
    /// kept. Never keeps `null`, or an entry larger than 1/8 of the bound (one huge block must
    /// not flush everything else).
    pub fn offer(&self, key: ReadKey, result: Bytes, policy: CachePolicy, served_head: u64) -> bool {
        let Some(inner) = &self.inner else { return false };
        if !is_final(policy, &result, served_head) {
            return false;
        }
        if weight(&key, &result) as u64 > self.max_bytes / 8 {
            return false;
        }
        inner.insert(key, result);
        true
    }

    /// Bytes held (after pending evictions are applied).
    pub fn weighted_size(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.weighted_size()
        })
    }

    /// Entries held (approximate).
    pub fn entry_count(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
    }
}

fn weight(k: &ReadKey, v: &Bytes) -> u32 {
    u32::try_from(k.len() + v.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

/// The block a by-hash answer was mined in, if it says.
#[derive(Deserialize)]
struct Mined<'a> {
    #[serde(rename = "blockNumber", borrow, default)]
    block_number: Option<&'a str>,
    #[serde(borrow, default)]
    number: Option<&'a str>,
}

/// The block a by-hash answer (a tx, a receipt, a block, a header) says it was mined in.
pub fn mined_in(result: &[u8]) -> Option<u64> {
    if result.first() != Some(&b'{') {
        return None;
    }
    let m = serde_json::from_slice::<Mined<'_>>(result).ok()?;
    m.block_number.or(m.number).and_then(parse_quantity)
}

/// Whether `result` (a successful answer's JSON) is final under `policy`.
pub fn is_final(policy: CachePolicy, result: &[u8], served_head: u64) -> bool {
    match policy {
        CachePolicy::No => false,
        CachePolicy::Final => result != b"null",
        CachePolicy::IfMined => mined_in(result).is_some_and(|n| n <= served_head),
    }
}

/// `result` of a raw JSON value, for the cache (a `RawValue` is valid JSON by construction).
pub fn raw_bytes(reply: &Bytes, raw: &RawValue) -> Bytes {
    sub_bytes(reply, raw.get().as_bytes())
}

/// `text` as a `Bytes`: a slice of `reply` (no copy) when it lies in it, else a copy.
pub fn sub_bytes(reply: &Bytes, text: &[u8]) -> Bytes {
    // The raw value borrows from `reply`: slice it without copying when it does.
    let base = reply.as_ptr() as usize;
    let at = text.as_ptr() as usize;
    if at >= base && at + text.len() <= base + reply.len() {
        reply.slice(at - base..at - base + text.len())
    } else {
        Bytes::copy_from_slice(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_across_klay_and_kaia_but_not_eth() {
        // kaia_ calls are sent (and keyed) as klay_.
        assert_eq!(
            read_key("klay_getBlockReceipts", "[\"0x1\"]"),
            read_key("klay_getBlockReceipts", "[\"0x1\"]")
        );
        assert_ne!(
            read_key("klay_getBlockByNumber", "[\"0x1\",true]"),
            read_key("eth_getBlockByNumber", "[\"0x1\",true]")
        );
        assert_ne!(read_key("a", "b"), read_key("ab", ""));
    }

    #[test]
    fn finality_rules() {
        assert!(!is_final(CachePolicy::No, b"\"0x1\"", 10));
        assert!(is_final(CachePolicy::Final, b"\"0x1\"", 10));
        assert!(!is_final(CachePolicy::Final, b"null", 10));
        assert!(is_final(
            CachePolicy::IfMined,
            br#"{"blockNumber":"0xa","hash":"0x1"}"#,
            10
        ));
        // above the served head: not yet final from kengate's point of view
        assert!(!is_final(CachePolicy::IfMined, br#"{"blockNumber":"0xb"}"#, 10));
        // pending tx
        assert!(!is_final(CachePolicy::IfMined, br#"{"blockNumber":null}"#, 10));
        assert!(is_final(CachePolicy::IfMined, br#"{"number":"0x2"}"#, 10));
        assert!(!is_final(CachePolicy::IfMined, b"null", 10));
        assert!(!is_final(CachePolicy::IfMined, b"\"0xf8\"", 10));
        assert!(!is_final(CachePolicy::IfMined, b"{\"x\":1}", 10));
    }

    #[test]
    fn offer_and_get() {
        let c = FinalCache::new(1 << 20);
        let k = read_key("klay_getBlockByNumber", "[\"0x5\",true]");
        assert!(c.offer(
            k.clone(),
            Bytes::from_static(b"{\"number\":\"0x5\"}"),
            CachePolicy::Final,
            5
        ));
        assert_eq!(c.get(&k).as_deref(), Some(&b"{\"number\":\"0x5\"}"[..]));
        let k2 = read_key("klay_getTransactionReceipt", "[\"0xab\"]");
        assert!(!c.offer(
            k2.clone(),
            Bytes::from_static(b"{\"blockNumber\":\"0x6\"}"),
            CachePolicy::IfMined,
            5
        ));
        assert!(c.get(&k2).is_none());
        assert!(!FinalCache::new(0).offer(k, Bytes::from_static(b"1"), CachePolicy::Final, 5));
    }

    #[test]
    fn never_exceeds_its_bound() {
        let max = 64 * 1024;
        let c = FinalCache::new(max);
        let value = Bytes::from(vec![b'1'; 1000]);
        for i in 0..1000u32 {
            c.offer(read_key("m", &i.to_string()), value.clone(), CachePolicy::Final, 1);
        }
        assert!(c.weighted_size() <= max, "{} > {max}", c.weighted_size());
        assert!(c.entry_count() > 0);
        // One entry over 1/8 of the bound is refused.
        assert!(!c.offer(
            read_key("m", "big"),
            Bytes::from(vec![b'1'; 9000]),
            CachePolicy::Final,
            1
        ));
    }

    #[test]
    fn raw_bytes_slices_without_copy() {
        let reply = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#);
        let parsed = crate::jsonrpc::UpstreamReply::parse(&reply).unwrap();
        let r = raw_bytes(&reply, parsed.result.unwrap());
        assert_eq!(&r[..], br#"{"a":1}"#);
        assert_eq!(r.as_ptr(), reply[33..].as_ptr());
    }
}
