// raw.js: what the node alone needs to serve what kengate's index backfill reads, for scripts/bench-index --backfill.
// Reads blocks FROM..TO straight from one EN (RPC_URL), three ways, and prints the times:
//
//   ingest    as the indexer reads them: klay_getBlockByNumber(n, true) and klay_getBlockReceipts(n) as two HTTP
//             requests per block, IN_FLIGHT (8, index.concurrency) blocks at a time, in windows of WINDOW (100,
//             index.batch) blocks, the next window once the last one is in (the indexer writes in between)
//   batched   JSON-RPC batches of BATCH_BLOCKS (10) blocks (both calls for each), IN_FLIGHT batches at a time, no
//             windows: how fast the node can hand the range out
//   metadata  the contract calls the indexer makes for these blocks (from the receipts read above): per token
//             contract first seen, name/symbol/decimals/totalSupply and 5 supportsInterface (9 klay_call, one after
//             the other, at that block); per NFT minted, tokenURI(id); per MT id first seen, uri(id) (IN_FLIGHT at a
//             time within each window, as the indexer does)
//
// Env: RPC_URL (default LOCALNET_EN1_HTTP, else http://127.0.0.1:8551; several, comma-separated: taken in turn, request
//      by request, as kengate spreads its reads over its nodes), FROM (0), TO (default: the head), IN_FLIGHT
//      (8), WINDOW (100), BATCH_BLOCKS (10), MODES ("ingest,batched,metadata").
// Output: progress on stderr; one JSON line on stdout: {from, to, blocks, txs, logs, bytes, ingest {seconds,
//      blocks_per_s}, batched {seconds, blocks_per_s}, metadata {calls, contracts, nft_uris, mt_uris, seconds},
//      windows [{from, to, fetch_s, meta_s}]: the ingest pattern's and the contract calls' time per window}.
'use strict'
const http = require('http')

const TRANSFER = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'
const TRANSFER_SINGLE = '0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62'
const TRANSFER_BATCH = '0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb'
const INTERFACES = ['36372b07', '65787371', '80ac58cd', '6433ca1f', 'd9b67a26']
const ZERO_TOPIC = '0x' + '0'.repeat(64)

const setting = (name, fallback) => process.env[name] || fallback
const hex = n => '0x' + n.toString(16)
const log = (...a) => console.error('raw:', ...a)

