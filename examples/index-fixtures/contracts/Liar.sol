// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

/// A contract that lies: `name()` reverts, it has no `symbol()`/`decimals()`/`supportsInterface()` at all, and
/// `lie()` emits logs carrying the token events' signatures (topic 0) in shapes no token emits. An index must
/// read none of them as a transfer.
contract Liar {
    bytes32 private constant TRANSFER = keccak256("Transfer(address,address,uint256)");
    bytes32 private constant TRANSFER_SINGLE = keccak256("TransferSingle(address,address,address,uint256,uint256)");
    bytes32 private constant TRANSFER_BATCH = keccak256("TransferBatch(address,address,address,uint256[],uint256[])");

    function name() external pure returns (string memory) {
        revert("Liar: no name");
    }

    function lie(address to) external {
        bytes32 t0 = TRANSFER;
        bytes32 ts = TRANSFER_SINGLE;
        bytes32 tb = TRANSFER_BATCH;
        bytes32 from = bytes32(uint256(uint160(msg.sender)));
        bytes32 dest = bytes32(uint256(uint160(to)));
        // An address topic with its 12 high bytes not zero.
        bytes32 dirty = bytes32(uint256(uint160(to)) | (uint256(0xdead) << 160));
        assembly {
            let p := mload(0x40)
            mstore(p, 1000)
            mstore(add(p, 0x20), 7)
            mstore(add(p, 0x40), 9)
            // 1. Transfer, 3 topics, 64 bytes of data (ERC-20 has 32).
            log3(p, 0x40, t0, from, dest)
            // 2. Transfer, 3 topics, no data.
            log3(p, 0, t0, from, dest)
            // 3. Transfer, 4 topics, 32 bytes of data (ERC-721 has none).
            log4(p, 0x20, t0, from, dest, 5)
            // 4. Transfer, 1 topic, from/to/value all in data (un-indexed, pre-standard style).
            mstore(add(p, 0x60), from)
            mstore(add(p, 0x80), dest)
            mstore(add(p, 0xa0), 1000)
            log1(add(p, 0x60), 0x60, t0)
            // 5. Transfer, 2 topics.
            log2(p, 0x20, t0, from)
            // 6. Transfer, 3 topics, 32 bytes, but `to` is not an address (dirty high bytes).
            log3(p, 0x20, t0, from, dirty)
            // 7. TransferSingle, 4 topics, 32 bytes of data (needs id and value: 64).
            log4(p, 0x20, ts, from, from, dest)
            // 8. TransferSingle, 3 topics, 64 bytes.
            log3(p, 0x40, ts, from, dest)
            // 9. TransferBatch, 4 topics, ids offset pointing past the data.
            let q := add(p, 0xc0)
            mstore(q, 0x1000)
            mstore(add(q, 0x20), 0x40)
            mstore(add(q, 0x40), 1)
            mstore(add(q, 0x60), 1)
            log4(q, 0x80, tb, from, from, dest)
            // 10. TransferBatch, 4 topics, 2 ids but 1 value.
            mstore(q, 0x40)
            mstore(add(q, 0x20), 0xa0)
            mstore(add(q, 0x40), 2)
            mstore(add(q, 0x60), 11)
            mstore(add(q, 0x80), 12)
            mstore(add(q, 0xa0), 1)
            mstore(add(q, 0xc0), 3)
            log4(q, 0xe0, tb, from, from, dest)
            // 11. TransferBatch, 4 topics, both arrays claiming 2^40 elements.
            mstore(q, 0x40)
            mstore(add(q, 0x20), 0x60)
            mstore(add(q, 0x40), 0x10000000000)
            mstore(add(q, 0x60), 0x10000000000)
            log4(q, 0x80, tb, from, from, dest)
        }
    }
}
