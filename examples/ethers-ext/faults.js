// Fault-tolerance workload with @kaiachain/ethers-ext (ethers v6), run for DURATION_S seconds against RPC_URL
// (kengate, or a plain load balancer as the baseline) while ENs are detached / stopped / paused. Used by
// tests/e2e/faults.rs.
//
// Senders: each account in SENDERS loops, cycling through the tx kinds of KINDS (default all four):
//   legacy                        type 0, plain EIP-155 ethers tx, sent with eth_sendRawTransaction
//   value_transfer                TxType.ValueTransfer (0x08), klay_sendRawTransaction
//   fee_delegated_value_transfer  TxType.FeeDelegatedValueTransfer (0x09): the sender signs, FEE_PAYER signs
//                                 with signTransactionAsFeePayer, the combined tx goes to klay_sendRawTransaction
//   value_transfer_memo           TxType.ValueTransferMemo (0x10) with a short utf-8 memo, klay_sendRawTransaction
// Before every send: klay_getTransactionCount [addr, "pending"] and klay_gasPrice. Nonce, gas price, gas
// limit and chain id are filled here, so the library makes no call of its own (no populateTransaction).
// A pending nonce below (last nonce this sender sent successfully + 1) counts as stale_nonce; it is used
// anyway, as a naive client would. After any write error the sender pauses ERROR_PAUSE_MS and goes on
// with a fresh pending-nonce read.
//
// Readers (READERS of them) loop without pauses: klay_blockNumber -> klay_getBlockByNumber(n, true) ->
// klay_getBlockReceipts(n) -> klay_getTransactionReceipt + eth_getTransactionByHash for up to 3 of the
// block's txs; every other round also klay_getBalance(addr, "latest"). A read error: a call throws, the
// block is null or is not block n, the receipts are not an array of the block's length, a receipt or tx
// of a listed tx is null, or klay_blockNumber goes below the highest value this reader has seen.
//
// Output: one JSON line on stdout, the last (diagnostics go to stderr):
//   {"calls":N, "sent":[hash...], "sent_by_kind":{kind:n}, "write_errors":[{kind,message,...}],
//    "read_errors":[message...], "stale_nonce":K, ...extra fields, see `report` below}
// With PROGRESS_MS set, {"progress":{"calls":N}} lines come before it, one every PROGRESS_MS.
// "calls" counts JSON-RPC calls as they leave the process (every element of every HTTP request body,
// counted in the HTTP layer, so library-made calls and 429 retries are counted too).
// SIGTERM / SIGINT end the run early (in-flight calls finish) and still print the line.
//
// Env: RPC_URL, ACCOUNTS_FILE (or LOCALNET_ACCOUNTS), CHAIN_ID (or LOCALNET_CHAIN_ID, default 1337),
// SENDERS (account indices, "0-5" or "0,3,7"; "" = none), FEE_PAYER (default 19), READERS (default 2),
// DURATION_S (default 60), PACE_MS (pause between a sender's txs, default 0), KINDS (comma list, default all),
// ERROR_PAUSE_MS (pause after an error, default 100), REQUEST_TIMEOUT_MS (per HTTP request, default 10000),
// MAX_ERRORS (most messages kept per error list, default 2000; the *_count fields count all), PROGRESS_MS
// (default 0: no progress lines).
const fs = require('fs')
const { FetchRequest, JsonRpcProvider, Network, keccak256, hexlify, toUtf8Bytes, toQuantity } = require('ethers')
const { Wallet, TxType } = require('@kaiachain/ethers-ext/v6')

const KINDS = {
    legacy: { type: 0, gasLimit: 21000, method: 'eth_sendRawTransaction' },
    value_transfer: { type: TxType.ValueTransfer, gasLimit: 21000, method: 'klay_sendRawTransaction' },
    fee_delegated_value_transfer: { type: TxType.FeeDelegatedValueTransfer, gasLimit: 50000, method: 'klay_sendRawTransaction' },
    value_transfer_memo: { type: TxType.ValueTransferMemo, gasLimit: 100000, method: 'klay_sendRawTransaction' },
}

function indices(spec) {
    if (!spec.trim()) return []
    return spec.split(',').flatMap(part => {
        const [a, b] = part.split('-').map(Number)
        return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i)
    })
}

const num = (name, dflt) => (process.env[name] === undefined || process.env[name] === '' ? dflt : Number(process.env[name]))
const sleep = ms => new Promise(r => setTimeout(r, ms))
const short = s => String(s).replace(/\s+/g, ' ').slice(0, 200)

// The JSON-RPC error object the node (or the gateway) answered with, if any, inside an ethers error.
function rpcErrorOf(e) {
    for (const c of [e && e.error, e && e.info && e.info.error, e && e.info && e.info.info && e.info.info.error]) {
        if (c && typeof c.message === 'string') return c
    }
    return null
}

