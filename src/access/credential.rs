//! Credentials on the wire and secrets at rest: parsing `Authorization: Bearer <id>.<secret>`,
//! `Authorization: Basic base64(<id>:<secret>)` and the URL path token; hashing and
//! constant-time comparison; generating ids and secrets. No key table, no clock.
//!
//! Why a plain SHA-256 (no salt, no slow KDF): generated secrets are 256 random bits, so a
//! stolen hash cannot be brute-forced and a fast hash keeps the per-request check cheap.
//! Secrets written in `proxy.toml` may be human-chosen; they are hashed at load all the same
//! (the config file itself holds them in clear text anyway).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{AccessError, Denied};
use super::Headers;
use crate::config::valid_key_id;

/// A presented credential. `Debug` never prints the secret.
pub(crate) struct Credential {
    /// Key id.
    pub id: String,
    /// The secret as presented (compared only through its hash).
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The credential of a request: the `Authorization` header when present (it wins over a path
/// token), else the path token.
pub(crate) fn from_request(headers: &impl Headers, path_token: Option<&str>) -> Result<Credential, Denied> {
    let mut auth = headers.authorization();
    match (auth.next(), auth.next()) {
        (Some(_), Some(_)) => Err(Denied::MalformedCredential("more than one Authorization header")),
        (Some(value), None) => {
            let value = value.ok_or(Denied::MalformedCredential("the Authorization header is not ASCII"))?;
            parse_authorization(value)
        }
        (None, _) => match path_token {
            Some(t) if !t.is_empty() => parse_token(t),
            _ => Err(Denied::MissingCredential),
        },
    }
}

/// `Bearer <id>.<secret>` or `Basic base64(<id>:<secret>)` (schemes case-insensitive).
pub(crate) fn parse_authorization(value: &str) -> Result<Credential, Denied> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        parse_token(rest)
    } else if scheme.eq_ignore_ascii_case("basic") {
        let raw = STANDARD
            .decode(rest)
            .map_err(|_| Denied::MalformedCredential("the Basic credential is not valid base64"))?;
        let text =
            String::from_utf8(raw).map_err(|_| Denied::MalformedCredential("the Basic credential is not UTF-8"))?;
        let (id, secret) = text.split_once(':').ok_or(Denied::MalformedCredential(
            "the Basic credential has no ':' between id and secret",
        ))?;
        checked(id, secret)
    } else {
        Err(Denied::MalformedCredential(
            "use Authorization: Bearer <id>.<secret> or Basic",
        ))
    }
}

/// `<id>.<secret>` (ids never contain `.`, so the first `.` separates them).
pub(crate) fn parse_token(token: &str) -> Result<Credential, Denied> {
    let (id, secret) = token
        .split_once('.')
        .ok_or(Denied::MalformedCredential("a token has the form <id>.<secret>"))?;
    checked(id, secret)
}

fn checked(id: &str, secret: &str) -> Result<Credential, Denied> {
    if !valid_key_id(id) {
        return Err(Denied::MalformedCredential("the key id is not valid"));
    }
    if secret.is_empty() {
        return Err(Denied::MalformedCredential("the secret is empty"));
    }
    Ok(Credential {
        id: id.to_owned(),
        secret: secret.to_owned(),
    })
}

/// The bearer token of an `Authorization: Bearer X` header, if that is what the request has.
pub(crate) fn bearer(headers: &impl Headers) -> Option<&str> {
    let mut all = headers.authorization();
    let value = all.next()??;
    if all.next().is_some() {
        return None;
    }
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// SHA-256 of a secret.
pub(crate) fn hash_secret(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub(crate) fn secret_matches(presented: &str, stored: &[u8; 32]) -> bool {
    hash_secret(presented.as_bytes()).ct_eq(stored).into()
}

/// Compared against when the key id is unknown, so that an unknown id costs the same work as
/// a wrong secret.
pub(crate) const DUMMY_HASH: [u8; 32] = [0x5a; 32];

/// Lowercase hex, no prefix.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    crate::jsonrpc::hex_digits(bytes)
}

/// 64 hex digits (either case) → 32 bytes.
pub(crate) fn from_hex32(s: &str) -> Option<[u8; 32]> {
    crate::jsonrpc::unhex_digits(s)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AccessError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| AccessError::Random(e.to_string()))?;
    Ok(buf)
}

