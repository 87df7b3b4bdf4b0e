// Fixture recorder for kengate's token index (src/index/extract.rs): makes token and KLAY transfers of every kind
// on a REAL node and records what the node then says about the blocks that hold them, so that the extraction
// tests read genuine Klaytn v1.12.1 / Kaia v2.2.1 output instead of hand-written JSON.
//
// What it does, one tx at a time (each waits for its receipt), with accounts A = #0 (deployer, token owner),
// B = #1 of ACCOUNTS_FILE and C, D = two fresh keys derived from fixed strings that A funds:
//   1. compiles contracts/*.sol with solc-js 0.8.19 (the npm package's bundled soljson; evmVersion istanbul,
//      optimizer 200 runs) against @openzeppelin/contracts 4.9.6 and deploys
//        ft    FixtureFT   KIP-7/ERC-20 "Fixture Token"/FXT, 18 decimals, initial supply minted to A
//        nft   FixtureNFT  KIP-17/ERC-721 "Fixture NFT"/FXN with per-token URIs
//        mt    FixtureMT   KIP-37/ERC-1155 with an {id} URI
//        liar  Liar        name() reverts; lie() emits 11 logs with the Transfer/TransferSingle/TransferBatch
//                          signatures in shapes no token emits (an index must read none of them)
//      (KIP-13 supportsInterface answers true for KIP-7 0x65787371, KIP-17 0x80ac58cd, KIP-37 0x6433ca1f);
//   2. FT transfers A->B->C->D, a mint, a burn, approve + transferFrom, a fee-delegated (0x31) transfer;
//      NFT mint, a two-mint tx, transferFrom, safeTransferFrom, burn; MT mint (TransferSingle), mintBatch,
//      safeTransferFrom, safeBatchTransferFrom of 3 ids, an operator transfer, burn; KLAY: legacy and 0x08
//      value transfers, fee-delegated 0x09 and 0x0a (with ratio); the liar's lie(); two FAILED txs (a token
//      transfer over the balance and a KLAY send to a contract that rejects it, both with a manual gas limit so
//      they are mined with status 0); and a burst of four txs from three senders sent at once (so far always one block).
//      Tx types are mixed on purpose: legacy (0), Ethereum dynamic fee (2, sent with eth_sendRawTransaction),
//      and Klaytn 0x08/0x09/0x0a/0x28/0x30/0x31 (@kaiachain/ethers-ext, klay_sendRawTransaction).
//   3. writes tests/fixtures/index/<flavour>.json:
//        flavour, client_version, chain_id, solc, contracts {ft,nft,mt,liar}, accounts {A,B,C,D}, liar_logs,
//        blocks    [{number, notes, block: klay_getBlockByNumber(n,true), receipts: klay_getBlockReceipts(n),
//                    eth_block: eth_getBlockByNumber(n,true)}] for every block holding one of the txs, plus one
//                    block without txs
//        txs       [{label, hash, block_number, tx_index, type, type_int, status, from, to, value, fee_payer,
//                    fee_ratio, contract_created}] as the node reports them
//        expected  [{kind: ft|nft|mt|klay, contract, from, to, value, token_id, tx_hash, block_number, tx_index,
//                    log_index, batch_pos}] every transfer the script made, in chain order (values and ids as
//                    decimal strings; klay rows have contract, token_id and log_index null). Built from what the
//                    script meant to do; the script checks each tx's token logs against it before writing.
//        state     {block, calls: [...]} at the last recorded block: balanceOf/ownerOf of every touched holder and
//                  id, name/symbol/decimals/totalSupply/tokenURI/uri/supportsInterface of the four contracts, each
//                  with the node's raw answer or error (metadata through both eth_call and klay_call), and `decoded`.
//                  The script checks the balances against the ones `expected` implies.
//
// Run it on a throwaway single-validator chain, never the shared cluster (examples/vectors/anchor-node.sh: its
// own genesis, ports and funded keys; it takes ordinary txs too). Both flavours, from the repo root:
//   (cd examples/index-fixtures && npm ci)
//   examples/vectors/anchor-node.sh up
//   set -a && . "${TMPDIR:-/tmp}/kengate-anchor-node/env" && set +a && node examples/index-fixtures/record.js
//   examples/vectors/anchor-node.sh down
//   examples/vectors/anchor-node.sh --flavour kaia up
//   set -a && . "${TMPDIR:-/tmp}/kengate-anchor-node-kaia/env" && set +a && node examples/index-fixtures/record.js
//   examples/vectors/anchor-node.sh --flavour kaia down
// Env: RPC_URL (default ANCHOR_HTTP), ACCOUNTS_FILE (default ANCHOR_ACCOUNTS; JSON [{address, privateKey}], at
// least 2, #0 and #1 funded), CHAIN_ID (checked if set), FLAVOUR (klaytn|kaia; default ANCHOR_FLAVOUR, else
// guessed from the client version, which must match: Klaytn/v1.x or Klaytn|Kaia/v2.x), OUT (default
// tests/fixtures/index/<flavour>.json). Takes a minute or two (a block a second). Addresses, hashes and
// block numbers differ from run to run; the test reads them from the file.
'use strict'
const fs = require('fs')
const path = require('path')
const solc = require('solc')
const { ethers } = require('ethers')
const ext = require('@kaiachain/ethers-ext/v6')

