// make.js: the transfers kengate's index must then report. Deploys a KIP-7, a KIP-17 and a KIP-37 token on the
// local cluster THROUGH KENGATE (RPC_URL) and makes transfers of every kind, one tx at a time (each waits for its
// receipt), then writes what it did to expected.json for check.js.
//
// Accounts: the funder Z = ACCOUNTS_FILE[FUNDER_INDEX] (default 6) and five fresh random keys made for this run,
// A, B, C, D and the fee payer F, which Z funds (so each one's history is exactly what this script did).
//   KLAY    Z funds A..F (legacy, 0x08, type 2); B->D legacy, A->C 0x08, C->D fee-delegated 0x09 (fee payer F),
//           D->C fee-delegated with ratio 0x0a (30%, fee payer F), D->A type 2
//   FT      FixtureFT "Fixture Token"/FXT (18 decimals; the constructor mints 1,000,000 to A): transfers of
//           types 2, 0, 0x30, a fee-delegated 0x31 (fee payer F), a mint, a burn, a fractional amount (1.5)
//   NFT     FixtureNFT "Fixture NFT"/FXN: mint, a two-mint tx, transferFrom, safeTransferFrom, burn, a
//           fee-delegated mint, a mint of id 1000
//   MT      FixtureMT (KIP-37, URI template): mint (TransferSingle), mintBatch and safeBatchTransferFrom
//           (TransferBatch), safeTransferFrom, a transfer by an approved operator (operator != from), burn
//   FAILED  one FT transfer over the balance (legacy, manual gas limit: mined with status 0)
// Contracts are copies of examples/index-fixtures/contracts (solc-js 0.8.19, evmVersion istanbul, optimizer 200).
//
// expected.json: {chain_id, rpc_url, first_block, last_block, accounts {Z,A,B,C,D,F}, contracts {ft,nft,mt: {address,
// name, symbol, decimals, type, deploy_tx, deploy_block, created_at}}, txs [every tx: label, hash, block_number,
// block_hash, tx_index, timestamp, type_int, status, from, to, value, fee, fee_payer, fee_ratio, created, nonce],
// transfers [kind klay|ft|nft|mt, contract, from, to, value, token_id, tx_hash, block_number, tx_index, log_index,
// batch_pos, operator, timestamp] in chain order (klay: successful txs with a value; amounts and ids as decimal
// strings), state {block, ft {name, symbol, decimals, total_supply, balances}, nft {name, symbol, owners, token_uris,
// balances}, mt {balances "holder/id", uris}} read with eth_call at the last tx's block (balanceOf/ownerOf/...), each
// checked against what the transfers imply before the file is written}.
//
// Env: RPC_URL (required: kengate's JSON-RPC URL, with an access token in the path when auth is on),
//      ACCOUNTS_FILE (default LOCALNET_ACCOUNTS), FUNDER_INDEX (default 6), CHAIN_ID (checked if set),
//      OUT (default ./expected.json).
// Output: a line per tx; ends with "make: OK" (exit 0) or "make: FAILED: reason" (exit 1).
'use strict'
const fs = require('fs')
const path = require('path')
const solc = require('solc')
const { ethers } = require('ethers')
const ext = require('@kaiachain/ethers-ext/v6')

const RECEIPT_TIMEOUT_MS = 60000
const T = ext.TxType
const ZERO = ethers.ZeroAddress
const E18 = 10n ** 18n
const KLAY = E18

function env(name, fallback) {
    const v = process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

const lc = a => (a == null ? null : String(a).toLowerCase())
const hex = n => '0x' + BigInt(n).toString(16)
const dec = n => BigInt(n).toString(10)
const num = h => Number(BigInt(h))
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
    const text = await res.text()
    let body
    try {
        body = JSON.parse(text)
    } catch (e) {
        throw new Error(`${method}: HTTP ${res.status}: ${text.slice(0, 200)}`)
    }
    if (body.error) throw new RpcError(method, body.error)
    return body.result
}

// ---- compiling (as examples/index-fixtures/record.js) ------------------------------------------------------

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
    }
}

