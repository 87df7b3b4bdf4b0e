//! The admin REST API for keys: (method, path after `/admin/keys`, body) → (status, JSON),
//! over `Access`'s key management. The server checks [`Access::admin_authorized`] first and
//! runs this on a blocking thread (it writes the store).
//!
//! | request                          | answer                                       |
//! |----------------------------------|----------------------------------------------|
//! | `GET /admin/keys`                | 200 `{"keys": [KeyInfo]}`                    |
//! | `POST /admin/keys` (NewKey JSON) | 201 `{id, secret, token, key}` (secret once) |
//! | `GET /admin/keys/{id}`           | 200 `KeyInfo`                                |
//! | `DELETE /admin/keys/{id}`        | 200 `{"revoked": true, "key": KeyInfo}`      |
//! | `POST /admin/keys/{id}/rotate`   | 200 `{id, secret, token, key}` (secret once) |
//!
//! Errors: `{"error": message}` with 400 (bad JSON or value), 404 (no such key or path), 405
//! (wrong method; `allow` lists the right ones), 409 (config key, or rotating a revoked key).

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::domain::access_error_status;
use crate::access::{Access, AccessError, NewKey};
use crate::config::valid_key_id;

enum Route<'a> {
    Collection,
    Key(&'a str),
    Rotate(&'a str),
}

fn route(rest: &str) -> Option<Route<'_>> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Some(Route::Collection);
    }
    let mut parts = rest.strip_prefix('/')?.split('/');
    let id = parts.next().filter(|id| valid_key_id(id))?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(Route::Key(id)),
        (Some("rotate"), None) => Some(Route::Rotate(id)),
        _ => None,
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({ "error": message.into() }))
}

fn failed(e: &AccessError) -> (StatusCode, Value) {
    error(access_error_status(e), e.to_string())
}

fn not_allowed(allow: &str) -> (StatusCode, Value) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "error": "method not allowed", "allow": allow }),
    )
}

