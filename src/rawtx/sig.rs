//! secp256k1 signature rules for transaction decoding: V ↔ (chain id, recovery id), R/S range checks, and
//! ECDSA sender recovery (legacy and Ethereum typed txs only; Klaytn native txs name their sender). Pure.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

use super::rlp::keccak;

/// Why a signature cannot be used (the decoder wraps it in `DecodeError::BadSignature`).
pub(crate) type SigResult<T> = Result<T, &'static str>;

/// EIP-155 V (`recid + 35 + 2·chainId`, Klaytn native signatures): (chain id, recovery id).
pub(crate) fn eip155_v(v: u64) -> SigResult<(u64, u8)> {
    let x = v.checked_sub(35).ok_or("V below 35 carries no chain id")?;
    Ok((x / 2, (x % 2) as u8))
}

/// Legacy V: 27/28 (pre-EIP-155, no chain id) or EIP-155.
pub(crate) fn legacy_v(v: u64) -> SigResult<(Option<u64>, u8)> {
    match v {
        27 | 28 => Ok((None, (v - 27) as u8)),
        _ => match eip155_v(v) {
            Ok((chain, recid)) => Ok((Some(chain), recid)),
            Err(_) => Err("legacy V neither 27/28 nor 35 + 2·chainId"),
        },
    }
}

/// Ethereum typed txs' yParity: 0 or 1.
pub(crate) fn y_parity(v: u64) -> SigResult<u8> {
    match v {
        0 | 1 => Ok(v as u8),
        _ => Err("yParity neither 0 nor 1"),
    }
}

/// R and S as a signature: each in [1, n) (any S; Klaytn accepts high S in native signatures).
pub(crate) fn scalars(r: &[u8], s: &[u8]) -> SigResult<Signature> {
    Signature::from_scalars(pad32(r)?, pad32(s)?).map_err(|_| "R or S is zero or not below the curve order")
}

/// The address whose key made (`r`, `s`, `recid`) over `prehash`. High S is refused, as Klaytn's recovery
/// (homestead rules) does.
pub(crate) fn recover(prehash: &[u8; 32], r: &[u8], s: &[u8], recid: u8) -> SigResult<[u8; 20]> {
    let sig = scalars(r, s)?;
    if sig.normalize_s().is_some() {
        return Err("S in the upper half of the curve order");
    }
    let id = RecoveryId::from_byte(recid).ok_or("recovery id out of range")?;
    let key = VerifyingKey::recover_from_prehash(prehash, &sig, id).map_err(|_| "no public key recovers")?;
    let point = key.to_encoded_point(false);
    // Uncompressed SEC1: 0x04 || X || Y; the address is the last 20 bytes of keccak(X || Y).
    let xy = point.as_bytes().get(1..).ok_or("no public key recovers")?;
    let hash = keccak(&[xy]);
    hash.last_chunk::<20>().copied().ok_or("no public key recovers")
}

/// Left-pads a minimal big-endian integer (≤ 32 bytes, checked by the RLP reader) to 32 bytes.
fn pad32(b: &[u8]) -> SigResult<[u8; 32]> {
    let mut out = [0u8; 32];
    let start = 32usize.checked_sub(b.len()).ok_or("R or S longer than 32 bytes")?;
    // `start` = 32 - `b.len()`: the tail has `b`'s length.
    out.get_mut(start..)
        .ok_or("R or S longer than 32 bytes")?
        .copy_from_slice(b);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: PartialEq + std::fmt::Debug>(got: SigResult<T>, expected: SigResult<T>) {
        assert_eq!(got, expected);
    }

    #[test]
    fn v_values() {
        check(eip155_v(2709), Ok((1337, 0)));
        check(eip155_v(2710), Ok((1337, 1)));
        check(eip155_v(35), Ok((0, 0)));
        check(eip155_v(27), Err("V below 35 carries no chain id"));
        check(eip155_v(u64::MAX), Ok(((u64::MAX - 35) / 2, 0)));
        check(legacy_v(27), Ok((None, 0)));
        check(legacy_v(28), Ok((None, 1)));
        check(legacy_v(37), Ok((Some(1), 0)));
        check(legacy_v(0), Err("legacy V neither 27/28 nor 35 + 2·chainId"));
        check(legacy_v(30), Err("legacy V neither 27/28 nor 35 + 2·chainId"));
        check(y_parity(1), Ok(1));
        check(y_parity(27), Err("yParity neither 0 nor 1"));
    }

    #[test]
    fn recovers_the_signer() {
        let key = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let prehash = keccak(&[b"kengate"]);
        let (sig, recid) = key.sign_prehash_recoverable(&prehash).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let expected: [u8; 20] = keccak(&[&point.as_bytes()[1..]])[12..].try_into().unwrap();
        let (r, s) = (sig.r().to_bytes(), sig.s().to_bytes());
        check(recover(&prehash, &r, &s, recid.to_byte()), Ok(expected));
        // The other recovery id yields another key (or none), never the signer.
        assert_ne!(recover(&prehash, &r, &s, recid.to_byte() ^ 1), Ok(expected));
        check(
            recover(&prehash, &[], &s, 0),
            Err("R or S is zero or not below the curve order"),
        );
        check(
            recover(&prehash, &[0xff; 32], &s, 0),
            Err("R or S is zero or not below the curve order"),
        );
        let high_s = (-*sig.s()).to_bytes();
        check(
            recover(&prehash, &r, &high_s, recid.to_byte()),
            Err("S in the upper half of the curve order"),
        );
        check(recover(&prehash, &r, &s, 4), Err("recovery id out of range"));
    }
}