const ROOT = path.join(__dirname, '..', '..')
const RECEIPT_TIMEOUT_MS = 60000
const T = ext.TxType
const ZERO = ethers.ZeroAddress

const FLAVOURS = {
    klaytn: { version: /^Klaytn\/v1\./, title: 'Klaytn v1.x' },
    kaia: { version: /^(Klaytn|Kaia)\/v2\./, title: 'Kaia v2.x' },
}

const SIG = {
    Transfer: ethers.id('Transfer(address,address,uint256)'),
    TransferSingle: ethers.id('TransferSingle(address,address,address,uint256,uint256)'),
    TransferBatch: ethers.id('TransferBatch(address,address,address,uint256[],uint256[])'),
}

// What Liar.lie(to) logs, in order (see contracts/Liar.sol); none of it is a transfer.
const LIAR_LOGS = [
    'Transfer, 3 topics, 64 bytes of data (ERC-20 has 32)',
    'Transfer, 3 topics, no data',
    'Transfer, 4 topics, 32 bytes of data (ERC-721 has none)',
    'Transfer, 1 topic, from/to/value all in 96 bytes of data (un-indexed)',
    'Transfer, 2 topics, 32 bytes',
    'Transfer, 3 topics, 32 bytes, `to` topic with non-zero high bytes (not an address)',
    'TransferSingle, 4 topics, 32 bytes of data (needs 64)',
    'TransferSingle, 3 topics, 64 bytes',
    'TransferBatch, 4 topics, ids offset 0x1000 past the end of the data',
    'TransferBatch, 4 topics, 2 ids but 1 value',
    'TransferBatch, 4 topics, both arrays claiming 2^40 elements',
]

function env(name, fallback) {
    const v = process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

const lc = a => (a == null ? null : String(a).toLowerCase())
const hex = n => '0x' + BigInt(n).toString(16)
const dec = n => BigInt(n).toString(10)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// ---- JSON-RPC ----------------------------------------------------------------------------------------------

let RPC_URL
let rpcId = 0
class RpcError extends Error {
    constructor(method, error) {
        super(`${method}: ${error.message} (code ${error.code})`)
        this.rpc = error
    }
}
async function rpc(method, params) {
    const res = await fetch(RPC_URL, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    })
    const body = await res.json()
    if (body.error) throw new RpcError(method, body.error)
    return body.result
}
// The node's answer either way: {result} or {error} exactly as it sent them.
async function rpcAnswer(method, params) {
    try {
        return { result: await rpc(method, params) }
    } catch (e) {
        if (e instanceof RpcError) return { error: e.rpc }
        throw e
    }
}

// ---- compiling ---------------------------------------------------------------------------------------------

function compile() {
    const dir = path.join(__dirname, 'contracts')
    const sources = {}
    for (const f of fs.readdirSync(dir).filter(f => f.endsWith('.sol')).sort()) {
        sources[f] = { content: fs.readFileSync(path.join(dir, f), 'utf8') }
    }
    const input = {
        language: 'Solidity',
        sources,
        settings: {
            optimizer: { enabled: true, runs: 200 },
            evmVersion: 'istanbul',
            outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
        },
    }
    const findImports = p => {
        try {
            return { contents: fs.readFileSync(require.resolve(p, { paths: [__dirname] }), 'utf8') }
        } catch (e) {
            return { error: `${p}: ${e.message}` }
        }
    }
    const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))
    const errors = (out.errors || []).filter(e => e.severity === 'error')
    if (errors.length) throw new Error('solc: ' + errors.map(e => e.formattedMessage).join('\n'))
    const get = (file, name) => {
        const c = out.contracts[file][name]
        return { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object, iface: new ethers.Interface(c.abi) }
    }
    return {
        ft: get('FixtureFT.sol', 'FixtureFT'),
        nft: get('FixtureNFT.sol', 'FixtureNFT'),
        mt: get('FixtureMT.sol', 'FixtureMT'),
        liar: get('Liar.sol', 'Liar'),
    }
}

// ---- main --------------------------------------------------------------------------------------------------

