//! JSON-RPC 2.0 wire types: borrowed request parsing, raw response assembly and the
//! error codes kengate answers with. Pure data: no IO, no routing, no cluster knowledge.

mod envelope;
mod error;
mod hex;
mod object;
mod quantity;
mod request;
mod response;
mod scan;

pub use envelope::{put_request, request};
pub use error::{clip, codes, RpcError};
pub use hex::{hex, hex_digits, unhex, unhex_digits};
pub use object::{go_object, set_member, FILTER_CRITERIA};
pub use quantity::{format_quantity, parse_quantity};
pub use request::{
    json_str, parse_body, parse_body_checked, parse_body_serde, split_params, Call, Incoming, ParseError, RawJson,
};
pub use response::{
    batch_of, batch_response, error_response, member_response, result_follows, result_response, unread_batch,
    unread_result, Part, UpstreamReply, UpstreamReplyError,
};

/// Deserializes a member that may be absent into `None`, and a present one, even `null`,
/// into `Some(raw)`: serde would otherwise fold `null` into `None`, and `"id": null` is a
/// request while a missing id is a notification.
fn present<'de, D>(d: D) -> Result<Option<&'de serde_json::value::RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&serde_json::value::RawValue as serde::Deserialize>::deserialize(d).map(Some)
}