fn to_json<T: serde::Serialize>(status: StatusCode, v: &T) -> (StatusCode, Value) {
    match serde_json::to_value(v) {
        Ok(v) => (status, v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Serves one admin keys request; `rest` is the path after `/admin/keys` (`""`, `/{id}`,
/// `/{id}/rotate`). The caller must have checked the admin token.
pub fn admin_keys(access: &Access, method: &Method, rest: &str, body: &[u8]) -> (StatusCode, Value) {
    let Some(route) = route(rest) else {
        return error(StatusCode::NOT_FOUND, format!("no such admin path: /admin/keys{rest}"));
    };
    match (route, method) {
        (Route::Collection, &Method::GET) => match access.list_keys() {
            Ok(keys) => to_json(StatusCode::OK, &json!({ "keys": keys })),
            Err(e) => failed(&e),
        },
        (Route::Collection, &Method::POST) => {
            let req: NewKey = if body.iter().all(u8::is_ascii_whitespace) {
                NewKey::default()
            } else {
                match serde_json::from_slice(body) {
                    Ok(r) => r,
                    Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
                }
            };
            match access.create_key(req) {
                Ok(created) => to_json(StatusCode::CREATED, &created),
                Err(e) => failed(&e),
            }
        }
        (Route::Collection, _) => not_allowed("GET, POST"),
        (Route::Key(id), &Method::GET) => match access.key_info(id) {
            Ok(info) => to_json(StatusCode::OK, &info),
            Err(e) => failed(&e),
        },
        (Route::Key(id), &Method::DELETE) => match access.revoke_key(id) {
            Ok(info) => to_json(StatusCode::OK, &json!({ "revoked": true, "key": info })),
            Err(e) => failed(&e),
        },
        (Route::Key(_), _) => not_allowed("GET, DELETE"),
        (Route::Rotate(id), &Method::POST) => match access.rotate_key(id) {
            Ok(created) => to_json(StatusCode::OK, &created),
            Err(e) => failed(&e),
        },
        (Route::Rotate(_), _) => not_allowed("POST"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::config::{AuthConfig, KeyConfig, KeyScope, ThrottleConfig};
    use crate::store::SqliteStore;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Access with auth on, the admin token set and no rate limits, over an in-memory store.
    fn access_with_config_key(id: &str, secret: &str) -> Access {
        let auth = AuthConfig {
            enabled: true,
            admin_token: Some("admin-token-0123456789".into()),
            trusted_proxies: vec!["10.0.0.1".into()],
            keys: vec![KeyConfig {
                scope: KeyScope {
                    label: "from config".into(),
                    ..Default::default()
                },
                ..KeyConfig::new(id, secret)
            }],
        };
        let nets = ["cypress".to_string(), "baobab".to_string()];
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        Access::build(&auth, &ThrottleConfig::default(), &nets, store, None).unwrap()
    }

    #[test]
    fn admin_keys_routes() {
        let a = access_with_config_key("ops", "a-config-secret-123");
        let call = |m: Method, rest: &str, body: &str| admin_keys(&a, &m, rest, body.as_bytes());

        let (s, v) = call(
            Method::POST,
            "",
            r#"{"label":"ci","networks":["cypress"],"expires_in":60}"#,
        );
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        let token = v["token"].as_str().unwrap().to_owned();
        assert_eq!(token, format!("{id}.{}", v["secret"].as_str().unwrap()));
        assert_eq!(v["key"]["networks"], json!(["cypress"]));
        assert!(a
            .authenticate(ip("192.0.2.1"), &bearer(&token), None, "cypress")
            .is_ok());

        let (s, v) = call(Method::GET, "", "");
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["keys"].as_array().unwrap().len(), 2);
        assert!(
            !v.to_string().contains(&token[id.len() + 1..]),
            "a listing never shows a secret"
        );
        assert!(!v.to_string().contains("secret"));

        let (s, v) = call(Method::GET, &format!("/{id}"), "");
        assert_eq!((s, v["label"].as_str()), (StatusCode::OK, Some("ci")));

        let (s, v) = call(Method::POST, &format!("/{id}/rotate"), "");
        assert_eq!(s, StatusCode::OK);
        assert_ne!(v["token"].as_str().unwrap(), token);
        assert!(a
            .authenticate(ip("192.0.2.1"), &bearer(&token), None, "cypress")
            .is_err());

        let (s, v) = call(Method::DELETE, &format!("/{id}/"), "");
        assert_eq!((s, v["revoked"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
        assert_eq!(call(Method::POST, &format!("/{id}/rotate"), "").0, StatusCode::CONFLICT);

        let cases: &[(Method, &str, &str, StatusCode)] = &[
            (Method::POST, "", "", StatusCode::CREATED),
            (Method::POST, "", "{nope", StatusCode::BAD_REQUEST),
            (Method::POST, "", r#"{"colour":"red"}"#, StatusCode::BAD_REQUEST),
            (Method::POST, "", r#"{"networks":["mainnet"]}"#, StatusCode::BAD_REQUEST),
            (
                Method::POST,
                "",
                r#"{"ip_allow":["1.2.3.4/40"]}"#,
                StatusCode::BAD_REQUEST,
            ),
            (Method::PUT, "", "", StatusCode::METHOD_NOT_ALLOWED),
            (Method::GET, "/KGNOSUCHKEY", "", StatusCode::NOT_FOUND),
            (Method::DELETE, "/KGNOSUCHKEY", "", StatusCode::NOT_FOUND),
            (Method::POST, "/KGNOSUCHKEY/rotate", "", StatusCode::NOT_FOUND),
            (Method::POST, "/KGX", "", StatusCode::METHOD_NOT_ALLOWED),
            (Method::GET, "/KGX/rotate", "", StatusCode::METHOD_NOT_ALLOWED),
            (Method::GET, "/KGX/other", "", StatusCode::NOT_FOUND),
            (Method::GET, "/bad.id", "", StatusCode::NOT_FOUND),
            (Method::GET, "x", "", StatusCode::NOT_FOUND),
            (Method::DELETE, "/ops", "", StatusCode::CONFLICT),
            (Method::GET, "/ops", "", StatusCode::OK),
        ];
        for (m, rest, body, expected) in cases {
            let (s, v) = call(m.clone(), rest, body);
            assert_eq!(s, *expected, "{m} {rest:?} {body:?} → {v}");
            if !s.is_success() {
                assert!(v["error"].is_string(), "{v}");
            }
        }
        let (_, v) = call(Method::POST, "", "{nope");
        assert!(v["error"].as_str().unwrap().contains("invalid JSON"), "{v}");
    }
}
