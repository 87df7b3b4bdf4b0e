//! The vocabulary of decoded transactions: addresses and transaction types with their wire codes and Klaytn's
//! names for them. No decoding here; `decode` owns that.

use std::fmt;

/// A 20-byte account address. Displays as `0x` + lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which wire form a transaction has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxType {
    /// A plain RLP list (pre-EIP-155 or EIP-155 signed).
    Legacy,
    /// A Klaytn native type: `typeByte || rlp([...])`.
    Klaytn(KlaytnType),
    /// An Ethereum typed tx: `0x78 || ethType || rlp([...])` when `wrapped` (Klaytn's envelope, what
    /// `klay_sendRawTransaction` takes), else bare `ethType || rlp([...])` (what `eth_sendRawTransaction` takes).
    Ethereum {
        /// The EIP-2718 type.
        kind: EthType,
        /// Whether the raw bytes carried Klaytn's 0x78 envelope byte.
        wrapped: bool,
    },
}

impl TxType {
    /// Klaytn's `typeInt` (what `klay_getTransactionByHash` reports): 0 for legacy, the type byte for native
    /// types, `0x78 << 8 | ethType` for Ethereum typed txs whether or not they came wrapped.
    pub fn type_int(self) -> u16 {
        match self {
            TxType::Legacy => 0,
            TxType::Klaytn(t) => u16::from(t.code()),
            TxType::Ethereum { kind, .. } => 0x7800 | u16::from(kind as u8),
        }
    }

    /// Klaytn's name for the type (its RPC `type` field), e.g. `TxTypeFeeDelegatedValueTransfer`.
    pub fn name(self) -> &'static str {
        match self {
            TxType::Legacy => "TxTypeLegacyTransaction",
            TxType::Klaytn(t) => t.name(),
            TxType::Ethereum {
                kind: EthType::AccessList,
                ..
            } => "TxTypeEthereumAccessList",
            TxType::Ethereum {
                kind: EthType::DynamicFee,
                ..
            } => "TxTypeEthereumDynamicFee",
            TxType::Ethereum {
                kind: EthType::SetCode, ..
            } => "TxTypeEthereumSetCode",
            TxType::Ethereum {
                kind: EthType::Blob, ..
            } => "TxTypeEthereumBlob",
        }
    }
}

/// Ethereum EIP-2718 types Klaytn/Kaia carry (the byte after 0x78).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EthType {
    /// EIP-2930: `[chainId, nonce, gasPrice, gas, to, value, data, accessList, yParity, r, s]`.
    AccessList = 0x01,
    /// EIP-1559: `[chainId, nonce, tip, feeCap, gas, to, value, data, accessList, yParity, r, s]`.
    DynamicFee = 0x02,
    /// EIP-4844 (Kaia v2; not in Klaytn v1.12): 1559's fields with `to` required, then
    /// `maxFeePerBlobGas` and `blobVersionedHashes`. Sent with its sidecar, as
    /// `rlp([tx, version, blobs, commitments, proofs])`; its hash covers `0x03 || rlp(tx)` only.
    Blob = 0x03,
    /// EIP-7702 (Kaia; not in Klaytn v1.12): 1559's fields with `to` required, then `authorizationList`.
    SetCode = 0x04,
}

impl EthType {
    /// The type for a byte, if Klaytn/Kaia know it.
    pub fn from_byte(b: u8) -> Option<EthType> {
        match b {
            0x01 => Some(EthType::AccessList),
            0x02 => Some(EthType::DynamicFee),
            0x03 => Some(EthType::Blob),
            0x04 => Some(EthType::SetCode),
            _ => None,
        }
    }
}

/// A Klaytn native type: what it does and who pays its fee. Its byte is `kind`'s base + `fee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KlaytnType {
    /// What the transaction does.
    pub kind: KlaytnKind,
    /// Who pays the fee.
    pub fee: FeeMode,
}

/// The action of a Klaytn native transaction (its type byte's upper bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KlaytnKind {
    /// 0x08: send KLAY to an account.
    ValueTransfer,
    /// 0x10: send KLAY with a memo.
    ValueTransferMemo,
    /// 0x20: replace the sender's account key.
    AccountUpdate,
    /// 0x28: deploy a contract.
    SmartContractDeploy,
    /// 0x30: call a contract.
    SmartContractExecution,
    /// 0x38: consume a nonce (replacing a pending tx).
    Cancel,
    /// 0x48: anchor service-chain data.
    ChainDataAnchoring,
}

/// Who pays a Klaytn native transaction's fee (its type byte's low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeeMode {
    /// +0: the sender.
    Sender,
    /// +1: a fee payer, who signs too.
    Delegated,
    /// +2: a fee payer for `feeRatio` percent, the sender for the rest.
    DelegatedWithRatio,
}

impl KlaytnKind {
    const ALL: [KlaytnKind; 7] = [
        KlaytnKind::ValueTransfer,
        KlaytnKind::ValueTransferMemo,
        KlaytnKind::AccountUpdate,
        KlaytnKind::SmartContractDeploy,
        KlaytnKind::SmartContractExecution,
        KlaytnKind::Cancel,
        KlaytnKind::ChainDataAnchoring,
    ];

    /// The type byte of the sender-pays variant.
    pub fn base(self) -> u8 {
        match self {
            KlaytnKind::ValueTransfer => 0x08,
            KlaytnKind::ValueTransferMemo => 0x10,
            KlaytnKind::AccountUpdate => 0x20,
            KlaytnKind::SmartContractDeploy => 0x28,
            KlaytnKind::SmartContractExecution => 0x30,
            KlaytnKind::Cancel => 0x38,
            KlaytnKind::ChainDataAnchoring => 0x48,
        }
    }

