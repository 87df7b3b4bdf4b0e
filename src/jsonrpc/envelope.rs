//! The request envelope kengate sends upstream, written in one place:
//! `{"jsonrpc":"2.0","id":<id>,"method":"<method>","params":<params>}`.

use bytes::{BufMut, Bytes, BytesMut};

/// Appends one request object to `out`. `id` and `params` are JSON text, copied as given (a
/// client's id and params are sent as the client sent them); `method` is a method name from
/// the method table, written without escaping.
pub fn put_request(out: &mut BytesMut, id: &str, method: &str, params: &str) {
    out.reserve(48 + id.len() + method.len() + params.len());
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(id.as_bytes());
    out.put_slice(b",\"method\":\"");
    out.put_slice(method.as_bytes());
    out.put_slice(b"\",\"params\":");
    out.put_slice(params.as_bytes());
    out.put_u8(b'}');
}

/// One request object as a body of its own.
pub fn request(id: &str, method: &str, params: &str) -> Bytes {
    let mut b = BytesMut::new();
    put_request(&mut b, id, method, params);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        assert_eq!(
            &request("\"x\"", "klay_getBalance", "[\"0x1\",\"latest\"]")[..],
            br#"{"jsonrpc":"2.0","id":"x","method":"klay_getBalance","params":["0x1","latest"]}"#
        );
        let mut b = BytesMut::new();
        b.put_u8(b'[');
        put_request(&mut b, "0", "m", "[]");
        b.put_u8(b',');
        put_request(&mut b, "1", "n", "[1]");
        b.put_u8(b']');
        assert_eq!(
            &b[..],
            br#"[{"jsonrpc":"2.0","id":0,"method":"m","params":[]},{"jsonrpc":"2.0","id":1,"method":"n","params":[1]}]"#
        );
    }
}
