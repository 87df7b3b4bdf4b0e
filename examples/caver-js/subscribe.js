// WebSocket subscriber with caver-js (1.12.2): new blocks and the emitter's Ping events, each announced block read
// back at once over HTTP. Run for DURATION_S seconds. Same env and output as examples/ethers-ext/subscribe.js.
//
// What caver-js does on the wire (Caver.providers.WebsocketProvider, `websocket` package's w3cwebsocket):
//   caver.rpc.klay.subscribe('newBlockHeaders', cb) -> klay_subscribe ["newHeads"]   (klay_ namespace, not eth_)
//   contract.events.Ping(cb)                        -> klay_subscribe ["logs", {address, topics:[topic0]}]
//   The logs filter caver sends is {"topics":[topic0, null], "address": addr} (a trailing null for the indexed
//   arg). Notifications are routed by params.subscription id; any method name containing "_subscription" is
//   accepted (klay_subscription or eth_subscription). JSON-RPC ids restart at 1 on every new Caver/provider.
//   No batching, no keepalive/ping.
//   caver's own auto reconnect is OFF by default (reconnect.auto = false), and when a subscription's socket dies
//   caver calls provider.reconnect() every 500 ms on its own, which with auto = false is still a real reconnect
//   attempt (web3 1.x legacy). We do not rely on that: on the provider's 'close' (or STALL_S of silence) this
//   program drops the whole Caver instance, builds a new one and subscribes again; that is a "reconnect".
//   Blocks/events announced while disconnected are missed (no backfill).
// On every block n: klay_getBlockByNumber(hex n, false) and klay_getBlockReceipts(hex n) through HTTP_URL
// (a separate Caver on the HTTP provider, one call per HTTP request).
//
// Env: WS_URL, HTTP_URL (required), DURATION_S (default 20), CONTRACT or ADDRESS_FILE (polled every 200 ms),
//      RECONNECT_DELAY_MS (default 500), STALL_S (default 0 = off), REQUEST_TIMEOUT_MS (HTTP, default 10000).
// Output: one JSON line on stdout:
//   {"blocks":[n...],"events":[{"tx","logIndex","block","n"}],"unreadable":[{"block","why"}],"reconnects":K,
//    "errors":[...],"reconnect_attempts":A,"ws_calls_by_method":{...},"http_calls":H,"contract":..}
// Exit 1 only on a setup error. SIGTERM / SIGINT end the run early and still print the line.
const fs = require('fs')
const Caver = require('caver-js')

const PING_ABI = [{
    anonymous: false,
    inputs: [{ indexed: true, name: 'n', type: 'uint256' }, { indexed: false, name: 'from', type: 'address' }],
    name: 'Ping',
    type: 'event',
}]
const num = (name, dflt) => (process.env[name] === undefined || process.env[name] === '' ? dflt : Number(process.env[name]))
const sleep = ms => new Promise(r => setTimeout(r, ms))
const short = s => String(s).replace(/\s+/g, ' ').slice(0, 300)
const log = (...a) => console.error('subscribe(caver):', ...a)
const MAX_ERRORS = 2000
const describe = e => short((e && e.message) || (e && JSON.stringify(e)) || String(e))
const toNum = v => (typeof v === 'number' ? v : Number(v)) // hex strings ("0x..") and decimal strings both