const SIG = {
    Transfer: ethers.id('Transfer(address,address,uint256)'),
    TransferSingle: ethers.id('TransferSingle(address,address,address,uint256,uint256)'),
    TransferBatch: ethers.id('TransferBatch(address,address,address,uint256[],uint256[])'),
}

// ---- main --------------------------------------------------------------------------------------------------

async function main() {
    RPC_URL = env('RPC_URL')
    const accounts = JSON.parse(fs.readFileSync(env('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS), 'utf8'))
    const funderIndex = Number(env('FUNDER_INDEX', '6'))
    if (!accounts[funderIndex]) throw new Error(`no account #${funderIndex} in ACCOUNTS_FILE`)
    const OUT = path.resolve(env('OUT', path.join(__dirname, 'expected.json')))
    const chainId = num(await rpc('eth_chainId', []))
    if (process.env.CHAIN_ID && Number(process.env.CHAIN_ID) !== chainId) {
        throw new Error(`kengate says chain id ${chainId}, CHAIN_ID is ${process.env.CHAIN_ID}`)
    }

    const provider = new ext.JsonRpcProvider(RPC_URL)
    const wallets = { Z: new ext.Wallet(accounts[funderIndex].privateKey, provider) }
    for (const k of ['A', 'B', 'C', 'D', 'F']) wallets[k] = new ext.Wallet(ethers.Wallet.createRandom().privateKey, provider)
    const addr = Object.fromEntries(Object.entries(wallets).map(([k, w]) => [k, lc(w.address)]))
    const nameOf = Object.fromEntries(Object.entries(addr).map(([k, a]) => [a, k]))
    console.log(`make: ${RPC_URL}, chain ${chainId}; ` + Object.entries(addr).map(([k, a]) => `${k} ${a}`).join(', '))

    const C = compile()
    console.log(`make: compiled with solc ${solc.version()}`)

    // ---- sending ----
    const nonces = {}
    const nextNonce = async who => {
        if (nonces[who] === undefined) nonces[who] = num(await rpc('klay_getTransactionCount', [addr[who], 'pending']))
        return nonces[who]++
    }
    const estimate = async (who, f) => {
        const call = { from: addr[who], to: f.to || undefined, data: f.data || '0x', value: hex(f.value || 0) }
        const g = BigInt(await rpc('eth_estimateGas', [call]))
        return (g * 3n) / 2n + 10000n
    }

    const txs = [] // {label, hash, who, feePayer, type, value, intents, expectFail, receipt, tx}
    const contracts = {}

    // f: {type, to, value, data, gasLimit, feeRatio}; intents: the token transfers the tx must log, in order.
    async function send(label, who, f, { feePayer, intents = [], expectFail = false } = {}) {
        const w = wallets[who]
        const gasLimit = f.gasLimit || (await estimate(who, f))
        const gp = BigInt(await rpc('klay_gasPrice', []))
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
        const hash = lc(await rpc(method, [raw]))
        const rec = { label, hash, who, feePayer, type: f.type, value: BigInt(f.value || 0), intents, expectFail }
        txs.push(rec)
        // Wait for the receipt, through kengate.
        const deadline = Date.now() + RECEIPT_TIMEOUT_MS
        for (;;) {
            const r = await rpc('klay_getTransactionReceipt', [hash])
            if (r) {
                const ok = num(r.status) === 1
                if (ok === expectFail) throw new Error(`${label}: receipt status ${r.status}, block ${num(r.blockNumber)}`)
                rec.receipt = r
                rec.tx = await rpc('klay_getTransactionByHash', [hash])
                if (lc(rec.tx.feePayer) !== (feePayer ? addr[feePayer] : null)) {
                    throw new Error(`${label}: kengate says fee payer ${rec.tx.feePayer}, expected ${feePayer ? addr[feePayer] : 'none'}`)
                }
                console.log(`${label}: ${hash} in block ${num(r.blockNumber)} (type ${rec.tx.typeInt}, status ${num(r.status)})`)
                return rec
            }
            if (Date.now() > deadline) throw new Error(`${label}: no receipt for ${hash} after ${RECEIPT_TIMEOUT_MS / 1000}s`)
            await sleep(200)
        }
    }
    async function deploy(label, who, name, type, args = []) {
        const data = C[name].bytecode + C[name].iface.encodeDeploy(args).slice(2)
        const gasLimit = (BigInt(await rpc('eth_estimateGas', [{ from: addr[who], data }])) * 3n) / 2n
        const rec = await send(label, who, { type, data, gasLimit })
        const created = lc(rec.receipt.contractAddress)
        if (!created || created === ZERO) throw new Error(`${label}: no contractAddress`)
        contracts[name] = created
        return rec
    }
    const ft = (from, to, value) => ({ kind: 'ft', contract: 'ft', from, to, value: BigInt(value), token_id: null })
    const nft = (from, to, id) => ({ kind: 'nft', contract: 'nft', from, to, value: 1n, token_id: BigInt(id) })
    const mt = (from, to, id, value) => ({ kind: 'mt', contract: 'mt', from, to, value: BigInt(value), token_id: BigInt(id) })

    // ---- 1. funding: Z -> A..F ----
    await send('fund A 100 KLAY (legacy)', 'Z', { type: 0, to: addr.A, value: 100n * KLAY, gasLimit: 21000n })
    await send('fund B 50 KLAY (0x08)', 'Z', { type: T.ValueTransfer, to: addr.B, value: 50n * KLAY, gasLimit: 25000n })
    await send('fund C 20 KLAY (type 2)', 'Z', { type: 2, to: addr.C, value: 20n * KLAY, gasLimit: 21000n })
    await send('fund D 20 KLAY (0x08)', 'Z', { type: T.ValueTransfer, to: addr.D, value: 20n * KLAY, gasLimit: 25000n })
    await send('fund F 20 KLAY (legacy)', 'Z', { type: 0, to: addr.F, value: 20n * KLAY, gasLimit: 21000n })

    // ---- 2. deploys by A ----
    const ftDeploy = await deploy('deploy FT (type 2; mints 1000000 FXT to A)', 'A', 'ft', 2, [1_000_000n * E18])
    ftDeploy.intents = [ft(ZERO, addr.A, 1_000_000n * E18)]
    await deploy('deploy NFT (legacy)', 'A', 'nft', 0)
    const MT_URI = 'https://kas-token-history.kengate.test/mt/{id}.json'
    await deploy('deploy MT (SmartContractDeploy 0x28)', 'A', 'mt', T.SmartContractDeploy, [MT_URI])
    const to = c => contracts[c]

    // ---- 3. FT ----
    const ftCall = (fn, args) => ({ to: to('ft'), data: C.ft.iface.encodeFunctionData(fn, args) })
    await send('FT A->B 1000 (type 2)', 'A', { type: 2, ...ftCall('transfer', [addr.B, 1000n * E18]) }, { intents: [ft(addr.A, addr.B, 1000n * E18)] })
    await send('FT B->C 250 (legacy)', 'B', { type: 0, ...ftCall('transfer', [addr.C, 250n * E18]) }, { intents: [ft(addr.B, addr.C, 250n * E18)] })
    await send('FT C->D 100 (0x30)', 'C', { type: T.SmartContractExecution, ...ftCall('transfer', [addr.D, 100n * E18]) },
        { intents: [ft(addr.C, addr.D, 100n * E18)] })
    await send('FT A->D 200, fee-delegated (0x31, fee payer F)', 'A', { type: T.FeeDelegatedSmartContractExecution, ...ftCall('transfer', [addr.D, 200n * E18]) },
        { feePayer: 'F', intents: [ft(addr.A, addr.D, 200n * E18)] })
    await send('FT mint 500 to C (type 2)', 'A', { type: 2, ...ftCall('mint', [addr.C, 500n * E18]) }, { intents: [ft(ZERO, addr.C, 500n * E18)] })
    await send('FT burn 40 by D (legacy)', 'D', { type: 0, ...ftCall('burn', [40n * E18]) }, { intents: [ft(addr.D, ZERO, 40n * E18)] })
    await send('FT A->C 1.5 (0x30)', 'A', { type: T.SmartContractExecution, ...ftCall('transfer', [addr.C, (3n * E18) / 2n]) },
        { intents: [ft(addr.A, addr.C, (3n * E18) / 2n)] })
    await send('FT B->A 7 (type 2)', 'B', { type: 2, ...ftCall('transfer', [addr.A, 7n * E18]) }, { intents: [ft(addr.B, addr.A, 7n * E18)] })

    // ---- 4. NFT ----
    const uri = id => `https://kas-token-history.kengate.test/nft/${id}.json`
    const nftCall = (fn, args) => ({ to: to('nft'), data: C.nft.iface.encodeFunctionData(fn, args) })
    await send('NFT mint #1 to A (type 2)', 'A', { type: 2, ...nftCall('mint', [addr.A, 1n, uri(1)]) }, { intents: [nft(ZERO, addr.A, 1)] })
    await send('NFT mintPair #2 #3 to B (0x30)', 'A', { type: T.SmartContractExecution, ...nftCall('mintPair', [addr.B, 2n, 3n, uri(2), uri(3)]) },
        { intents: [nft(ZERO, addr.B, 2), nft(ZERO, addr.B, 3)] })
    await send('NFT transferFrom #1 A->C (legacy)', 'A', { type: 0, ...nftCall('transferFrom', [addr.A, addr.C, 1n]) }, { intents: [nft(addr.A, addr.C, 1)] })
    await send('NFT safeTransferFrom #2 B->D (type 2)', 'B', { type: 2, ...nftCall('safeTransferFrom(address,address,uint256)', [addr.B, addr.D, 2n]) },
        { intents: [nft(addr.B, addr.D, 2)] })
    await send('NFT burn #3 by B (legacy)', 'B', { type: 0, ...nftCall('burn', [3n]) }, { intents: [nft(addr.B, ZERO, 3)] })
    await send('NFT mint #4 to D, fee-delegated (0x31, fee payer F)', 'A', { type: T.FeeDelegatedSmartContractExecution, ...nftCall('mint', [addr.D, 4n, uri(4)]) },
        { feePayer: 'F', intents: [nft(ZERO, addr.D, 4)] })
    await send('NFT mint #1000 to A (0x30)', 'A', { type: T.SmartContractExecution, ...nftCall('mint', [addr.A, 1000n, uri(1000)]) },
        { intents: [nft(ZERO, addr.A, 1000)] })

    // ---- 5. MT ----
    const mtCall = (fn, args) => ({ to: to('mt'), data: C.mt.iface.encodeFunctionData(fn, args) })
    await send('MT mint id 1 x100 to A (TransferSingle, type 2)', 'A', { type: 2, ...mtCall('mint', [addr.A, 1n, 100n]) }, { intents: [mt(ZERO, addr.A, 1, 100)] })
    await send('MT mintBatch ids 2,3,4 x10,20,30 to A (TransferBatch, 0x30)', 'A',
        { type: T.SmartContractExecution, ...mtCall('mintBatch', [addr.A, [2n, 3n, 4n], [10n, 20n, 30n]]) },
        { intents: [mt(ZERO, addr.A, 2, 10), mt(ZERO, addr.A, 3, 20), mt(ZERO, addr.A, 4, 30)] })
    await send('MT safeTransferFrom id 1 x5 A->B (TransferSingle, legacy)', 'A', { type: 0, ...mtCall('safeTransferFrom', [addr.A, addr.B, 1n, 5n, '0x']) },
        { intents: [mt(addr.A, addr.B, 1, 5)] })
    await send('MT safeBatchTransferFrom ids 1,2,3 x7,3,4 A->C (TransferBatch, type 2)', 'A',
        { type: 2, ...mtCall('safeBatchTransferFrom', [addr.A, addr.C, [1n, 2n, 3n], [7n, 3n, 4n], '0x']) },
        { intents: [mt(addr.A, addr.C, 1, 7), mt(addr.A, addr.C, 2, 3), mt(addr.A, addr.C, 3, 4)] })
    await send('MT setApprovalForAll(D) by B (no transfer)', 'B', { type: 0, ...mtCall('setApprovalForAll', [addr.D, true]) })
    await send('MT safeTransferFrom id 1 x2 B->C by operator D (type 2)', 'D', { type: 2, ...mtCall('safeTransferFrom', [addr.B, addr.C, 1n, 2n, '0x']) },
        { intents: [mt(addr.B, addr.C, 1, 2)] })
    await send('MT burn id 2 x1 by C (0x30)', 'C', { type: T.SmartContractExecution, ...mtCall('burn', [addr.C, 2n, 1n]) }, { intents: [mt(addr.C, ZERO, 2, 1)] })

    // ---- 6. KLAY between A..D, and a failure ----
    await send('KLAY B->D 1 (legacy)', 'B', { type: 0, to: addr.D, value: 1n * KLAY, gasLimit: 21000n })
    await send('KLAY A->C 2 (0x08)', 'A', { type: T.ValueTransfer, to: addr.C, value: 2n * KLAY, gasLimit: 25000n })
    await send('KLAY C->D 0.5, fee-delegated (0x09, fee payer F)', 'C', { type: T.FeeDelegatedValueTransfer, to: addr.D, value: KLAY / 2n, gasLimit: 50000n },
        { feePayer: 'F' })
    await send('KLAY D->C 0.25, fee-delegated with ratio 30% (0x0a, fee payer F)', 'D',
        { type: T.FeeDelegatedValueTransferWithRatio, to: addr.C, value: KLAY / 4n, feeRatio: 30, gasLimit: 50000n }, { feePayer: 'F' })
    await send('KLAY D->A 0.1 (type 2)', 'D', { type: 2, to: addr.A, value: KLAY / 10n, gasLimit: 21000n })
    // A contract passes KLAY on: the tx's value goes A -> FT, the FT contract's call FT -> D (internal).
    const fwd = await send('KLAY 3 A->FT, passed on to D by the contract (internal transfer; 0x30)', 'A',
        { type: T.SmartContractExecution, value: 3n * KLAY, ...ftCall('forward', [addr.D]) })
    await send('FAILED: FT C->D 10^30 (over the balance; legacy, gas limit 100000, status 0)', 'C',
        { type: 0, ...ftCall('transfer', [addr.D, 10n ** 30n]), gasLimit: 100000n }, { expectFail: true })

    // ---- what each tx did, checked against its logs ----
    const tokenOf = Object.fromEntries(Object.entries(contracts).map(([k, a]) => [a, k]))
    const blockTime = {}
    const timestampOf = async n => {
        if (blockTime[n] === undefined) blockTime[n] = num((await rpc('klay_getBlockByNumber', [hex(n), false])).timestamp)
        return blockTime[n]
    }
    const txRows = []
    const transfers = []
    for (const rec of txs) {
        const r = rec.receipt
        const t = rec.tx
        const ok = num(r.status) === 1
        const block = num(r.blockNumber)
        const base = { tx_hash: rec.hash, block_number: block, tx_index: num(r.transactionIndex), timestamp: await timestampOf(block) }
        const gasPrice = BigInt(r.effectiveGasPrice || t.gasPrice)
        txRows.push({
            label: rec.label,
            hash: rec.hash,
            block_number: block,
            block_hash: lc(r.blockHash),
            tx_index: base.tx_index,
            timestamp: base.timestamp,
            type_int: t.typeInt,
            status: num(r.status),
            from: lc(t.from),
            to: t.to == null || (lc(t.to) === ZERO && r.contractAddress) ? null : lc(t.to),
            value: dec(rec.value),
            fee: dec(BigInt(r.gasUsed) * gasPrice),
            gas_used: num(r.gasUsed),
            gas_price: dec(gasPrice),
            fee_payer: lc(t.feePayer),
            fee_ratio: t.feeRatio === undefined ? null : num(t.feeRatio),
            created: r.contractAddress && lc(r.contractAddress) !== ZERO ? lc(r.contractAddress) : null,
            nonce: num(t.nonce),
        })
        if (ok && rec.value > 0n) {
            transfers.push({ kind: 'klay', contract: null, from: lc(t.from), to: lc(t.to), value: dec(rec.value), token_id: null,
                ...base, log_index: null, batch_pos: 0, operator: null })
        }
        const logged = []
        for (const log of r.logs) {
            const name = tokenOf[lc(log.address)]
            if (!name || !Object.values(SIG).includes(log.topics[0])) continue
            const ev = C[name].iface.parseLog(log)
            const li = num(log.logIndex)
            if (ev.name === 'Transfer' && name === 'ft') logged.push({ kind: 'ft', contract: 'ft', from: ev.args[0], to: ev.args[1], value: ev.args[2], token_id: null, li, pos: 0, operator: null })
            else if (ev.name === 'Transfer') logged.push({ kind: 'nft', contract: name, from: ev.args[0], to: ev.args[1], value: 1n, token_id: ev.args[2], li, pos: 0, operator: null })
            else if (ev.name === 'TransferSingle') logged.push({ kind: 'mt', contract: name, from: ev.args[1], to: ev.args[2], value: ev.args[4], token_id: ev.args[3], li, pos: 0, operator: ev.args[0] })
            else if (ev.name === 'TransferBatch') {
                ev.args[3].forEach((id, pos) => logged.push({ kind: 'mt', contract: name, from: ev.args[1], to: ev.args[2], value: ev.args[4][pos], token_id: id, li, pos, operator: ev.args[0] }))
            }
        }
        const want = ok ? rec.intents : []
        const same = (a, b) => a.kind === b.kind && a.contract === b.contract && lc(a.from) === lc(b.from) && lc(a.to) === lc(b.to) &&
            a.value === b.value && String(a.token_id) === String(b.token_id)
        const show = x => JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? dec(v) : v))
        if (logged.length !== want.length || !want.every((w, i) => same(w, logged[i]))) {
            throw new Error(`${rec.label}: logged ${show(logged)}, meant ${show(want)}`)
        }
        logged.forEach(l => transfers.push({
            kind: l.kind, contract: contracts[l.contract], from: lc(l.from), to: lc(l.to), value: dec(l.value),
            token_id: l.token_id === null ? null : dec(l.token_id), ...base, log_index: l.li, batch_pos: l.pos, operator: lc(l.operator),
        }))
    }
    txRows.sort((a, b) => a.block_number - b.block_number || a.tx_index - b.tx_index)
    transfers.sort((a, b) => a.block_number - b.block_number || a.tx_index - b.tx_index ||
        (a.log_index ?? -1) - (b.log_index ?? -1) || a.batch_pos - b.batch_pos)
    const firstBlock = txRows[0].block_number
    const lastBlock = txRows[txRows.length - 1].block_number

    // ---- state at the last block, through kengate ----
    const at = hex(lastBlock)
    async function call(name, fn, args = []) {
        const frag = C[name].iface.getFunction(fn)
        try {
            const r = await rpc('eth_call', [{ to: contracts[name], data: C[name].iface.encodeFunctionData(frag, args) }, at])
            const v = C[name].iface.decodeFunctionResult(frag, r)[0]
            return typeof v === 'bigint' ? dec(v) : typeof v === 'string' && ethers.isAddress(v) ? lc(v) : v
        } catch (e) {
            if (e instanceof RpcError) return null // a revert (ownerOf of a burned token)
            throw e
        }
    }
    const holders = [addr.Z, addr.A, addr.B, addr.C, addr.D, addr.F]
    const nftIds = [...new Set(transfers.filter(t => t.kind === 'nft').map(t => t.token_id))]
    const mtIds = [...new Set(transfers.filter(t => t.kind === 'mt').map(t => t.token_id))]
    const state = {
        block: lastBlock,
        ft: { name: await call('ft', 'name'), symbol: await call('ft', 'symbol'), decimals: Number(await call('ft', 'decimals')),
            total_supply: await call('ft', 'totalSupply'), balances: {} },
        nft: { name: await call('nft', 'name'), symbol: await call('nft', 'symbol'), owners: {}, token_uris: {}, balances: {} },
        mt: { balances: {}, uris: {} },
    }
    for (const h of holders) state.ft.balances[h] = await call('ft', 'balanceOf', [h])
    for (const h of holders) state.nft.balances[h] = await call('nft', 'balanceOf', [h])
    for (const id of nftIds) {
        state.nft.owners[id] = await call('nft', 'ownerOf', [BigInt(id)])
        state.nft.token_uris[id] = await call('nft', 'tokenURI', [BigInt(id)])
    }
    for (const id of mtIds) {
        state.mt.uris[id] = await call('mt', 'uri', [BigInt(id)])
        for (const h of holders) state.mt.balances[`${h}/${id}`] = await call('mt', 'balanceOf', [h, BigInt(id)])
    }

    // The same, implied by the transfers: the node and the script must agree before check.js relies on either.
    const mismatch = []
    const check = (what, got, want) => { if (String(got) !== String(want)) mismatch.push(`${what}: node ${got}, transfers imply ${want}`) }
    const ftBal = {}
    const nftOwner = {}
    const mtBal = {}
    let ftSupply = 0n
    const add = (m, k, v) => { m[k] = (m[k] || 0n) + v }
    for (const e of transfers) {
        const v = BigInt(e.value)
        if (e.kind === 'ft') {
            if (e.from !== ZERO) add(ftBal, e.from, -v); else ftSupply += v
            if (e.to !== ZERO) add(ftBal, e.to, v); else ftSupply -= v
        } else if (e.kind === 'nft') nftOwner[e.token_id] = e.to === ZERO ? null : e.to
        else if (e.kind === 'mt') {
            if (e.from !== ZERO) add(mtBal, `${e.from}/${e.token_id}`, -v)
            if (e.to !== ZERO) add(mtBal, `${e.to}/${e.token_id}`, v)
        }
    }
    check('ft totalSupply', state.ft.total_supply, ftSupply)
    for (const h of holders) {
        check(`ft balanceOf(${nameOf[h]})`, state.ft.balances[h], ftBal[h] || 0n)
        check(`nft balanceOf(${nameOf[h]})`, state.nft.balances[h], Object.values(nftOwner).filter(o => o === h).length)
        for (const id of mtIds) check(`mt balanceOf(${nameOf[h]}, ${id})`, state.mt.balances[`${h}/${id}`], mtBal[`${h}/${id}`] || 0n)
    }
    for (const id of nftIds) check(`nft ownerOf(${id})`, state.nft.owners[id], nftOwner[id])
    if (mismatch.length) throw new Error('the chain differs from the transfers made:\n  ' + mismatch.join('\n  '))

    const deployOf = name => txRows.find(t => t.created === contracts[name])
    const expected = {
        chain_id: chainId,
        rpc_url: RPC_URL.replace(/\/v1\/[^/]+\/[^/]+$/, '/v1/…'),
        first_block: firstBlock,
        last_block: lastBlock,
        accounts: addr,
        contracts: {
            ft: { address: contracts.ft, name: state.ft.name, symbol: state.ft.symbol, decimals: state.ft.decimals, type: 'KIP-7' },
            nft: { address: contracts.nft, name: state.nft.name, symbol: state.nft.symbol, type: 'KIP-17' },
            mt: { address: contracts.mt, uri: MT_URI, type: 'KIP-37' },
        },
        txs: txRows,
        transfers,
        // KLAY contracts moved inside txs (Etherscan's txlistinternal, with index.internal).
        internal: [{ tx_hash: fwd.hash, block_number: num(fwd.receipt.blockNumber), from: contracts.ft, to: addr.D, value: dec(3n * KLAY) }],
        state,
    }
    for (const name of ['ft', 'nft', 'mt']) {
        const d = deployOf(name)
        Object.assign(expected.contracts[name], { deploy_tx: d.hash, deploy_block: d.block_number, created_at: d.timestamp })
    }
    fs.mkdirSync(path.dirname(OUT), { recursive: true })
    fs.writeFileSync(OUT, JSON.stringify(expected, null, 1) + '\n')
    const count = k => transfers.filter(e => e.kind === k).length
    console.log(`make: wrote ${OUT}: ${txRows.length} txs in blocks ${firstBlock}..${lastBlock}; transfers ft ${count('ft')}, ` +
        `nft ${count('nft')}, mt ${count('mt')}, klay ${count('klay')}`)
}

main().then(
    () => {
        console.log('make: OK')
        process.exit(0)
    },
    err => {
        console.error(`make: FAILED: ${err && err.stack ? err.stack : err}`)
        process.exit(1)
    }
)
