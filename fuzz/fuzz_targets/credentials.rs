//! Fuzz target: arbitrary request credentials and forwarding headers through access control
//! (`access::Access::client_ip`, `authenticate`, `admit`) and network selection by `x-chain-id`.
//! Owns the invariants "never panics", "only the one real secret is accepted" and "a client IP
//! is always an address the request named or the peer".
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue};
use kengate::access::Access;
use kengate::config::{AuthConfig, KeyConfig, KeyScope, ThrottleConfig};
use kengate::networks::parse_chain_id;
use kengate::store::SqliteStore;
use libfuzzer_sys::fuzz_target;

const ID: &str = "fuzzkey";
const SECRET: &str = "fuzz-secret-0123456789";

fn access() -> Option<&'static Access> {
    static A: OnceLock<Option<Access>> = OnceLock::new();
    A.get_or_init(|| {
        let auth = AuthConfig {
            enabled: true,
            trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            keys: vec![KeyConfig {
                scope: KeyScope {
                    networks: vec!["klaytn".into()],
                    ..KeyScope::default()
                },
                ..KeyConfig::new(ID, SECRET)
            }],
            ..AuthConfig::default()
        };
        let store = SqliteStore::in_memory().ok()?;
        Access::new(&auth, &ThrottleConfig::default(), &["klaytn".into()], Arc::new(store)).ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(access) = access() else { return };
    // Four fields separated by 0xff: Authorization, path token, X-Forwarded-For, Forwarded.
    let mut parts = data.split(|b| *b == 0xff);
    let (auth, token, xff, fwd) = (parts.next(), parts.next(), parts.next(), parts.next());
    let mut headers = HeaderMap::new();
    for (name, value) in [("authorization", auth), ("x-forwarded-for", xff), ("forwarded", fwd)] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name, v);
        }
    }
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let ip = access.client_ip(peer, &headers);
    if headers.get("x-forwarded-for").is_none() && headers.get("forwarded").is_none() {
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    }
    let token = token.and_then(|t| std::str::from_utf8(t).ok());
    if let Ok(caller) = access.authenticate(ip, &headers, token, "klaytn") {
        // Accepted: the request carried the real credential somewhere.
        let text = String::from_utf8_lossy(data);
        assert!(
            text.contains(SECRET) || auth.is_some_and(|a| a.starts_with(b"Basic ")),
            "accepted without the secret: {text:?}"
        );
        assert_eq!(caller.key.as_ref().map(|k| k.id()), Some(ID));
        let _ = access.admit(&caller, 1);
    }
    let _ = parse_chain_id(data);
});