async function main() {
    RPC_URL = env('RPC_URL', process.env.ANCHOR_HTTP)
    const accounts = JSON.parse(fs.readFileSync(env('ACCOUNTS_FILE', process.env.ANCHOR_ACCOUNTS), 'utf8'))
    if (accounts.length < 2) throw new Error('ACCOUNTS_FILE needs at least 2 funded accounts')

    let clientVersion
    try {
        clientVersion = await rpc('web3_clientVersion', [])
    } catch (e) {
        if (!(e instanceof RpcError)) throw e
        clientVersion = await rpc('klay_clientVersion', []) // anchor-node.sh does not enable web3_
    }
    const flavour = process.env.FLAVOUR || process.env.ANCHOR_FLAVOUR ||
        Object.keys(FLAVOURS).find(f => FLAVOURS[f].version.test(clientVersion))
    if (!FLAVOURS[flavour]) throw new Error(`unknown flavour ${flavour} (client ${clientVersion})`)
    if (!FLAVOURS[flavour].version.test(clientVersion)) {
        throw new Error(`${RPC_URL} runs ${clientVersion}, not ${FLAVOURS[flavour].title} (flavour ${flavour})`)
    }
    const chainId = Number(BigInt(await rpc('eth_chainId', [])))
    if (process.env.CHAIN_ID && Number(process.env.CHAIN_ID) !== chainId) {
        throw new Error(`node chain id ${chainId}, expected ${process.env.CHAIN_ID}`)
    }
    const OUT = process.env.OUT || path.join(ROOT, 'tests', 'fixtures', 'index', `${flavour}.json`)

    const provider = new ext.JsonRpcProvider(RPC_URL)
    const wallets = {
        A: new ext.Wallet(accounts[0].privateKey, provider),
        B: new ext.Wallet(accounts[1].privateKey, provider),
        C: new ext.Wallet(ethers.id('kengate index fixtures: account C'), provider),
        D: new ext.Wallet(ethers.id('kengate index fixtures: account D'), provider),
    }
    const addr = Object.fromEntries(Object.entries(wallets).map(([k, w]) => [k, lc(w.address)]))
    console.log(`${flavour}: ${RPC_URL} (${clientVersion}), chain ${chainId}; A ${addr.A}, B ${addr.B}, C ${addr.C}, ` +
        `D ${addr.D}; writing ${path.relative(process.cwd(), OUT)}`)

    const C = compile()
    console.log(`compiled with solc ${solc.version()}`)

    // ---- sending ----

    const nonces = {}
    const nextNonce = async who => {
        if (nonces[who] === undefined) nonces[who] = Number(BigInt(await rpc('eth_getTransactionCount', [addr[who], 'pending'])))
        return nonces[who]++
    }
    const gasPrice = async () => BigInt(await rpc('klay_gasPrice', []))
    const estimate = async (who, f) => {
        const call = { from: addr[who], to: f.to || undefined, data: f.data || '0x', value: hex(f.value || 0) }
        const g = BigInt(await rpc('eth_estimateGas', [call]))
        return (g * 3n) / 2n + 10000n
    }

    const txs = [] // {label, hash, who, feePayer, type, intents, expectFail, receipt, tx}
    const contracts = {}

    // Signs and sends one tx; returns its record (not yet mined). f: {type, to, value, data, gasLimit, feeRatio},
    // `intents`: the token transfers it should log, in order: {kind, contract, from, to, value, token_id}.
    async function submit(label, who, f, { feePayer, intents = [], expectFail = false } = {}) {
        const w = wallets[who]
        const gasLimit = f.gasLimit || (await estimate(who, f))
        const gp = await gasPrice()
        const nonce = await nextNonce(who)
        let raw
        let method
        if (f.type === 0 || f.type === 2) {
            const tx = { type: f.type, chainId, nonce, gasLimit, to: f.to || null, value: f.value || 0n, data: f.data || '0x' }
            if (f.type === 0) tx.gasPrice = gp
            else {
                tx.maxFeePerGas = gp
                tx.maxPriorityFeePerGas = BigInt(await rpc('eth_maxPriorityFeePerGas', []))
            }
            raw = await new ethers.Wallet(w.privateKey).signTransaction(tx)
            method = 'eth_sendRawTransaction'
        } else {
            const tx = { type: f.type, from: w.address, chainId, nonce, gasLimit, gasPrice: gp, to: f.to || ZERO, value: f.value || 0n }
            if (f.data) tx.data = f.data
            if (f.type === T.SmartContractDeploy) Object.assign(tx, { humanReadable: false, codeFormat: 0 })
            if (f.feeRatio !== undefined) tx.feeRatio = f.feeRatio
            raw = await w.signTransaction(tx)
            if (ext.isFeePayerSigTxType(f.type)) raw = await wallets[feePayer].signTransactionAsFeePayer(raw)
            method = 'klay_sendRawTransaction'
        }
        const hash = await rpc(method, [raw])
        const rec = { label, hash: lc(hash), who, feePayer, type: f.type, value: BigInt(f.value || 0), intents, expectFail }
        txs.push(rec)
        console.log(`${label}: sent ${hash} (type ${f.type}, nonce ${nonce})`)
        return rec
    }

    async function mined(rec) {
        const deadline = Date.now() + RECEIPT_TIMEOUT_MS
        for (;;) {
            const r = await rpc('klay_getTransactionReceipt', [rec.hash])
            if (r) {
                const ok = Number(BigInt(r.status)) === 1
                if (ok === rec.expectFail) throw new Error(`${rec.label}: receipt status ${r.status}, block ${BigInt(r.blockNumber)}`)
                rec.receipt = r
                rec.tx = await rpc('klay_getTransactionByHash', [rec.hash])
                if (lc(rec.tx.feePayer) !== (rec.feePayer ? addr[rec.feePayer] : null)) {
                    throw new Error(`${rec.label}: node says fee payer ${rec.tx.feePayer}, expected ${rec.feePayer ? addr[rec.feePayer] : 'none'}`)
                }
                console.log(`${rec.label}: mined in block ${BigInt(r.blockNumber)}, status ${r.status}, gas ${BigInt(r.gasUsed)}`)
                return rec
            }
            if (Date.now() > deadline) throw new Error(`${rec.label}: no receipt for ${rec.hash} after ${RECEIPT_TIMEOUT_MS / 1000}s`)
            await sleep(250)
        }
    }
    const send = async (...args) => mined(await submit(...args))
    async function deploy(label, who, name, type, args = []) {
        const data = C[name].bytecode + C[name].iface.encodeDeploy(args).slice(2)
        const gasLimit = (BigInt(await rpc('eth_estimateGas', [{ from: addr[who], data }])) * 3n) / 2n
        // The constructor's mint is known only once the address is; filled in below.
        const rec = await send(label, who, { type, data, gasLimit })
        const created = lc(rec.receipt.contractAddress)
        if (!created || created === ZERO) throw new Error(`${label}: no contractAddress`)
        contracts[name] = created
        return rec
    }
    const ft = (from, to, value) => ({ kind: 'ft', contract: 'ft', from, to, value: BigInt(value), token_id: null })
    const nft = (from, to, id) => ({ kind: 'nft', contract: 'nft', from, to, value: 1n, token_id: BigInt(id) })
    const mt = (from, to, id, value) => ({ kind: 'mt', contract: 'mt', from, to, value: BigInt(value), token_id: BigInt(id) })
    const E18 = 10n ** 18n
    const KLAY = E18

    // ---- 1. funding and deploys ----
    await send('legacy KLAY transfer A->C (funds C)', 'A', { type: 0, to: addr.C, value: 10n * KLAY, gasLimit: 21000n })
    await send('ValueTransfer (0x08) A->D (funds D)', 'A', { type: T.ValueTransfer, to: addr.D, value: 10n * KLAY, gasLimit: 25000n })
    const ftDeploy = await deploy('deploy FT (type 2; constructor mints 1000000 FXT to A)', 'A', 'ft', 2, [1_000_000n * E18])
    ftDeploy.intents = [ft(ZERO, addr.A, 1_000_000n * E18)]
    await deploy('deploy NFT (legacy)', 'A', 'nft', 0)
    await deploy('deploy MT (SmartContractDeploy 0x28)', 'A', 'mt', T.SmartContractDeploy, ['https://fixtures.kengate.test/mt/{id}.json'])
    await deploy('deploy liar (type 2)', 'A', 'liar', 2)
    const to = c => contracts[c]

    // ---- 2. FT ----
    const ftCall = (fn, args) => ({ to: to('ft'), data: C.ft.iface.encodeFunctionData(fn, args) })
    await send('FT transfer A->B 1000 (type 2)', 'A', { type: 2, ...ftCall('transfer', [addr.B, 1000n * E18]) },
        { intents: [ft(addr.A, addr.B, 1000n * E18)] })
    await send('FT transfer B->C 250 (legacy)', 'B', { type: 0, ...ftCall('transfer', [addr.C, 250n * E18]) },
        { intents: [ft(addr.B, addr.C, 250n * E18)] })
    await send('FT transfer C->D 100 (SmartContractExecution 0x30)', 'C', { type: T.SmartContractExecution, ...ftCall('transfer', [addr.D, 100n * E18]) },
        { intents: [ft(addr.C, addr.D, 100n * E18)] })
    await send('FT mint 500 to C (type 2)', 'A', { type: 2, ...ftCall('mint', [addr.C, 500n * E18]) },
        { intents: [ft(ZERO, addr.C, 500n * E18)] })
    await send('FT burn 40 by D (legacy)', 'D', { type: 0, ...ftCall('burn', [40n * E18]) },
        { intents: [ft(addr.D, ZERO, 40n * E18)] })
    await send('FT approve B for 300 of A (Approval only, no transfer)', 'A', { type: 0, ...ftCall('approve', [addr.B, 300n * E18]) })
    await send('FT transferFrom A->D 200 by B (type 2; Approval + Transfer)', 'B', { type: 2, ...ftCall('transferFrom', [addr.A, addr.D, 200n * E18]) },
        { intents: [ft(addr.A, addr.D, 200n * E18)] })
    await send('FT transfer B->C 50, fee-delegated (0x31, fee payer A)', 'B',
        { type: T.FeeDelegatedSmartContractExecution, ...ftCall('transfer', [addr.C, 50n * E18]) },
        { feePayer: 'A', intents: [ft(addr.B, addr.C, 50n * E18)] })

    // ---- 3. NFT ----
    const uri = id => `https://fixtures.kengate.test/nft/${id}.json`
    const nftCall = (fn, args) => ({ to: to('nft'), data: C.nft.iface.encodeFunctionData(fn, args) })
    await send('NFT mint #1 to A (type 2; Transfer + MetadataUpdate)', 'A', { type: 2, ...nftCall('mint', [addr.A, 1n, uri(1)]) },
        { intents: [nft(ZERO, addr.A, 1)] })
    await send('NFT mintPair #2 #3 to B in one tx (0x30)', 'A', { type: T.SmartContractExecution, ...nftCall('mintPair', [addr.B, 2n, 3n, uri(2), uri(3)]) },
        { intents: [nft(ZERO, addr.B, 2), nft(ZERO, addr.B, 3)] })
    await send('NFT transferFrom #1 A->C (legacy)', 'A', { type: 0, ...nftCall('transferFrom', [addr.A, addr.C, 1n]) },
        { intents: [nft(addr.A, addr.C, 1)] })
    await send('NFT safeTransferFrom #2 B->D (type 2)', 'B', { type: 2, ...nftCall('safeTransferFrom(address,address,uint256)', [addr.B, addr.D, 2n]) },
        { intents: [nft(addr.B, addr.D, 2)] })
    await send('NFT burn #3 by B (legacy)', 'B', { type: 0, ...nftCall('burn', [3n]) },
        { intents: [nft(addr.B, ZERO, 3)] })

    // ---- 4. MT ----
    const mtCall = (fn, args) => ({ to: to('mt'), data: C.mt.iface.encodeFunctionData(fn, args) })
    await send('MT mint id 1 x100 to A (TransferSingle, type 2)', 'A', { type: 2, ...mtCall('mint', [addr.A, 1n, 100n]) },
        { intents: [mt(ZERO, addr.A, 1, 100)] })
    await send('MT mintBatch ids 2,3,4 x10,20,30 to A (TransferBatch, 0x30)', 'A',
        { type: T.SmartContractExecution, ...mtCall('mintBatch', [addr.A, [2n, 3n, 4n], [10n, 20n, 30n]]) },
        { intents: [mt(ZERO, addr.A, 2, 10), mt(ZERO, addr.A, 3, 20), mt(ZERO, addr.A, 4, 30)] })
    await send('MT safeTransferFrom id 1 x5 A->B (TransferSingle, legacy)', 'A',
        { type: 0, ...mtCall('safeTransferFrom', [addr.A, addr.B, 1n, 5n, '0x']) },
        { intents: [mt(addr.A, addr.B, 1, 5)] })
    await send('MT safeBatchTransferFrom ids 1,2,3 x7,3,4 A->C (TransferBatch, type 2)', 'A',
        { type: 2, ...mtCall('safeBatchTransferFrom', [addr.A, addr.C, [1n, 2n, 3n], [7n, 3n, 4n], '0x']) },
        { intents: [mt(addr.A, addr.C, 1, 7), mt(addr.A, addr.C, 2, 3), mt(addr.A, addr.C, 3, 4)] })
    await send('MT setApprovalForAll(D) by B (ApprovalForAll only)', 'B', { type: 0, ...mtCall('setApprovalForAll', [addr.D, true]) })
    await send('MT safeTransferFrom id 1 x2 B->C by operator D (TransferSingle, operator != from)', 'D',
        { type: 2, ...mtCall('safeTransferFrom', [addr.B, addr.C, 1n, 2n, '0x']) },
        { intents: [mt(addr.B, addr.C, 1, 2)] })
    await send('MT burn id 2 x1 by C (TransferSingle to zero, 0x30)', 'C',
        { type: T.SmartContractExecution, ...mtCall('burn', [addr.C, 2n, 1n]) },
        { intents: [mt(addr.C, ZERO, 2, 1)] })

    // ---- 5. the liar, KLAY, failures ----
    const lie = await send('liar lie(B) by C: 11 malformed Transfer/TransferSingle/TransferBatch logs, none a transfer', 'C',
        { type: T.SmartContractExecution, to: to('liar'), data: C.liar.iface.encodeFunctionData('lie', [addr.B]) })
    if (lie.receipt.logs.length !== LIAR_LOGS.length) throw new Error(`liar: ${lie.receipt.logs.length} logs, expected ${LIAR_LOGS.length}`)
    await send('legacy KLAY transfer B->D 1', 'B', { type: 0, to: addr.D, value: 1n * KLAY, gasLimit: 21000n })
    await send('fee-delegated ValueTransfer (0x09) C->D 0.5, fee payer A', 'C',
        { type: T.FeeDelegatedValueTransfer, to: addr.D, value: KLAY / 2n, gasLimit: 50000n }, { feePayer: 'A' })
    await send('fee-delegated ValueTransferWithRatio (0x0a, 30%) D->C 0.25, fee payer B', 'D',
        { type: T.FeeDelegatedValueTransferWithRatio, to: addr.C, value: KLAY / 4n, feeRatio: 30, gasLimit: 50000n }, { feePayer: 'B' })
    await send('FAILED: FT transfer C->D of 10^30 FXT (over the balance; legacy, gas limit 100000, status 0)', 'C',
        { type: 0, ...ftCall('transfer', [addr.D, 10n ** 30n]), gasLimit: 100000n }, { expectFail: true })
    await send('FAILED: 1 KLAY to the FT contract, which has no receive() (type 2, gas limit 100000, status 0; value must not count)', 'D',
        { type: 2, to: to('ft'), value: KLAY, gasLimit: 100000n }, { expectFail: true })

    // ---- 6. a burst: three senders at once, most likely one block ----
    const burst = [
        await submit('burst: FT transfer A->C 1 (type 2)', 'A', { type: 2, ...ftCall('transfer', [addr.C, 1n * E18]) },
            { intents: [ft(addr.A, addr.C, 1n * E18)] }),
        await submit('burst: MT safeTransferFrom id 4 x6 A->D (legacy)', 'A', { type: 0, ...mtCall('safeTransferFrom', [addr.A, addr.D, 4n, 6n, '0x']) },
            { intents: [mt(addr.A, addr.D, 4, 6)] }),
        await submit('burst: NFT transferFrom #1 C->B (0x30)', 'C', { type: T.SmartContractExecution, ...nftCall('transferFrom', [addr.C, addr.B, 1n]) },
            { intents: [nft(addr.C, addr.B, 1)] }),
        await submit('burst: ValueTransfer (0x08) D->A 0.1', 'D', { type: T.ValueTransfer, to: addr.A, value: KLAY / 10n, gasLimit: 25000n }),
    ]
    for (const rec of burst) await mined(rec)

    // ---- expected transfers, checked against each receipt's token logs ----
    const tokenOf = Object.fromEntries(Object.entries(contracts).map(([k, a]) => [a, k]))
    const expected = []
    for (const rec of txs) {
        const r = rec.receipt
        const ok = Number(BigInt(r.status)) === 1
        const base = { tx_hash: rec.hash, block_number: Number(BigInt(r.blockNumber)), tx_index: Number(BigInt(r.transactionIndex)) }
        if (ok && rec.value > 0n) {
            expected.push({ kind: 'klay', contract: null, from: lc(rec.tx.from), to: lc(rec.tx.to), value: dec(rec.value),
                token_id: null, ...base, log_index: null, batch_pos: 0 })
        }
        // What the node logged from the three token contracts (ethers' ABI decoding).
        const logged = []
        for (const log of r.logs) {
            const name = tokenOf[lc(log.address)]
            if (!name || name === 'liar' || !Object.values(SIG).includes(log.topics[0])) continue
            const ev = C[name].iface.parseLog(log)
            const li = Number(BigInt(log.logIndex))
            if (ev.name === 'Transfer' && name === 'ft') logged.push({ kind: 'ft', contract: 'ft', from: ev.args[0], to: ev.args[1], value: ev.args[2], token_id: null, li, pos: 0 })
            else if (ev.name === 'Transfer') logged.push({ kind: 'nft', contract: name, from: ev.args[0], to: ev.args[1], value: 1n, token_id: ev.args[2], li, pos: 0 })
            else if (ev.name === 'TransferSingle') logged.push({ kind: 'mt', contract: name, from: ev.args[1], to: ev.args[2], value: ev.args[4], token_id: ev.args[3], li, pos: 0 })
            else if (ev.name === 'TransferBatch') {
                ev.args[3].forEach((id, pos) => logged.push({ kind: 'mt', contract: name, from: ev.args[1], to: ev.args[2], value: ev.args[4][pos], token_id: id, li, pos }))
            }
        }
        const want = ok ? rec.intents : []
        const same = (a, b) => a.kind === b.kind && a.contract === b.contract && lc(a.from) === lc(b.from) && lc(a.to) === lc(b.to) &&
            a.value === b.value && String(a.token_id) === String(b.token_id)
        if (logged.length !== want.length || !want.every((w, i) => same(w, logged[i]))) {
            throw new Error(`${rec.label}: logged ${JSON.stringify(logged, (k, v) => (typeof v === 'bigint' ? dec(v) : v))}, ` +
                `meant ${JSON.stringify(want, (k, v) => (typeof v === 'bigint' ? dec(v) : v))}`)
        }
        want.forEach((w, i) => expected.push({
            kind: w.kind, contract: contracts[w.contract], from: lc(w.from), to: lc(w.to), value: dec(w.value),
            token_id: w.token_id === null ? null : dec(w.token_id), ...base, log_index: logged[i].li, batch_pos: logged[i].pos,
        }))
    }
    expected.sort((a, b) => a.block_number - b.block_number || a.tx_index - b.tx_index ||
        (a.log_index ?? -1) - (b.log_index ?? -1) || a.batch_pos - b.batch_pos)

    // ---- blocks ----
    const byBlock = new Map()
    for (const rec of txs) {
        const n = Number(BigInt(rec.receipt.blockNumber))
        if (!byBlock.has(n)) byBlock.set(n, [])
        byBlock.get(n).push(rec)
    }
    const numbers = [...byBlock.keys()].sort((a, b) => a - b)
    const lastBlock = numbers[numbers.length - 1]
    // One block without txs: the first one after the first tx block that has none.
    let emptyBlock = null
    for (let n = numbers[0] + 1; n <= lastBlock + 3 && emptyBlock === null; n++) {
        if (byBlock.has(n)) continue
        while (Number(BigInt(await rpc('klay_blockNumber', []))) < n) await sleep(250)
        const b = await rpc('klay_getBlockByNumber', [hex(n), false])
        if (b.transactions.length === 0) emptyBlock = n
    }
    const blocks = []
    for (const n of [...numbers, ...(emptyBlock === null ? [] : [emptyBlock])].sort((a, b) => a - b)) {
        const recs = (byBlock.get(n) || []).slice().sort((a, b) => Number(BigInt(a.receipt.transactionIndex) - BigInt(b.receipt.transactionIndex)))
        const block = await rpc('klay_getBlockByNumber', [hex(n), true])
        const receipts = await rpc('klay_getBlockReceipts', [hex(n)])
        const ethBlock = await rpc('eth_getBlockByNumber', [hex(n), true])
        if (block.transactions.length !== receipts.length) throw new Error(`block ${n}: ${block.transactions.length} txs, ${receipts.length} receipts`)
        const notes = recs.length === 0 ? 'no transactions' :
            recs.map(r => `tx ${BigInt(r.receipt.transactionIndex)}: ${r.label}`).join('; ')
        blocks.push({ number: n, notes, block, receipts, eth_block: ethBlock })
    }

    // ---- state at the last block ----
    const at = hex(lastBlock)
    const calls = []
    async function probe(name, fn, args = [], both = false) {
        const frag = C[name].iface.getFunction(fn)
        const data = C[name].iface.encodeFunctionData(frag, args)
        const req = { to: contracts[name], data }
        const entry = { contract: name, address: contracts[name], method: frag.format('sighash'), args: args.map(a => (typeof a === 'bigint' ? dec(a) : a)), data }
        entry.eth_call = await rpcAnswer('eth_call', [req, at])
        if (both) entry.klay_call = await rpcAnswer('klay_call', [req, at])
        if (entry.eth_call.result !== undefined) {
            const v = C[name].iface.decodeFunctionResult(frag, entry.eth_call.result)[0]
            entry.decoded = typeof v === 'bigint' ? dec(v) : typeof v === 'string' && ethers.isAddress(v) ? lc(v) : v
        }
        calls.push(entry)
        return entry
    }
    // A liar or a contract without the function: the ABI of another contract says how to ask.
    async function probeAs(name, abiOf, fn, args = []) {
        const frag = C[abiOf].iface.getFunction(fn)
        const data = C[abiOf].iface.encodeFunctionData(frag, args)
        const req = { to: contracts[name], data }
        const entry = { contract: name, address: contracts[name], method: frag.format('sighash'), args: args.map(a => (typeof a === 'bigint' ? dec(a) : a)), data }
        entry.eth_call = await rpcAnswer('eth_call', [req, at])
        entry.klay_call = await rpcAnswer('klay_call', [req, at])
        calls.push(entry)
        return entry
    }
    const IDS = { KIP13: '0x01ffc9a7', KIP7: '0x65787371', ERC20: '0x36372b07', KIP17: '0x80ac58cd', ERC721Metadata: '0x5b5e139f', KIP37: '0x6433ca1f', ERC1155: '0xd9b67a26', ERC1155MetadataURI: '0x0e89341c', none: '0xffffffff' }
    for (const fn of ['name', 'symbol', 'decimals', 'totalSupply']) await probe('ft', fn, [], true)
    for (const id of [IDS.KIP13, IDS.KIP7, IDS.ERC20, IDS.KIP17, IDS.none]) await probe('ft', 'supportsInterface', [id], true)
    for (const fn of ['name', 'symbol']) await probe('nft', fn, [], true)
    await probeAs('nft', 'ft', 'decimals')
    await probeAs('nft', 'ft', 'totalSupply')
    for (const id of [1n, 2n, 3n]) await probe('nft', 'tokenURI', [id], true)
    for (const id of [IDS.KIP13, IDS.KIP17, IDS.ERC721Metadata, IDS.KIP7, IDS.KIP37, IDS.none]) await probe('nft', 'supportsInterface', [id], true)
    await probeAs('mt', 'ft', 'name')
    for (const id of [1n, 4n]) await probe('mt', 'uri', [id], true)
    for (const id of [IDS.KIP13, IDS.KIP37, IDS.ERC1155, IDS.ERC1155MetadataURI, IDS.KIP17, IDS.none]) await probe('mt', 'supportsInterface', [id], true)
    await probe('liar', 'name', [], true)
    for (const fn of ['symbol', 'decimals', 'totalSupply']) await probeAs('liar', 'ft', fn)
    await probeAs('liar', 'ft', 'supportsInterface', [IDS.KIP13])

    // Balances implied by `expected`, checked against the node's.
    const ftBal = {}
    const nftOwner = {}
    const mtBal = {}
    let ftSupply = 0n
    const add = (m, k, v) => { m[k] = (m[k] || 0n) + v }
    for (const e of expected) {
        const v = BigInt(e.value)
        if (e.kind === 'ft') {
            if (e.from !== ZERO) add(ftBal, e.from, -v); else ftSupply += v
            if (e.to !== ZERO) add(ftBal, e.to, v); else ftSupply -= v
        } else if (e.kind === 'nft') nftOwner[e.token_id] = e.to
        else if (e.kind === 'mt') {
            if (e.from !== ZERO) add(mtBal, `${e.from}/${e.token_id}`, -v)
            if (e.to !== ZERO) add(mtBal, `${e.to}/${e.token_id}`, v)
        }
    }
    const holders = [addr.A, addr.B, addr.C, addr.D]
    const mismatch = []
    const check = (what, got, want) => { if (String(got) !== String(want)) mismatch.push(`${what}: node ${got}, expected ${want}`) }
    check('ft totalSupply', calls.find(c => c.contract === 'ft' && c.method === 'totalSupply()').decoded, ftSupply)
    for (const h of holders) check(`ft balanceOf(${h})`, (await probe('ft', 'balanceOf', [h])).decoded, ftBal[h] || 0n)
    for (const h of holders) {
        const n = Object.values(nftOwner).filter(o => o === h).length
        check(`nft balanceOf(${h})`, (await probe('nft', 'balanceOf', [h])).decoded, n)
    }
    for (const id of [1n, 2n, 3n]) {
        const e = await probe('nft', 'ownerOf', [id])
        const want = nftOwner[dec(id)]
        check(`nft ownerOf(${id})`, e.eth_call.error ? ZERO : e.decoded, want)
    }
    for (const h of holders) {
        for (const id of [1n, 2n, 3n, 4n]) check(`mt balanceOf(${h}, ${id})`, (await probe('mt', 'balanceOf', [h, id])).decoded, mtBal[`${h}/${id}`] || 0n)
    }
    if (mismatch.length) throw new Error('node state differs from the expected transfers:\n  ' + mismatch.join('\n  '))

    // ---- write ----
    const fixture = {
        flavour,
        client_version: clientVersion,
        chain_id: chainId,
        solc: solc.version(),
        contracts,
        accounts: addr,
        blocks,
        txs: txs.map(rec => ({
            label: rec.label,
            hash: rec.hash,
            block_number: Number(BigInt(rec.receipt.blockNumber)),
            tx_index: Number(BigInt(rec.receipt.transactionIndex)),
            type: rec.tx.type,
            type_int: rec.tx.typeInt ?? null,
            status: Number(BigInt(rec.receipt.status)),
            from: lc(rec.tx.from),
            to: lc(rec.tx.to),
            value: dec(rec.value),
            fee_payer: lc(rec.tx.feePayer),
            fee_ratio: rec.tx.feeRatio === undefined ? null : Number(BigInt(rec.tx.feeRatio)),
            contract_created: rec.tx.to == null ? lc(rec.receipt.contractAddress) : null,
        })).sort((a, b) => a.block_number - b.block_number || a.tx_index - b.tx_index),
        liar_logs: LIAR_LOGS,
        expected,
        state: { block: lastBlock, calls },
    }
    fs.mkdirSync(path.dirname(OUT), { recursive: true })
    fs.writeFileSync(OUT, JSON.stringify(fixture, null, 1) + '\n')
    const count = k => expected.filter(e => e.kind === k).length
    console.log(`wrote ${path.relative(process.cwd(), OUT)}: ${blocks.length} blocks, ${txs.length} txs, transfers ` +
        `ft ${count('ft')}, nft ${count('nft')}, mt ${count('mt')}, klay ${count('klay')}` +
        `${emptyBlock === null ? ' (no empty block found)' : `, empty block ${emptyBlock}`}`)
}

main().then(
    () => {
        console.log('index-fixtures: OK')
        process.exit(0)
    },
    err => {
        console.error(`index-fixtures: FAILED: ${err && err.stack ? err.stack : err}`)
        process.exit(1)
    }
)
