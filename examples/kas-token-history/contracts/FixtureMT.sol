// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

import "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Burnable.sol";
import "@openzeppelin/contracts/access/Ownable.sol";

/// KIP-37 / ERC-1155 multi token with one `{id}` URI template.
contract FixtureMT is ERC1155, ERC1155Burnable, Ownable {
    constructor(string memory uri_) ERC1155(uri_) {}

    function mint(address to, uint256 id, uint256 amount) external onlyOwner {
        _mint(to, id, amount, "");
    }

    function mintBatch(address to, uint256[] calldata ids, uint256[] calldata amounts) external onlyOwner {
        _mintBatch(to, ids, amounts, "");
    }

    /// KIP-13: KIP-37 (0x6433ca1f) next to ERC-1155's (0xd9b67a26) and its metadata URI's (0x0e89341c).
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == 0x6433ca1f || super.supportsInterface(interfaceId);
    }
}