/// A new secret: 32 bytes from the OS CSPRNG, base64url without padding (43 characters, never
/// `.` or `:`).
pub(crate) fn new_secret() -> Result<String, AccessError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// A new key id: `KG` + 20 upper-case letters and digits (rejection-sampled: no modulo bias).
pub(crate) fn new_key_id() -> Result<String, AccessError> {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = String::from("KG");
    while id.len() < 22 {
        for b in random_bytes::<32>()? {
            // 252 = 7 × 36: bytes at or above it would favour the first letters.
            if b < 252 && id.len() < 22 {
                // `b % 36` is always a valid index into the 36-letter alphabet.
                if let Some(&c) = ALPHABET.get(usize::from(b % 36)) {
                    id.push(char::from(c));
                }
            }
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use http::{HeaderMap, HeaderValue};

    fn headers(auth: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(a).unwrap());
        }
        h
    }

    fn check(auth: &[&[u8]], path: Option<&str>, expected: Result<(&str, &str), Denied>) {
        let got = from_request(&headers(auth), path).map(|c| (c.id, c.secret));
        let expected = expected.map(|(i, s)| (i.to_owned(), s.to_owned()));
        assert_eq!(got, expected, "auth {auth:?} path {path:?}");
    }

    #[test]
    fn bearer_basic_and_path_tokens() {
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
        check(&[b"Bearer KG1.s3cr3t"], None, Ok(("KG1", "s3cr3t")));
        check(&[b"bearer   KG1.s3.cr3t  "], None, Ok(("KG1", "s3.cr3t")));
        check(&[basic("KG1:se:cret").as_bytes()], None, Ok(("KG1", "se:cret")));
        check(&[], Some("my-key_2.abc"), Ok(("my-key_2", "abc")));
        // The header wins over a path token.
        check(&[b"Bearer a.b"], Some("c.d"), Ok(("a", "b")));
        check(&[], None, Err(Denied::MissingCredential));
        check(&[], Some(""), Err(Denied::MissingCredential));
    }

    #[test]
    fn malformed_credentials() {
        let cases: &[(&[&[u8]], Option<&str>)] = &[
            (&[b"Bearer KG1"], None),                // no '.'
            (&[b"Bearer .secret"], None),            // empty id
            (&[b"Bearer KG1."], None),               // empty secret
            (&[b"Bearer K G.x"], None),              // bad id
            (&[b"Bearer"], None),                    // nothing
            (&[b"Token KG1.x"], None),               // unknown scheme
            (&[b"Basic !!!notbase64"], None),        // bad base64
            (&[b"Basic S0cxc2VjcmV0"], None),        // "KG1secret": no colon
            (&[b"Basic /w=="], None),                // 0xff: not UTF-8
            (&[b"Bearer \xff.x"], None),             // header not ASCII
            (&[b"Bearer a.b", b"Bearer c.d"], None), // two headers
            (&[], Some("no-dot")),
        ];
        for (auth, path) in cases {
            let got = from_request(&headers(auth), *path);
            assert!(
                matches!(got, Err(Denied::MalformedCredential(_))),
                "{auth:?} {path:?} → {got:?}"
            );
        }
    }

    #[test]
    fn secrets_compare_by_hash() {
        let stored = hash_secret(b"correct horse");
        assert!(secret_matches("correct horse", &stored));
        assert!(!secret_matches("correct hors", &stored));
        assert!(!secret_matches("correct horsf", &stored));
        assert!(!secret_matches("", &stored));
        assert!(!secret_matches("anything", &DUMMY_HASH));
        assert_eq!(from_hex32(&to_hex(&stored)), Some(stored));
        assert_eq!(from_hex32(&to_hex(&stored).to_uppercase()), Some(stored));
        assert_eq!(from_hex32("zz"), None);
        assert_eq!(from_hex32(&"g".repeat(64)), None);
    }

    #[test]
    fn generated_ids_and_secrets() {
        let id = new_key_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("KG") && valid_key_id(&id));
        assert!(id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 43);
        assert!(!secret.contains('.') && !secret.contains(':') && !secret.contains('='));
        assert_ne!(new_secret().unwrap(), secret);
        let token = format!("{id}.{secret}");
        let c = parse_token(&token).unwrap();
        assert_eq!((c.id.as_str(), c.secret.as_str()), (id.as_str(), secret.as_str()));
        assert!(!format!("{c:?}").contains(&secret));
    }

    #[test]
    fn bearer_for_admin() {
        assert_eq!(bearer(&headers(&[b"Bearer  abc "])), Some("abc"));
        assert_eq!(bearer(&headers(&[b"Basic abc"])), None);
        assert_eq!(bearer(&headers(&[])), None);
        assert_eq!(bearer(&headers(&[b"Bearer a", b"Bearer a"])), None);
    }
}