// Node's own http client with keep-alive: fetch() costs ~1 ms of CPU per request, which would make this client,
// not the node, the limit.
let TARGETS
let rpcId = 0
let bytesIn = 0
let turn = 0
function post(body) {
    const t = TARGETS[turn++ % TARGETS.length]
    const data = JSON.stringify(body)
    return new Promise((resolve, reject) => {
        const req = http.request(
            {
                host: t.url.hostname,
                port: t.url.port,
                path: t.url.pathname,
                method: 'POST',
                agent: t.agent,
                headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
            },
            res => {
                const chunks = []
                res.on('data', c => chunks.push(c))
                res.on('end', () => {
                    const text = Buffer.concat(chunks).toString()
                    bytesIn += text.length
                    if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`))
                    else resolve(text)
                })
                res.on('error', reject)
            }
        )
        req.on('error', reject)
        req.end(data)
    })
}
async function rpc(method, params) {
    const body = JSON.parse(await post({ jsonrpc: '2.0', id: ++rpcId, method, params }))
    if (body.error) throw new Error(`${method}: ${body.error.message}`)
    return body.result
}

/// Runs `f` over `items`, `width` at a time, in order of start.
async function pool(items, width, f) {
    let next = 0
    const out = new Array(items.length)
    const worker = async () => {
        while (next < items.length) {
            const i = next++
            out[i] = await f(items[i], i)
        }
    }
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker))
    return out
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i)

async function main() {
    const RPC_URL = setting('RPC_URL', process.env.LOCALNET_EN1_HTTP || 'http://127.0.0.1:8551')
    const cpu0 = process.cpuUsage()
    const from = Number(setting('FROM', '0'))
    const inFlight = Number(setting('IN_FLIGHT', '8'))
    TARGETS = RPC_URL.split(',').map(u => ({ url: new URL(u), agent: new http.Agent({ keepAlive: true, maxSockets: inFlight * 2 }) }))
    const to = process.env.TO ? Number(process.env.TO) : Number(BigInt(await rpc('klay_blockNumber', [])))
    const window = Number(setting('WINDOW', '100'))
    const batchBlocks = Number(setting('BATCH_BLOCKS', '10'))
    const modes = setting('MODES', 'ingest,batched,metadata').split(',')
    const out = { rpc_url: RPC_URL, from, to, blocks: to - from + 1, in_flight: inFlight, window, batch_blocks: batchBlocks }
    log(`${RPC_URL}: blocks ${from}..${to}, modes ${modes.join(', ')}`)

    // ---- ingest pattern ----
    const windows = []
    for (let a = from; a <= to; a += window) windows.push([a, Math.min(to, a + window - 1)])
    // per window: the token events seen (for the metadata replay)
    const seen = []
    // per window: {from, to, fetch_s, meta_s}
    const perWindow = windows.map(([a, b]) => ({ from: a, to: b, fetch_s: 0, meta_s: 0 }))
    if (modes.includes('ingest') || modes.includes('metadata')) {
        let txs = 0
        let logs = 0
        bytesIn = 0
        const t0 = process.hrtime.bigint()
        for (const [w, [a, b]] of windows.entries()) {
            const tw = process.hrtime.bigint()
            // timed: the requests and the bytes; the JSON is read afterwards
            const texts = await pool(range(a, b), inFlight, n =>
                Promise.all([
                    post({ jsonrpc: '2.0', id: ++rpcId, method: 'klay_getBlockByNumber', params: [hex(n), true] }),
                    post({ jsonrpc: '2.0', id: ++rpcId, method: 'klay_getBlockReceipts', params: [hex(n)] }),
                ])
            )
            perWindow[w].fetch_s = Number(process.hrtime.bigint() - tw) / 1e9
            const events = []
            for (const [k, [bt, rt]] of texts.entries()) {
                const n = a + k
                const block = JSON.parse(bt).result
                const receipts = JSON.parse(rt).result
                if (!block) throw new Error(`block ${n} is not there`)
                txs += block.transactions.length
                for (const r of receipts || []) {
                    if (Number(r.status) !== 1) continue
                    for (const l of r.logs) {
                        logs++
                        events.push({ n, address: l.address.toLowerCase(), topics: l.topics, data: l.data })
                    }
                }
            }
            seen.push(events)
        }
        const s = perWindow.reduce((sum, x) => sum + x.fetch_s, 0)
        Object.assign(out, { txs, logs, bytes: bytesIn })
        out.ingest = { seconds: +s.toFixed(3), blocks_per_s: Math.round(out.blocks / s) }
        log(`ingest pattern: ${out.blocks} blocks (${txs} txs, ${logs} logs, ${(bytesIn / 1e6).toFixed(1)} MB) in ${s.toFixed(2)} s (JSON read apart: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s in all)`)
    }

    // ---- batched ----
    if (modes.includes('batched')) {
        const groups = []
        for (let a = from; a <= to; a += batchBlocks) groups.push(range(a, Math.min(to, a + batchBlocks - 1)))
        const t0 = process.hrtime.bigint()
        await pool(groups, inFlight, async ns => {
            const body = ns.flatMap(n => [
                { jsonrpc: '2.0', id: ++rpcId, method: 'klay_getBlockByNumber', params: [hex(n), true] },
                { jsonrpc: '2.0', id: ++rpcId, method: 'klay_getBlockReceipts', params: [hex(n)] },
            ])
            const text = await post(body)
            if (text.includes('"result":null') || text.includes('"error"')) throw new Error(`batch ${ns[0]}..: ${text.slice(0, 200)}`)
        })
        const s = Number(process.hrtime.bigint() - t0) / 1e9
        out.batched = { seconds: +s.toFixed(3), blocks_per_s: Math.round(out.blocks / s) }
        log(`batched: ${out.blocks} blocks in ${s.toFixed(2)} s`)
    }

    // ---- metadata calls ----
    if (modes.includes('metadata')) {
        const described = new Set()
        const mtIds = new Set()
        let calls = 0
        let contracts = 0
        let nftUris = 0
        let mtUris = 0
        const call = (to, data, n) => {
            calls++
            return rpc('klay_call', [{ to, data }, hex(n)]).catch(() => null)
        }
        const word = x => BigInt(x).toString(16).padStart(64, '0')
        const t0 = process.hrtime.bigint()
        for (const [w, events] of seen.entries()) {
            const tw = process.hrtime.bigint()
            // contracts first seen in the window, one after the other
            const first = []
            const uris = []
            for (const e of events) {
                const [sig] = e.topics
                const token =
                    (sig === TRANSFER && (e.topics.length === 3 || e.topics.length === 4)) ||
                    ((sig === TRANSFER_SINGLE || sig === TRANSFER_BATCH) && e.topics.length === 4)
                if (!token) continue
                if (!described.has(e.address)) {
                    described.add(e.address)
                    first.push(e)
                }
                if (sig === TRANSFER && e.topics.length === 4 && e.topics[1] === ZERO_TOPIC) {
                    uris.push({ to: e.address, data: '0xc87b56dd' + e.topics[3].slice(2), n: e.n })
                    nftUris++
                } else if (sig === TRANSFER_SINGLE || sig === TRANSFER_BATCH) {
                    const ids = sig === TRANSFER_SINGLE ? [BigInt('0x' + e.data.slice(2, 66))] : batchIds(e.data)
                    for (const id of ids) {
                        const key = `${e.address}/${id}`
                        if (mtIds.has(key)) continue
                        mtIds.add(key)
                        uris.push({ to: e.address, data: '0x0e89341c' + word(id), n: e.n })
                        mtUris++
                    }
                }
            }
            for (const e of first) {
                contracts++
                for (const sel of ['06fdde03', '95d89b41', '313ce567', '18160ddd']) await call(e.address, '0x' + sel, e.n)
                for (const id of INTERFACES) await call(e.address, '0x01ffc9a7' + id + '0'.repeat(56), e.n)
            }
            await pool(uris, inFlight, u => call(u.to, u.data, u.n))
            perWindow[w].meta_s = Number(process.hrtime.bigint() - tw) / 1e9
        }
        const s = Number(process.hrtime.bigint() - t0) / 1e9
        out.metadata = { calls, contracts, nft_uris: nftUris, mt_uris: mtUris, seconds: +s.toFixed(3) }
        log(`metadata: ${calls} klay_call (${contracts} contracts, ${nftUris} tokenURI, ${mtUris} uri) in ${s.toFixed(2)} s`)
    }
    const cpu = process.cpuUsage(cpu0)
    out.client_cpu_s = +((cpu.user + cpu.system) / 1e6).toFixed(2)
    out.windows = perWindow.map(w => ({ ...w, fetch_s: +w.fetch_s.toFixed(4), meta_s: +w.meta_s.toFixed(4) }))
    console.log(JSON.stringify(out))
}

/// The ids of a TransferBatch's data (uint256[] ids, uint256[] values).
function batchIds(data) {
    const w = i => BigInt('0x' + data.slice(2 + 64 * i, 2 + 64 * (i + 1)))
    const at = Number(w(0)) / 32
    const len = Number(w(at))
    return Array.from({ length: Math.min(len, 1024) }, (_, k) => w(at + 1 + k))
}

main().catch(e => {
    console.error(`raw: FAILED: ${e.message}`)
    process.exit(1)
})
