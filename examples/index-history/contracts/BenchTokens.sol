// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

// Tokens for the index backfill benchmark (scripts/bench-index --backfill): each call emits hundreds of the events a
// real KIP-7 / KIP-17 / KIP-37 token emits for an airdrop, so that a few hundred txs make 100,000 transfers. They keep
// no per-holder state (this benchmarks the index, not the EVM), but answer what the index asks a token about itself
// (name, symbol, decimals, totalSupply, KIP-13 supportsInterface, tokenURI / uri).
//
// Recipients are derived addresses: recipient k is the last 20 bytes of keccak256(salt, k), k = (first + i) % pool,
// so that a pool smaller than the number of transfers gives the same addresses several transfers each.

abstract contract Recipients {
    bytes32 public immutable salt;

    constructor(bytes32 salt_) {
        salt = salt_;
    }

    function recipient(uint256 k) public view returns (address) {
        return address(uint160(uint256(keccak256(abi.encode(salt, k)))));
    }
}

/// KIP-7 / ERC-20: the constructor mints the supply to the deployer, `airdrop` sends from the caller.
contract BenchFT is Recipients {
    event Transfer(address indexed from, address indexed to, uint256 value);

    string public constant name = "Bench Token";
    string public constant symbol = "BNT";
    uint8 public constant decimals = 18;
    uint256 public totalSupply;

    constructor(bytes32 salt_, uint256 supply) Recipients(salt_) {
        totalSupply = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function airdrop(uint256 first, uint256 n, uint256 pool, uint256 amount) external {
        for (uint256 i = 0; i < n; i++) {
            emit Transfer(msg.sender, recipient((first + i) % pool), amount);
        }
    }

    function balanceOf(address) external pure returns (uint256) {
        return 0;
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0x65787371 || id == 0x36372b07;
    }
}

/// KIP-17 / ERC-721: `mintMany` mints ids firstId.. to derived recipients.
contract BenchNFT is Recipients {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    string public constant name = "Bench NFT";
    string public constant symbol = "BNN";
    uint256 public totalSupply;

    constructor(bytes32 salt_) Recipients(salt_) {}

    function mintMany(uint256 firstId, uint256 n, uint256 first, uint256 pool) external {
        for (uint256 i = 0; i < n; i++) {
            emit Transfer(address(0), recipient((first + i) % pool), firstId + i);
        }
        totalSupply += n;
    }

    function tokenURI(uint256) external pure returns (string memory) {
        return "https://bench.kengate.test/nft.json";
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0x80ac58cd;
    }
}

/// KIP-37 / ERC-1155: `mintBatches` mints ids 1..k to each derived recipient, one TransferBatch each.
contract BenchMT is Recipients {
    event TransferBatch(
        address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values
    );

    constructor(bytes32 salt_) Recipients(salt_) {}

    function mintBatches(uint256 first, uint256 n, uint256 pool, uint256 k) external {
        uint256[] memory ids = new uint256[](k);
        uint256[] memory values = new uint256[](k);
        for (uint256 j = 0; j < k; j++) {
            ids[j] = j + 1;
            values[j] = 10 * (j + 1);
        }
        for (uint256 i = 0; i < n; i++) {
            emit TransferBatch(msg.sender, address(0), recipient((first + i) % pool), ids, values);
        }
    }

    function uri(uint256) external pure returns (string memory) {
        return "https://bench.kengate.test/mt/{id}.json";
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == 0x01ffc9a7 || id == 0x6433ca1f || id == 0xd9b67a26;
    }
}
