//! `kaia_sendRawTransactions` (Kaia v2): several signed transactions in one call. kengate
//! sends each through the write path as its own `sendRawTransaction` — its sender's node,
//! in nonce order, recorded — instead of handing the lot to one node. Like the node, it
//! goes in order, stops at the first failure and answers that failure as
//! `Index i: <the node's message>`; otherwise the hashes, in order.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::{Gateway, ProxyError, Who};
use crate::jsonrpc::{error_response, member_response, result_response, Call, RpcError, UpstreamReply};
use crate::methods::{Class, Lookup, MethodSpec, WriteKind};

/// Whether a row is the several-at-once send.
pub fn is_multi_send(spec: &MethodSpec) -> bool {
    spec.class == Class::Write(WriteKind::RawMany)
}

/// Sends each transaction of `call` in turn. Params that are not one array of hex strings
/// (or an empty one) go to a node as sent, for its own error.
pub async fn send_each(gw: &Gateway, call: &Call<'_>, spec: &MethodSpec, who: &Who<'_>) -> Result<Bytes, ProxyError> {
    let txs = call
        .params
        .and_then(|p| serde_json::from_str::<(Vec<&RawValue>,)>(p.get()).ok())
        .map(|(txs,)| txs)
        .filter(|txs| !txs.is_empty() && txs.iter().all(|t| t.get().starts_with('"')));
    let single = spec
        .name
        .strip_suffix('s')
        .map(|n| gw.methods.lookup(n, gw.cluster.dialect()));
    let (Some(txs), Some(Lookup::Allowed(single))) = (txs, single) else {
        return gw.route_whole(call, spec, who).await;
    };
    let mut hashes = Vec::with_capacity(txs.len());
    for (i, tx) in txs.into_iter().enumerate() {
        // A JSON string in brackets is always valid JSON.
        let Ok(params) = RawValue::from_string(format!("[{}]", tx.get())) else {
            return gw.route_whole(call, spec, who).await;
        };
        let one = Call {
            id: call.id,
            method: single.name.into(),
            params: Some((&*params).into()),
        };
        let reply = match gw.route_whole(&one, &single, who).await {
            Ok(reply) => reply,
            Err(e) => {
                let e = e.to_rpc();
                return Ok(error_response(
                    call.id,
                    &RpcError::new(e.code, format!("Index {i}: {}", e.message)),
                ));
            }
        };
        let Ok(parsed) = UpstreamReply::parse(&reply) else {
            return Ok(reply);
        };
        match (parsed.error, parsed.result) {
            (Some(e), _) => return Ok(member_response(call.id, "error", indexed(i, e).as_bytes())),
            (None, Some(h)) => hashes.push(h.get().to_owned()),
            (None, None) => hashes.push("null".to_owned()),
        }
    }
    Ok(result_response(call.id, &format!("[{}]", hashes.join(","))))
}

/// The node's error with `Index i: ` in front of its message, as the node words it.
fn indexed(i: usize, error: &RawValue) -> String {
    let Ok(mut e) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(error.get()) else {
        return error.get().to_owned();
    };
    if let Some(serde_json::Value::String(m)) = e.get_mut("message") {
        *m = format!("Index {i}: {m}");
    }
    serde_json::Value::Object(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_the_index_like_the_node() {
        let e = RawValue::from_string(r#"{"code":-32000,"message":"nonce too low"}"#.into()).unwrap();
        assert_eq!(indexed(2, &e), r#"{"code":-32000,"message":"Index 2: nonce too low"}"#);
        let odd = RawValue::from_string("17".into()).unwrap();
        assert_eq!(indexed(0, &odd), "17");
    }
}
