// gen.js: a token history on the local cluster for the index backfill benchmark (scripts/bench-index --backfill).
// Deploys BenchFT (KIP-7), BenchNFT (KIP-17) and BenchMT (KIP-37) from contracts/BenchTokens.sol and sends txs whose
// every call emits hundreds of events (airdrops to derived addresses), so that a few hundred txs make TRANSFERS token
// transfers (default 100,000): 85 % KIP-7 `Transfer`s (PER_TX per tx, to a pool of POOL recipients, so most of them
// get several), 5 % KIP-17 mints (PER_TX per tx; each is a `tokenURI` read for the indexer) and 10 % KIP-37
// `TransferBatch` mints of 10 ids each (PER_TX / 10 events per tx). The txs go straight to an EN (RPC_URL), nonces
// in sequence, PACE_MS apart, so that they spread over many blocks (the cluster makes one a second); then every
// receipt is checked (status 1, the expected number of logs).
//
// Sender: a key of its own, derived from a fixed string (the same address every run: its history is only what this
// script did), funded with 100 KLAY by ACCOUNTS_FILE[FUNDER_INDEX] when it has less than 50.
//
// Env: RPC_URL (default LOCALNET_EN1_HTTP, else http://127.0.0.1:8551), ACCOUNTS_FILE (default LOCALNET_ACCOUNTS,
//      else <repo>/.localnet/accounts.json), FUNDER_INDEX (default 18), TRANSFERS (100000), PER_TX (500), POOL
//      (30000), PACE_MS (300).
// Output: progress on stderr; on stdout one JSON line: {chain_id, rpc_url, sender, contracts {ft, nft, mt},
//      first_block, last_block, last_block_hash, txs, transfers {ft, nft, mt, total}, blocks_with_transfers, seconds}.
//      Exit 1 with "gen: FAILED: reason" on stderr otherwise.
'use strict'
const fs = require('fs')
const path = require('path')
const solc = require('solc')
const { ethers } = require('ethers')

const RECEIPT_TIMEOUT_MS = 120000
const KLAY = 10n ** 18n
const MT_IDS = 10

const setting = (name, fallback) => process.env[name] || fallback
const num = h => Number(BigInt(h))
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const log = (...a) => console.error('gen:', ...a)

let RPC_URL
let rpcId = 0
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
    if (body.error) throw new Error(`${method}: ${body.error.message} (code ${body.error.code})`)
    return body.result
}

function compile() {
    const file = 'BenchTokens.sol'
    const input = {
        language: 'Solidity',
        sources: { [file]: { content: fs.readFileSync(path.join(__dirname, 'contracts', file), 'utf8') } },
        settings: {
            optimizer: { enabled: true, runs: 200 },
            evmVersion: 'istanbul',
            outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
        },
    }
    const out = JSON.parse(solc.compile(JSON.stringify(input)))
    const errors = (out.errors || []).filter(e => e.severity === 'error')
    if (errors.length) throw new Error('solc: ' + errors.map(e => e.formattedMessage).join('\n'))
    const get = name => {
        const c = out.contracts[file][name]
        return { bytecode: '0x' + c.evm.bytecode.object, iface: new ethers.Interface(c.abi) }
    }
    return { ft: get('BenchFT'), nft: get('BenchNFT'), mt: get('BenchMT') }
}

async function receipt(hash, label) {
    const deadline = Date.now() + RECEIPT_TIMEOUT_MS
    for (;;) {
        const r = await rpc('klay_getTransactionReceipt', [hash])
        if (r) {
            if (num(r.status) !== 1) throw new Error(`${label}: ${hash} failed (status ${r.status}, block ${num(r.blockNumber)})`)
            return r
        }
        if (Date.now() > deadline) throw new Error(`${label}: no receipt for ${hash} after ${RECEIPT_TIMEOUT_MS / 1000} s`)
        await sleep(250)
    }
}

