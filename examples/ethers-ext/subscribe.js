// WebSocket subscriber with ethers v6 (the copy @kaiachain/ethers-ext uses): new blocks and the emitter's Ping
// events, each announced block read back at once over HTTP. Run for DURATION_S seconds.
//
// What ethers does on the wire (WebSocketProvider, network passed in, so staticNetwork: no eth_chainId):
//   provider.on("block")          -> eth_subscribe ["newHeads"]; every notification emits block parseInt(number)
//                                    (no dedup, no gap filling, no polling).
//   contract.on("Ping")           -> eth_subscribe ["logs", {address, topics:[topic0]}]
//   No batching on sockets; no keepalive/ping; NO reconnect (ethers' onclose handler is commented out): a dropped
//   socket just goes silent. This program watches the ws 'close' event (and, with STALL_S > 0, a silence of
//   STALL_S seconds) and then builds a new WebSocketProvider and re-registers both listeners; that is a
//   "reconnect". Blocks/events announced while disconnected are simply missed (no backfill), as in a real app.
// On every block n: klay_getBlockByNumber(hex n, false) and klay_getBlockReceipts(hex n) through HTTP_URL
// (ethers JsonRpcProvider, one call per HTTP request, static network). A throw, a null, a block that is not n,
// or receipts that are not an array of the block's tx count make an "unreadable" entry.
//
// Env: WS_URL (required), HTTP_URL (required), CHAIN_ID (or LOCALNET_CHAIN_ID, 1337), DURATION_S (default 20),
//      CONTRACT (address) or ADDRESS_FILE (polled every 200 ms until it holds an address; neither = blocks only),
//      RECONNECT_DELAY_MS (default 500), STALL_S (default 0 = off), REQUEST_TIMEOUT_MS (HTTP, default 10000).
// Output: one JSON line on stdout:
//   {"blocks":[n...arrival order],"events":[{"tx","logIndex","block","n"}],"unreadable":[{"block","why"}],
//    "reconnects":K,"errors":[...],"reconnect_attempts":A,"ws_calls_by_method":{...},"http_calls":H,"contract":..}
// "reconnects" counts drops of an established socket (each followed by a new provider); "reconnect_attempts" counts every new
// provider built after the first (failed connects included). Exit 1 only on a setup error. SIGTERM / SIGINT end
// the run early and still print the line.
const fs = require('fs')
const { Contract, FetchRequest, JsonRpcProvider, Network, WebSocketProvider, toQuantity } = require('ethers')

const ABI = ['event Ping(uint256 indexed n, address from)']
const num = (name, dflt) => (process.env[name] === undefined || process.env[name] === '' ? dflt : Number(process.env[name]))
const sleep = ms => new Promise(r => setTimeout(r, ms))
const short = s => String(s).replace(/\s+/g, ' ').slice(0, 300)
const log = (...a) => console.error('subscribe(ethers):', ...a)
const MAX_ERRORS = 2000

function describe(e) {
    for (const c of [e && e.error, e && e.info && e.info.error]) {
        if (c && typeof c.message === 'string') return short(`jsonrpc ${c.code}: ${c.message}`)
    }
    return short((e && (e.shortMessage || e.message)) || String(e))
}

