// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

import "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import "@openzeppelin/contracts/token/ERC721/extensions/ERC721Burnable.sol";
import "@openzeppelin/contracts/access/Ownable.sol";

/// KIP-17 / ERC-721 non-fungible token with per-token URIs. KIP-17's interface id is ERC-721's (0x80ac58cd).
contract FixtureNFT is ERC721URIStorage, ERC721Burnable, Ownable {
    constructor() ERC721("Fixture NFT", "FXN") {}

    function mint(address to, uint256 tokenId, string calldata uri) external onlyOwner {
        _safeMint(to, tokenId);
        _setTokenURI(tokenId, uri);
    }

    /// Two mints in one tx (two Transfer logs in one receipt).
    function mintPair(address to, uint256 id1, uint256 id2, string calldata uri1, string calldata uri2) external onlyOwner {
        _safeMint(to, id1);
        _setTokenURI(id1, uri1);
        _safeMint(to, id2);
        _setTokenURI(id2, uri2);
    }

    function tokenURI(uint256 tokenId) public view override(ERC721, ERC721URIStorage) returns (string memory) {
        return super.tokenURI(tokenId);
    }

    function _burn(uint256 tokenId) internal override(ERC721, ERC721URIStorage) {
        super._burn(tokenId);
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC721URIStorage) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
