//! The REST transaction API of one network (`/v1/{network}/tx...`, or `/v1/tx...` for the
//! network picked by `x-chain-id` or the only one): `GET .../tx/{hash}` (one lifecycle record)
//! and `GET .../tx?sender=&status=&from_time=&to_time=&cursor=&size=` (history, newest first,
//! cursor-paginated). Times are milliseconds since the Unix epoch.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use super::{json, Resp};
use crate::proxy::Gateway;
use crate::store::{TxQuery, TxStatus};

fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, Bytes::from(json!({ "error": msg }).to_string()))
}

/// The method name a REST route counts as (the key's `methods`, `throttle.method_weights`,
/// the audit): one record is `kengate_getTransactionStatus`, as over JSON-RPC; the history is
/// `kengate_listTransactions`.
pub(super) fn method_of(rest: &str) -> &'static str {
    match rest {
        "" | "/" => "kengate_listTransactions",
        _ => "kengate_getTransactionStatus",
    }
}

/// Routes `[/v1/{network}]/v1/tx...`; `rest` is what follows `/tx`.
pub(super) async fn tx(gw: &Gateway, rest: &str, query: Option<&str>) -> Resp {
    match rest {
        "" | "/" => list(gw, query.unwrap_or("")).await,
        rest => one(gw, rest.trim_start_matches('/')).await,
    }
}

async fn one(gw: &Gateway, hash: &str) -> Resp {
    if hash.len() != 66 || !hash.starts_with("0x") || !hash[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "expected /v1/tx/0x<64 hex digits>");
    }
    match gw.tx_records().get(hash.to_owned()).await {
        Ok(Some(rec)) => json(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&rec).unwrap_or_default()),
        ),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no transaction with this hash passed through kengate",
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Parses the list query; an error names the parameter.
pub(super) fn parse_query(q: &str) -> Result<TxQuery, String> {
    let mut out = TxQuery {
        size: 50,
        ..TxQuery::default()
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: expected a number, got {v:?}"))
        };
        match k {
            "sender" => {
                let v = v.to_ascii_lowercase();
                if v.len() != 42 || !v.starts_with("0x") || !v[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("sender: expected 0x + 40 hex digits, got {v:?}"));
                }
                out.sender = Some(v);
            }
            "status" => out.status = Some(TxStatus::parse(v).ok_or_else(|| format!("status: unknown state {v:?}"))?),
            "from_time" => out.from_time = Some(num(v)?),
            "to_time" => out.to_time = Some(num(v)?),
            "cursor" => out.cursor = Some(v.replace("%3A", ":").replace("%3a", ":")),
            "size" => {
                let n = num(v)?;
                if !(1..=1000).contains(&n) {
                    return Err("size: between 1 and 1000".into());
                }
                out.size = usize::try_from(n).unwrap_or(1000);
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(out)
}

async fn list(gw: &Gateway, query: &str) -> Resp {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match gw.tx_records().list(q).await {
        Ok(page) => json(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&page).unwrap_or_default()),
        ),
        Err(crate::store::StoreError::Corrupt(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = parse_query("sender=0x00000000000000000000000000000000000000AB&status=inblock&size=5&cursor=12%3A0xab")
            .unwrap();
        assert_eq!(q.sender.as_deref(), Some("0x00000000000000000000000000000000000000ab"));
        assert_eq!(
            (q.status, q.size, q.cursor.as_deref()),
            (Some(TxStatus::InBlock), 5, Some("12:0xab"))
        );
        assert_eq!(parse_query("").unwrap().size, 50);
        for bad in [
            "sender=0x1",
            "status=Lost",
            "from_time=yesterday",
            "size=0",
            "size=5000",
            "colour=red",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