// {via, code, message}: via "jsonrpc" = a JSON-RPC error response (code and message as received),
// "transport" = no JSON-RPC answer (connection error, timeout, HTTP status, bad body).
function describe(e) {
    const rpc = rpcErrorOf(e)
    if (rpc) return { via: 'jsonrpc', code: rpc.code, message: short(rpc.message + (rpc.data ? ` (data ${JSON.stringify(rpc.data)})` : '')) }
    let message = (e && (e.shortMessage || e.message)) || String(e)
    const status = e && e.info && e.info.responseStatus
    if (status && !message.includes(status)) message += ` [${status}]`
    return { via: 'transport', code: (e && e.code) || null, message: short(message) }
}

async function main() {
    const rpcUrl = process.env.RPC_URL
    if (!rpcUrl) throw new Error('RPC_URL is not set')
    const accounts = JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE || process.env.LOCALNET_ACCOUNTS, 'utf8'))
    const chainId = BigInt(num('CHAIN_ID', num('LOCALNET_CHAIN_ID', 1337)))
    const senders = indices(process.env.SENDERS === undefined ? '0' : process.env.SENDERS)
    const feePayerIndex = num('FEE_PAYER', 19)
    const readers = num('READERS', 2)
    const durationMs = num('DURATION_S', 60) * 1000
    const paceMs = num('PACE_MS', 0)
    const errorPauseMs = num('ERROR_PAUSE_MS', 100)
    const maxErrors = num('MAX_ERRORS', 2000)
    const kinds = (process.env.KINDS || Object.keys(KINDS).join(',')).split(',').map(k => k.trim()).filter(Boolean)
    for (const k of kinds) if (!KINDS[k]) throw new Error(`unknown kind ${k} (known: ${Object.keys(KINDS).join(', ')})`)
    for (const i of [...senders, feePayerIndex]) if (!accounts[i]) throw new Error(`no account #${i} in the accounts file`)

    // Count every JSON-RPC call at the HTTP layer (covers calls ethers makes by itself and 429 retries).
    const stats = { calls: 0, http_requests: 0, by_method: {} }
    const baseGetUrl = FetchRequest.createGetUrlFunc()
    FetchRequest.registerGetUrl(async (req, signal) => {
        stats.http_requests++
        try {
            const body = JSON.parse(Buffer.from(req.body).toString('utf8'))
            for (const p of Array.isArray(body) ? body : [body]) {
                stats.calls++
                stats.by_method[p.method] = (stats.by_method[p.method] || 0) + 1
            }
        } catch (_) {
            stats.calls++
        }
        return baseGetUrl(req, signal)
    })

    // ethers' own JsonRpcProvider: ethers-ext's JsonRpcProvider(url, network) drops a third `options`
    // argument, so batching (up to 100 calls per HTTP request, 10 ms stall) could not be turned off there.
    // One call per HTTP request, and a static network: no eth_chainId probe, ever.
    const conn = new FetchRequest(rpcUrl)
    conn.timeout = num('REQUEST_TIMEOUT_MS', 10000)
    const network = Network.from(chainId)
    const provider = new JsonRpcProvider(conn, network, { batchMaxCount: 1, staticNetwork: network })
    const send = (method, params) => provider.send(method, params)

    const started = Date.now()
    let deadline = started + durationMs
    const stop = () => { deadline = 0 }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    // Progress for a caller that runs the workload until enough calls were made (then SIGTERM).
    const progressMs = num('PROGRESS_MS', 0)
    const progress = progressMs > 0
        ? setInterval(() => process.stdout.write(JSON.stringify({ progress: { calls: stats.calls } }) + '\n'), progressMs)
        : null

    const out = {
        sent: [],
        sent_by_kind: Object.fromEntries(kinds.map(k => [k, 0])),
        write_errors: [],
        read_errors: [],
        stale_nonce: 0,
        write_error_count: 0,
        read_error_count: 0,
        reads: 0,
    }
    const writeError = (entry) => {
        out.write_error_count++
        if (out.write_errors.length < maxErrors) out.write_errors.push(entry)
    }
    const readError = (message) => {
        out.read_error_count++
        if (out.read_errors.length < maxErrors) out.read_errors.push(short(message))
    }

    const feePayer = new Wallet(accounts[feePayerIndex].privateKey, provider)

    async function sender(index, position) {
        const wallet = new Wallet(accounts[index].privateKey, provider)
        const from = wallet.address
        const to = Wallet.createRandom().address
        let lastSent = null // nonce of this sender's last successful send
        for (let i = position; Date.now() < deadline; i++) {
            const kind = kinds[i % kinds.length]
            const spec = KINDS[kind]
            let step = 'klay_getTransactionCount'
            let nonce = null
            let hash = null
            try {
                nonce = Number(await send('klay_getTransactionCount', [from, 'pending']))
                if (lastSent !== null && nonce < lastSent + 1) out.stale_nonce++
                step = 'klay_gasPrice'
                const gasPrice = BigInt(await send('klay_gasPrice', []))
                step = 'sign'
                const tx = { type: spec.type, from, to, value: 1n, nonce, gasPrice, gasLimit: spec.gasLimit, chainId }
                if (kind === 'legacy') delete tx.from
                if (kind === 'value_transfer_memo') tx.data = hexlify(toUtf8Bytes(`kengate faults #${index} nonce ${nonce}`))
                let raw = await wallet.signTransaction(tx)
                if (kind === 'fee_delegated_value_transfer') raw = await feePayer.signTransactionAsFeePayer(raw)
                hash = keccak256(raw)
                step = spec.method
                const got = await send(spec.method, [raw])
                if (typeof got !== 'string' || got.toLowerCase() !== hash) {
                    throw new Error(`${spec.method} answered ${JSON.stringify(got)}, the tx hash is ${hash}`)
                }
                out.sent.push(got)
                out.sent_by_kind[kind]++
                lastSent = nonce
            } catch (e) {
                writeError({ kind, sender: index, step, nonce, hash, ...describe(e) })
                await sleep(errorPauseMs)
            }
            if (paceMs > 0) await sleep(paceMs)
        }
    }

    async function reader(r) {
        let highest = -1
        for (let round = 0; Date.now() < deadline; round++) {
            let step = 'klay_blockNumber'
            try {
                const n = Number(await send('klay_blockNumber', []))
                if (n < highest) readError(`reader ${r}: klay_blockNumber went backwards: ${n} after ${highest}`)
                highest = Math.max(highest, n)
                const hex = toQuantity(n)
                step = 'klay_getBlockByNumber'
                const block = await send('klay_getBlockByNumber', [hex, true])
                if (!block) {
                    readError(`reader ${r}: klay_getBlockByNumber(${n}) is null (klay_blockNumber said ${n})`)
                } else {
                    if (Number(block.number) !== n) readError(`reader ${r}: klay_getBlockByNumber(${n}) returned block ${block.number}`)
                    const txs = Array.isArray(block.transactions) ? block.transactions : []
                    step = 'klay_getBlockReceipts'
                    const receipts = await send('klay_getBlockReceipts', [hex])
                    if (!Array.isArray(receipts)) readError(`reader ${r}: klay_getBlockReceipts(${n}) is ${JSON.stringify(receipts)}, block has ${txs.length} txs`)
                    else if (receipts.length !== txs.length) readError(`reader ${r}: klay_getBlockReceipts(${n}) has ${receipts.length} receipts, block has ${txs.length} txs`)
                    for (const tx of txs.slice(0, 3)) {
                        step = 'klay_getTransactionReceipt'
                        if (!(await send('klay_getTransactionReceipt', [tx.hash]))) readError(`reader ${r}: klay_getTransactionReceipt(${tx.hash}) of block ${n} is null`)
                        step = 'eth_getTransactionByHash'
                        if (!(await send('eth_getTransactionByHash', [tx.hash]))) readError(`reader ${r}: eth_getTransactionByHash(${tx.hash}) of block ${n} is null`)
                    }
                }
                if (round % 2 === 1) {
                    step = 'klay_getBalance'
                    const addr = accounts[(r + round) % accounts.length].address
                    const balance = await send('klay_getBalance', [addr, 'latest'])
                    if (typeof balance !== 'string') readError(`reader ${r}: klay_getBalance(${addr}) is ${JSON.stringify(balance)}`)
                }
                out.reads++
            } catch (e) {
                const d = describe(e)
                readError(`reader ${r}: ${step}: ${d.via} ${d.code}: ${d.message}`)
                await sleep(errorPauseMs)
            }
        }
    }

    await Promise.all([
        ...senders.map((index, position) => sender(index, position)),
        ...Array.from({ length: readers }, (_, r) => reader(r)),
    ])
    const elapsed = (Date.now() - started) / 1000
    provider.destroy()

    const report = {
        calls: stats.calls,
        sent: out.sent,
        sent_by_kind: out.sent_by_kind,
        write_errors: out.write_errors,
        read_errors: out.read_errors,
        stale_nonce: out.stale_nonce,
        // extras
        write_error_count: out.write_error_count,
        read_error_count: out.read_error_count,
        reads: out.reads,
        http_requests: stats.http_requests,
        calls_by_method: stats.by_method,
        elapsed_s: Number(elapsed.toFixed(3)),
        calls_per_s: Math.round(stats.calls / elapsed),
    }
    if (progress) clearInterval(progress)
    process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0))
}

main().catch(e => {
    console.error(e)
    process.exit(1)
})