async function main() {
    const wsUrl = process.env.WS_URL
    const httpUrl = process.env.HTTP_URL
    if (!wsUrl || !httpUrl) throw new Error('WS_URL and HTTP_URL must be set')
    const durationMs = num('DURATION_S', 20) * 1000
    const reconnectDelayMs = num('RECONNECT_DELAY_MS', 500)
    const stallMs = num('STALL_S', 0) * 1000

    const out = { blocks: [], events: [], unreadable: [], reconnects: 0, errors: [], reconnect_attempts: 0, ws_calls_by_method: {}, http_calls: 0, contract: null }
    const error = m => { if (out.errors.length < MAX_ERRORS) out.errors.push(short(m)); log(m) }

    const httpCaver = new Caver(new Caver.providers.HttpProvider(httpUrl, { timeout: num('REQUEST_TIMEOUT_MS', 10000) }))
    const getBlock = n => { out.http_calls++; return httpCaver.rpc.klay.getBlockByNumber(n, false) }
    const getReceipts = hex => { out.http_calls++; return httpCaver.rpc.klay.getBlockReceipts(hex) }

    let stopped = false
    let wakeStop
    const stopPromise = new Promise(r => { wakeStop = r })
    const stop = () => { stopped = true; wakeStop() }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    process.on('unhandledRejection', e => error(`unhandled: ${describe(e)}`))
    setTimeout(stop, durationMs)

    const inflight = new Set()
    function readBack(n) {
        const p = (async () => {
            const hex = '0x' + n.toString(16)
            let step = 'klay_getBlockByNumber'
            try {
                const [block, receipts] = await Promise.all([
                    getBlock(hex),
                    getReceipts(hex).catch(e => { step = 'klay_getBlockReceipts'; throw e }),
                ])
                if (!block) return out.unreadable.push({ block: n, why: 'klay_getBlockByNumber: null' })
                if (toNum(block.number) !== n) return out.unreadable.push({ block: n, why: `klay_getBlockByNumber: got block ${block.number}` })
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

    let contractAddr = process.env.CONTRACT || null
    const addressFile = process.env.ADDRESS_FILE || ''
    let current = null
    const attachEvents = (caver, onActivity) => {
        const contract = caver.contract.create(PING_ABI, contractAddr)
        contract.events.Ping((err, ev) => {
            if (err) return error(`Ping subscription: ${describe(err)}`)
            onActivity()
            out.events.push({ tx: ev.transactionHash, logIndex: toNum(ev.logIndex), block: toNum(ev.blockNumber), n: Number(ev.returnValues && ev.returnValues.n) })
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
                if (current) attachEvents(current.caver, current.touch)
            }
        })()
    } else out.contract = contractAddr

    function connect() {
        let lastActivity = Date.now()
        let opened = false
        const provider = new Caver.providers.WebsocketProvider(wsUrl)
        const origSend = provider.send.bind(provider)
        provider.send = (payload, cb) => {
            // caver queues calls made before the socket is open and re-sends them through send() on open:
            // count only what goes on the wire now.
            const c = provider.connection
            if (!c || c.readyState !== c.OPEN || provider.reconnecting) return origSend(payload, cb)
            for (const p of Array.isArray(payload) ? payload : [payload]) {
                out.ws_calls_by_method[p.method] = (out.ws_calls_by_method[p.method] || 0) + 1
                if (process.env.DEBUG) log(`ws -> ${JSON.stringify(p)}`)
            }
            return origSend(payload, cb)
        }
        const caver = new Caver(provider)
        const touch = () => { lastActivity = Date.now() }
        const closed = new Promise(resolve => {
            provider.on('connect', () => { opened = true; touch() })
            provider.on('error', e => error(`ws error: ${describe(e)}`))
            provider.on('close', e => resolve(`closed (code ${e && e.code}${e && e.reason ? ', ' + short(e.reason) : ''})`))
            if (stallMs > 0) {
                const t = setInterval(() => {
                    if (Date.now() - lastActivity > stallMs) { clearInterval(t); resolve(`no block for ${stallMs / 1000}s`) }
                }, 250)
                provider.on('close', () => clearInterval(t))
            }
        })
        caver.rpc.klay.subscribe('newBlockHeaders', (err, header) => {
            if (err) return error(`newBlockHeaders subscription: ${describe(err)}`)
            touch()
            const n = toNum(header.number)
            out.blocks.push(n)
            readBack(n)
        })
        if (contractAddr) attachEvents(caver, touch)
        return { caver, provider, closed, touch, wasOpen: () => opened }
    }

    for (let first = true; !stopped; first = false) {
        if (!first) out.reconnect_attempts++
        current = connect()
        const why = await Promise.race([current.closed, stopPromise.then(() => null)])
        const c = current
        try { c.provider.removeAllListeners('close'); c.provider.disconnect(1000) } catch (_) {}
        if (stopped) break
        error(`websocket ${c.wasOpen() ? 'dropped' : 'failed to connect'}: ${why}; reconnecting in ${reconnectDelayMs} ms`)
        if (c.wasOpen()) out.reconnects++
        await Promise.race([sleep(reconnectDelayMs), stopPromise])
    }

    await Promise.race([Promise.allSettled([...inflight]), sleep(num('REQUEST_TIMEOUT_MS', 10000))])
    log(`${out.blocks.length} blocks, ${out.events.length} events, ${out.unreadable.length} unreadable, ${out.reconnects} reconnects`)
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
}

main().catch(e => {
    console.error('subscribe(caver): setup error:', e)
    process.exit(1)
})
