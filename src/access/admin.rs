//! The admin REST API for keys, transport-agnostic: (method, path after `/admin/keys`, body)
//! → (status, JSON). The server checks [`Access::admin_authorized`] first and runs this on a
//! blocking thread (it writes the store).
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

use super::{Access, AccessError, NewKey};
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
    error(e.status(), e.to_string())
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