async function main() {
    const wsUrl = process.env.WS_URL
    const httpUrl = process.env.HTTP_URL
    if (!wsUrl || !httpUrl) throw new Error('WS_URL and HTTP_URL must be set')
    const network = Network.from(BigInt(num('CHAIN_ID', num('LOCALNET_CHAIN_ID', 1337))))
    const durationMs = num('DURATION_S', 20) * 1000
    const reconnectDelayMs = num('RECONNECT_DELAY_MS', 500)
    const stallMs = num('STALL_S', 0) * 1000

    const out = { blocks: [], events: [], unreadable: [], reconnects: 0, errors: [], reconnect_attempts: 0, ws_calls_by_method: {}, http_calls: 0, contract: null }
    const error = m => { if (out.errors.length < MAX_ERRORS) out.errors.push(short(m)); log(m) }

    const conn = new FetchRequest(httpUrl)
    conn.timeout = num('REQUEST_TIMEOUT_MS', 10000)
    const http = new JsonRpcProvider(conn, network, { batchMaxCount: 1, staticNetwork: network })
    const get = (method, params) => { out.http_calls++; return http.send(method, params) }

    let stopped = false
    let wakeStop
    const stopPromise = new Promise(r => { wakeStop = r })
    const stop = () => { stopped = true; wakeStop() }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    process.on('unhandledRejection', e => {
        // destroying a provider whose eth_subscribe is still pending (failed connect, drop) rejects it: our own teardown
        if (/provider destroyed/.test(describe(e))) return
        error(`unhandled: ${describe(e)}`)
    })
    setTimeout(stop, durationMs)

    const inflight = new Set()
    function readBack(n) {
        const p = (async () => {
            const hex = toQuantity(n)
            let step = 'klay_getBlockByNumber'
            try {
                const [block, receipts] = await Promise.all([
                    get('klay_getBlockByNumber', [hex, false]),
                    get('klay_getBlockReceipts', [hex]).catch(e => { step = 'klay_getBlockReceipts'; throw e }),
                ])
                if (!block) return out.unreadable.push({ block: n, why: 'klay_getBlockByNumber: null' })
                if (Number(block.number) !== n) return out.unreadable.push({ block: n, why: `klay_getBlockByNumber: got block ${block.number}` })
                if (!Array.isArray(receipts)) return out.unreadable.push({ block: n, why: `klay_getBlockReceipts: ${short(JSON.stringify(receipts))}` })
                const txs = Array.isArray(block.transactions) ? block.transactions.length : -1
                if (receipts.length !== txs) out.unreadable.push({ block: n, why: `klay_getBlockReceipts: ${receipts.length} receipts, block has ${txs} txs` })
            } catch (e) {
                out.unreadable.push({ block: n, why: `${step}: ${describe(e)}` })
            }
        })()
        inflight.add(p)
        p.finally(() => inflight.delete(p))
    }

    // contract address: CONTRACT, or ADDRESS_FILE once it holds one
    let contractAddr = process.env.CONTRACT || null
    const addressFile = process.env.ADDRESS_FILE || ''
    let current = null // { provider, closed: Promise }
    const attachEvents = async provider => {
        const contract = new Contract(contractAddr, ABI, provider)
        await contract.on('Ping', (n, from, payload) => {
            const l = payload.log
            out.events.push({ tx: l.transactionHash, logIndex: l.index, block: l.blockNumber, n: Number(n) })
        })
    }
    if (!contractAddr && addressFile) {
        ;(async () => {
            while (!stopped && !contractAddr) {
                try {
                    const s = fs.readFileSync(addressFile, 'utf8').trim()
                    if (/^0x[0-9a-fA-F]{40}$/.test(s)) contractAddr = s
                } catch (_) {}
                if (!contractAddr) await sleep(200)
            }
            if (contractAddr) {
                log(`contract ${contractAddr} (from ${addressFile})`)
                out.contract = contractAddr
                if (current) attachEvents(current.provider).catch(e => error(`contract.on: ${describe(e)}`))
            }
        })()
    } else out.contract = contractAddr

    // one connection: resolves when the socket closes (or stalls), after which we reconnect
    function connect() {
        let lastActivity = Date.now()
        let opened = false
        const provider = new WebSocketProvider(wsUrl, network, { staticNetwork: network })
        const origWrite = provider._write.bind(provider)
        provider._write = async msg => {
            try { const m = JSON.parse(msg).method; out.ws_calls_by_method[m] = (out.ws_calls_by_method[m] || 0) + 1 } catch (_) {}
            return origWrite(msg)
        }
        const ws = provider.websocket
        const closed = new Promise(resolve => {
            ws.addEventListener('open', () => { opened = true; lastActivity = Date.now() })
            ws.addEventListener('error', e => error(`ws error: ${short(e && (e.message || (e.error && e.error.message)) || e)}`))
            ws.addEventListener('close', e => resolve(`closed (code ${e.code}${e.reason ? ', ' + short(e.reason) : ''})`))
            if (stallMs > 0) {
                const t = setInterval(() => {
                    if (Date.now() - lastActivity > stallMs) { clearInterval(t); resolve(`no block for ${stallMs / 1000}s`) }
                }, 250)
                ws.addEventListener('close', () => clearInterval(t))
            }
        })
        provider.on('error', e => error(`provider error: ${describe(e)}`))
        provider.on('block', n => {
            lastActivity = Date.now()
            out.blocks.push(n)
            readBack(n)
        }).catch(e => error(`provider.on(block): ${describe(e)}`))
        if (contractAddr) attachEvents(provider).catch(e => error(`contract.on: ${describe(e)}`))
        return { provider, closed, wasOpen: () => opened }
    }

    for (let first = true; !stopped; first = false) {
        if (!first) out.reconnect_attempts++
        current = connect()
        const why = await Promise.race([current.closed, stopPromise.then(() => null)])
        const c = current
        try { c.provider.destroy() } catch (_) {}
        if (stopped) break
        error(`websocket ${c.wasOpen() ? 'dropped' : 'failed to connect'}: ${why}; reconnecting in ${reconnectDelayMs} ms`)
        if (c.wasOpen()) out.reconnects++
        await Promise.race([sleep(reconnectDelayMs), stopPromise])
    }

    await Promise.race([Promise.allSettled([...inflight]), sleep(num('REQUEST_TIMEOUT_MS', 10000))])
    http.destroy()
    log(`${out.blocks.length} blocks, ${out.events.length} events, ${out.unreadable.length} unreadable, ${out.reconnects} reconnects`)
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
}

main().catch(e => {
    console.error('subscribe(ethers): setup error:', e)
    process.exit(1)
})