    /// The kind's short name, e.g. `ValueTransfer` (Klaytn's type names wrap it).
    pub fn name(self) -> &'static str {
        match self {
            KlaytnKind::ValueTransfer => "ValueTransfer",
            KlaytnKind::ValueTransferMemo => "ValueTransferMemo",
            KlaytnKind::AccountUpdate => "AccountUpdate",
            KlaytnKind::SmartContractDeploy => "SmartContractDeploy",
            KlaytnKind::SmartContractExecution => "SmartContractExecution",
            KlaytnKind::Cancel => "Cancel",
            KlaytnKind::ChainDataAnchoring => "ChainDataAnchoring",
        }
    }
}

impl KlaytnType {
    /// Every native type Klaytn v1.12 accepts (7 kinds × 3 fee modes).
    pub fn all() -> impl Iterator<Item = KlaytnType> {
        KlaytnKind::ALL.into_iter().flat_map(|kind| {
            [FeeMode::Sender, FeeMode::Delegated, FeeMode::DelegatedWithRatio].map(|fee| KlaytnType { kind, fee })
        })
    }

    /// The type for a type byte, if it is one of the 21 native types (0x18 AccountCreation and 0x40 Batch
    /// were never enabled).
    pub fn from_code(code: u8) -> Option<KlaytnType> {
        Self::all().find(|t| t.code() == code)
    }

    /// The type byte.
    pub fn code(self) -> u8 {
        self.kind.base()
            + match self.fee {
                FeeMode::Sender => 0,
                FeeMode::Delegated => 1,
                FeeMode::DelegatedWithRatio => 2,
            }
    }

    /// Whether a fee payer signs (and is named) in the transaction.
    pub fn fee_delegated(self) -> bool {
        self.fee != FeeMode::Sender
    }

    /// Klaytn's name, e.g. `TxTypeFeeDelegatedValueTransferWithRatio`.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(code, _)| *code == self.code())
            .map(|(_, name)| *name)
            .unwrap_or("TxTypeUnknown")
    }
}

/// Klaytn's type names by type byte (its `TxType.String()`); checked against `KlaytnKind::name` in tests.
const NAMES: [(u8, &str); 21] = [
    (0x08, "TxTypeValueTransfer"),
    (0x09, "TxTypeFeeDelegatedValueTransfer"),
    (0x0a, "TxTypeFeeDelegatedValueTransferWithRatio"),
    (0x10, "TxTypeValueTransferMemo"),
    (0x11, "TxTypeFeeDelegatedValueTransferMemo"),
    (0x12, "TxTypeFeeDelegatedValueTransferMemoWithRatio"),
    (0x20, "TxTypeAccountUpdate"),
    (0x21, "TxTypeFeeDelegatedAccountUpdate"),
    (0x22, "TxTypeFeeDelegatedAccountUpdateWithRatio"),
    (0x28, "TxTypeSmartContractDeploy"),
    (0x29, "TxTypeFeeDelegatedSmartContractDeploy"),
    (0x2a, "TxTypeFeeDelegatedSmartContractDeployWithRatio"),
    (0x30, "TxTypeSmartContractExecution"),
    (0x31, "TxTypeFeeDelegatedSmartContractExecution"),
    (0x32, "TxTypeFeeDelegatedSmartContractExecutionWithRatio"),
    (0x38, "TxTypeCancel"),
    (0x39, "TxTypeFeeDelegatedCancel"),
    (0x3a, "TxTypeFeeDelegatedCancelWithRatio"),
    (0x48, "TxTypeChainDataAnchoring"),
    (0x49, "TxTypeFeeDelegatedChainDataAnchoring"),
    (0x4a, "TxTypeFeeDelegatedChainDataAnchoringWithRatio"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: u8, expected: Option<(&str, u16)>) {
        let got = KlaytnType::from_code(code).map(|t| (t.name(), TxType::Klaytn(t).type_int()));
        assert_eq!(got, expected, "code 0x{code:02x}");
    }

    #[test]
    fn native_codes_and_names() {
        check(0x08, Some(("TxTypeValueTransfer", 8)));
        check(0x2a, Some(("TxTypeFeeDelegatedSmartContractDeployWithRatio", 42)));
        check(0x4a, Some(("TxTypeFeeDelegatedChainDataAnchoringWithRatio", 74)));
        for unknown in [0x00, 0x01, 0x02, 0x04, 0x0b, 0x18, 0x19, 0x40, 0x50, 0x78, 0xff] {
            check(unknown, None);
        }
        assert_eq!(KlaytnType::all().count(), 21);
        for t in KlaytnType::all() {
            let prefix = match t.fee {
                FeeMode::Sender => "TxType",
                FeeMode::Delegated | FeeMode::DelegatedWithRatio => "TxTypeFeeDelegated",
            };
            let suffix = if t.fee == FeeMode::DelegatedWithRatio {
                "WithRatio"
            } else {
                ""
            };
            assert_eq!(t.name(), format!("{prefix}{}{suffix}", t.kind.name()));
        }
    }

    #[test]
    fn ethereum_and_display() {
        let t = TxType::Ethereum {
            kind: EthType::DynamicFee,
            wrapped: false,
        };
        assert_eq!((t.type_int(), t.name()), (0x7802, "TxTypeEthereumDynamicFee"));
        assert_eq!(TxType::Legacy.type_int(), 0);
        assert_eq!(EthType::from_byte(0x03), Some(EthType::Blob));
        assert_eq!(EthType::from_byte(0x05), None);
        let mut a = [0u8; 20];
        a[0] = 0xab;
        a[19] = 0x01;
        assert_eq!(Address(a).to_string(), "0xab00000000000000000000000000000000000001");
    }
}
