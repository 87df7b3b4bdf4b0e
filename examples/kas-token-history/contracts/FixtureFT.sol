// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

import "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import "@openzeppelin/contracts/access/Ownable.sol";
import "@openzeppelin/contracts/utils/introspection/ERC165.sol";

/// KIP-7 / ERC-20 fungible token: 18 decimals, the whole initial supply minted to the deployer.
contract FixtureFT is ERC20, ERC20Burnable, Ownable, ERC165 {
    constructor(uint256 initialSupply) ERC20("Fixture Token", "FXT") {
        _mint(msg.sender, initialSupply);
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// Passes the KLAY sent with the call on to `to`: an internal transfer (index.internal).
    function forward(address payable to) external payable {
        to.transfer(msg.value);
    }

    /// KIP-13: KIP-7 (0x65787371) and ERC-20's own id next to ERC-165's.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == 0x65787371 || interfaceId == type(IERC20).interfaceId || super.supportsInterface(interfaceId);
    }
}
