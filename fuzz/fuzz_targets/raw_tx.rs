//! Fuzz target: arbitrary bytes through the raw transaction decoder (`rawtx::decode`), as bytes and as the
//! `0x…` hex a client sends. Owns the invariants "never panics", "hex and bytes decode alike", "a decoded tx
//! takes no trailing byte", and "a typed tx decodes the same with or without Klaytn's 0x78 envelope".
#![no_main]

use kengate::rawtx::decode::{decode, decode_hex, DecodeError};
use kengate::rawtx::TxType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = decode(data);

    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(decode_hex(&format!("0x{hex}")), got, "hex and bytes decode differently");

    let Ok(tx) = got else { return };
    let longer = [data, &[0x80]].concat();
    assert_eq!(
        decode(&longer),
        Err(DecodeError::TrailingBytes(1)),
        "a trailing byte was accepted"
    );
    assert_eq!(
        tx.fee_payer.is_some(),
        tx.sender_tx_hash != tx.hash,
        "SenderTxHash differs only when fee-delegated"
    );

    if let TxType::Ethereum { kind, wrapped } = tx.tx_type {
        let other = if wrapped {
            data[1..].to_vec()
        } else {
            [&[0x78], data].concat()
        };
        let twin = decode(&other).expect("the other envelope form decodes");
        assert_eq!(
            twin.tx_type,
            TxType::Ethereum {
                kind,
                wrapped: !wrapped
            }
        );
        assert_eq!(
            (twin.sender, twin.nonce, twin.hash, twin.chain_id),
            (tx.sender, tx.nonce, tx.hash, tx.chain_id)
        );
    }
});