async function main() {
    const started = Date.now()
    RPC_URL = setting('RPC_URL', process.env.LOCALNET_EN1_HTTP || 'http://127.0.0.1:8551')
    const accountsFile = setting('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS || path.join(__dirname, '..', '..', '.localnet', 'accounts.json'))
    const funderIndex = Number(setting('FUNDER_INDEX', '18'))
    const total = Number(setting('TRANSFERS', '100000'))
    const perTx = Number(setting('PER_TX', '500'))
    const pool = Number(setting('POOL', '30000'))
    const paceMs = Number(setting('PACE_MS', '300'))
    if (!(perTx >= MT_IDS && total > 0 && pool > 0)) throw new Error('TRANSFERS, POOL > 0 and PER_TX >= 10 please')

    const chainId = num(await rpc('eth_chainId', []))
    const me = new ethers.Wallet(ethers.id(`kengate index-history generator, chain ${chainId}`))
    const salt = ethers.id(`kengate index-history recipients, chain ${chainId}`)
    log(`${RPC_URL}, chain ${chainId}, sender ${me.address}`)
    const gasPrice = BigInt(await rpc('klay_gasPrice', []))
    let nonce = num(await rpc('klay_getTransactionCount', [me.address, 'pending']))
    const sign = f => me.signTransaction({ type: 0, chainId, nonce: nonce++, gasPrice, value: 0n, ...f })

    // ---- funding ----
    const balance = BigInt(await rpc('klay_getBalance', [me.address, 'latest']))
    if (balance < 50n * KLAY) {
        const accounts = JSON.parse(fs.readFileSync(accountsFile, 'utf8'))
        if (!accounts[funderIndex]) throw new Error(`no account #${funderIndex} in ${accountsFile}`)
        const funder = new ethers.Wallet(accounts[funderIndex].privateKey)
        // The funder may be sending elsewhere too (tests share the cluster): retry on a nonce clash.
        for (let attempt = 1; ; attempt++) {
            try {
                const n = num(await rpc('klay_getTransactionCount', [funder.address, 'pending']))
                const raw = await funder.signTransaction({ type: 0, chainId, nonce: n, gasPrice, gasLimit: 21000n, to: me.address, value: 100n * KLAY })
                await receipt(await rpc('eth_sendRawTransaction', [raw]), 'funding')
                break
            } catch (e) {
                if (attempt >= 3) throw e
                log(`funding: ${e.message}; again`)
                await sleep(1500)
            }
        }
        log(`funded ${me.address} with 100 KLAY from account #${funderIndex}`)
    }

    // ---- deploys ----
    const C = compile()
    log(`compiled with solc ${solc.version()}`)
    const contracts = {}
    let firstBlock = null
    for (const [kind, args] of [['ft', [salt, 10n ** 30n]], ['nft', [salt]], ['mt', [salt]]]) {
        const data = C[kind].bytecode + C[kind].iface.encodeDeploy(args).slice(2)
        const gasLimit = (BigInt(await rpc('eth_estimateGas', [{ from: me.address, data }])) * 3n) / 2n
        const r = await receipt(await rpc('eth_sendRawTransaction', [await sign({ data, gasLimit, to: null })]), `deploy ${kind}`)
        contracts[kind] = r.contractAddress.toLowerCase()
        if (firstBlock === null) firstBlock = num(r.blockNumber)
        log(`deployed ${kind} at ${contracts[kind]} in block ${num(r.blockNumber)}`)
    }

    // ---- the plan: [kind, calldata, transfers, logs], interleaved ----
    const plan = []
    const counts = { ft: 1, nft: 0, mt: 0 } // the FT constructor's mint
    const want = { ft: Math.round(total * 0.85), nft: Math.round(total * 0.05) }
    want.mt = total - want.ft - want.nft
    let cursor = 0
    let nextId = 1
    const call = (kind, fn, args) => C[kind].iface.encodeFunctionData(fn, args)
    while (counts.ft < want.ft || counts.nft < want.nft || counts.mt < want.mt) {
        // the kind furthest behind its share goes next, so the kinds are spread over the run
        const behind = k => (want[k] > 0 ? counts[k] / want[k] : 1)
        const kind = ['ft', 'nft', 'mt'].filter(k => counts[k] < want[k]).sort((a, b) => behind(a) - behind(b))[0]
        if (kind === 'ft') {
            const n = Math.min(perTx, want.ft - counts.ft)
            plan.push({ kind, data: call('ft', 'airdrop', [cursor, n, pool, 10n ** 18n]), transfers: n, logs: n })
            cursor += n
            counts.ft += n
        } else if (kind === 'nft') {
            const n = Math.min(perTx, want.nft - counts.nft)
            plan.push({ kind, data: call('nft', 'mintMany', [nextId, n, cursor, pool]), transfers: n, logs: n })
            nextId += n
            cursor += n
            counts.nft += n
        } else {
            const events = Math.max(1, Math.min(Math.floor(perTx / MT_IDS), Math.ceil((want.mt - counts.mt) / MT_IDS)))
            plan.push({ kind, data: call('mt', 'mintBatches', [cursor, events, pool, MT_IDS]), transfers: events * MT_IDS, logs: events })
            cursor += events
            counts.mt += events * MT_IDS
        }
    }
    const gas = {}
    for (const kind of ['ft', 'nft', 'mt']) {
        const sample = plan.find(p => p.kind === kind)
        if (sample) gas[kind] = (BigInt(await rpc('eth_estimateGas', [{ from: me.address, to: contracts[kind], data: sample.data }])) * 6n) / 5n
    }
    log(`sending ${plan.length} txs, ${paceMs} ms apart: ${counts.ft} FT, ${counts.nft} NFT, ${counts.mt} MT transfers (gas ${Object.entries(gas).map(([k, g]) => `${k} ${g}`).join(', ')})`)

    // ---- send, paced ----
    const sent = []
    for (const [i, p] of plan.entries()) {
        const raw = await sign({ to: contracts[p.kind], data: p.data, gasLimit: gas[p.kind] })
        sent.push({ ...p, hash: await rpc('eth_sendRawTransaction', [raw]) })
        if ((i + 1) % 50 === 0) log(`sent ${i + 1} of ${plan.length}`)
        await sleep(paceMs)
    }
    // ---- check ----
    let lastBlock = 0
    let lastHash = null
    const blocks = new Set()
    for (const s of sent) {
        const r = await receipt(s.hash, `${s.kind} tx`)
        if (r.logs.length !== s.logs) throw new Error(`${s.hash}: ${r.logs.length} logs, expected ${s.logs}`)
        const b = num(r.blockNumber)
        blocks.add(b)
        if (b >= lastBlock) {
            lastBlock = b
            lastHash = r.blockHash
        }
    }
    const out = {
        chain_id: chainId,
        rpc_url: RPC_URL,
        sender: me.address.toLowerCase(),
        contracts,
        first_block: firstBlock,
        last_block: lastBlock,
        last_block_hash: lastHash,
        txs: sent.length + 3,
        transfers: { ...counts, total: counts.ft + counts.nft + counts.mt },
        blocks_with_transfers: blocks.size,
        seconds: Math.round((Date.now() - started) / 100) / 10,
    }
    log(`done: ${out.transfers.total} transfers in ${sent.length} txs over blocks ${firstBlock}..${lastBlock} (${blocks.size} blocks with airdrops)`)
    console.log(JSON.stringify(out))
}

main().catch(e => {
    console.error(`gen: FAILED: ${e.message}`)
    process.exit(1)
})
