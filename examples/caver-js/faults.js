// Fault-tolerance workload with caver-js, run for DURATION_S seconds against RPC_URL (kengate, or a plain load
// balancer as the baseline) while ENs are detached / stopped / paused. Same output as
// examples/ethers-ext/faults.js. Used by tests/e2e/faults.rs.
//
// Senders: each account in SENDERS loops, cycling through the tx kinds of KINDS (default all four), each
// built with caver.transaction.*.create, signed with caver.wallet (keyrings) and sent raw:
//   legacy                        caver.transaction.legacyTransaction, eth_sendRawTransaction
//   value_transfer                valueTransfer (0x08), klay_sendRawTransaction
//   fee_delegated_value_transfer  feeDelegatedValueTransfer (0x09): caver.wallet.sign by the sender, then
//                                 caver.wallet.signAsFeePayer by FEE_PAYER, klay_sendRawTransaction
//   value_transfer_memo           valueTransferMemo (0x10) with a short utf-8 memo, klay_sendRawTransaction
// Before every send: klay_getTransactionCount [addr, "pending"] and klay_gasPrice. Nonce, gas price, gas and
// chain id are set on the tx, so caver's fillTransaction makes no call of its own (without chainId it would
// call klay_chainID on every sign). A pending nonce below (last nonce this sender sent successfully + 1)
// counts as stale_nonce; it is used anyway. After any write error the sender pauses ERROR_PAUSE_MS and goes
// on with a fresh pending-nonce read.
//
// Readers (READERS, default 0): same loop as ethers-ext/faults.js (klay_blockNumber -> klay_getBlockByNumber
// (n, true) -> klay_getBlockReceipts(n) -> klay_getTransactionReceipt + eth_getTransactionByHash for up to 3
// txs; klay_getBalance every other round), same error rules.
//
// Every sender and reader has its own caver HttpProvider (own keep-alive agent): caver's HttpProvider keeps
// its timeout timer in one field per provider, so concurrent calls on a shared provider would clear each
// other's timeouts. Calls go through provider.send (as examples/caver-js/load.js does); "calls" counts every
// JSON-RPC call handed to a provider (batch elements counted one by one).
//
// Output: one JSON line on stdout, the last:
//   {"calls":N, "sent":[hash...], "sent_by_kind":{kind:n}, "write_errors":[{kind,message,...}],
//    "read_errors":[message...], "stale_nonce":K, ...extras}
// With PROGRESS_MS set, {"progress":{"calls":N}} lines come before it, one every PROGRESS_MS.
// SIGTERM / SIGINT end the run early (in-flight calls finish) and still print the line.
//
// Env: RPC_URL, ACCOUNTS_FILE (or LOCALNET_ACCOUNTS), CHAIN_ID (or LOCALNET_CHAIN_ID, default 1337),
// SENDERS ("10-15" or "10,12"; "" = none), FEE_PAYER (default 19), READERS (default 0), DURATION_S
// (default 60), PACE_MS (default 0), KINDS (comma list, default all), ERROR_PAUSE_MS (default 100),
// REQUEST_TIMEOUT_MS (default 10000), MAX_ERRORS (most messages kept per error list, default 2000),
// PROGRESS_MS (default 0: no progress lines).
const fs = require('fs')
const Caver = require('caver-js')

const KINDS = {
    legacy: { create: 'legacyTransaction', gas: 21000, method: 'eth_sendRawTransaction' },
    value_transfer: { create: 'valueTransfer', gas: 21000, method: 'klay_sendRawTransaction' },
    fee_delegated_value_transfer: { create: 'feeDelegatedValueTransfer', gas: 50000, method: 'klay_sendRawTransaction' },
    value_transfer_memo: { create: 'valueTransferMemo', gas: 100000, method: 'klay_sendRawTransaction' },
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

// An error carrying the JSON-RPC error object as received (via "jsonrpc"), or caver's transport error
// (via "transport": "CONNECTION ERROR: ...", "CONNECTION TIMEOUT: ...", "Invalid JSON RPC response: ...").
class RpcError extends Error {
    constructor(error) {
        super(error.message + (error.data ? ` (data ${JSON.stringify(error.data)})` : ''))
        this.rpc = error
    }
}

function describe(e) {
    if (e instanceof RpcError) return { via: 'jsonrpc', code: e.rpc.code, message: short(e.message) }
    return { via: 'transport', code: (e && e.code) || null, message: short((e && e.message) || e) }
}

async function main() {
    const rpcUrl = process.env.RPC_URL
    if (!rpcUrl) throw new Error('RPC_URL is not set')
    const accounts = JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE || process.env.LOCALNET_ACCOUNTS, 'utf8'))
    const chainId = num('CHAIN_ID', num('LOCALNET_CHAIN_ID', 1337))
    const senders = indices(process.env.SENDERS === undefined ? '10' : process.env.SENDERS)
    const feePayerIndex = num('FEE_PAYER', 19)
    const readers = num('READERS', 0)
    const durationMs = num('DURATION_S', 60) * 1000
    const paceMs = num('PACE_MS', 0)
    const errorPauseMs = num('ERROR_PAUSE_MS', 100)
    const timeoutMs = num('REQUEST_TIMEOUT_MS', 10000)
    const maxErrors = num('MAX_ERRORS', 2000)
    const kinds = (process.env.KINDS || Object.keys(KINDS).join(',')).split(',').map(k => k.trim()).filter(Boolean)
    for (const k of kinds) if (!KINDS[k]) throw new Error(`unknown kind ${k} (known: ${Object.keys(KINDS).join(', ')})`)
    for (const i of [...senders, feePayerIndex]) if (!accounts[i]) throw new Error(`no account #${i} in the accounts file`)

    const stats = { calls: 0, by_method: {} }
    const newProvider = () => {
        const provider = new Caver.providers.HttpProvider(rpcUrl, { timeout: timeoutMs })
        const send = provider.send.bind(provider)
        provider.send = (payload, callback) => {
            for (const p of Array.isArray(payload) ? payload : [payload]) {
                stats.calls++
                stats.by_method[p.method] = (stats.by_method[p.method] || 0) + 1
            }
            return send(payload, callback)
        }
        return provider
    }
    const caver = new Caver(newProvider())
    let nextId = 1
    // One JSON-RPC call through a caver provider (callback API, settled once: on a timeout caver's
    // HttpProvider calls back twice).
    const rpc = (provider, method, params) =>
        new Promise((resolve, reject) => {
            provider.send({ jsonrpc: '2.0', id: nextId++, method, params }, (err, res) => {
                if (err) return reject(err)
                if (!res || typeof res !== 'object') return reject(new Error(`bad JSON-RPC response ${JSON.stringify(res)}`))
                if (res.error) return reject(new RpcError(res.error))
                resolve(res.result)
            })
        })

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
    const writeError = entry => {
        out.write_error_count++
        if (out.write_errors.length < maxErrors) out.write_errors.push(entry)
    }
    const readError = message => {
        out.read_error_count++
        if (out.read_errors.length < maxErrors) out.read_errors.push(short(message))
    }

    const feePayer = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(accounts[feePayerIndex].privateKey))

    async function sender(index, position) {
        const provider = newProvider()
        const keyring = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(accounts[index].privateKey))
        const from = keyring.address
        const to = caver.wallet.keyring.generate().address
        let lastSent = null // nonce of this sender's last successful send
        for (let i = position; Date.now() < deadline; i++) {
            const kind = kinds[i % kinds.length]
            const spec = KINDS[kind]
            let step = 'klay_getTransactionCount'
            let nonce = null
            let hash = null
            try {
                const pending = await rpc(provider, 'klay_getTransactionCount', [from, 'pending'])
                nonce = Number(pending)
                if (lastSent !== null && nonce < lastSent + 1) out.stale_nonce++
                step = 'klay_gasPrice'
                const gasPrice = await rpc(provider, 'klay_gasPrice', [])
                step = 'sign'
                const fields = { from, to, value: 1, gas: spec.gas, nonce: pending, gasPrice, chainId }
                if (kind === 'value_transfer_memo') fields.input = caver.utils.utf8ToHex(`kengate faults #${index} nonce ${nonce}`)
                const tx = caver.transaction[spec.create].create(fields)
                await caver.wallet.sign(from, tx)
                if (kind === 'fee_delegated_value_transfer') await caver.wallet.signAsFeePayer(feePayer.address, tx)
                const raw = tx.getRLPEncoding()
                hash = tx.getTransactionHash()
                step = spec.method
                const got = await rpc(provider, spec.method, [raw])
                if (typeof got !== 'string' || got.toLowerCase() !== hash.toLowerCase()) {
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
        const provider = newProvider()
        let highest = -1
        for (let round = 0; Date.now() < deadline; round++) {
            let step = 'klay_blockNumber'
            try {
                const n = Number(await rpc(provider, 'klay_blockNumber', []))
                if (n < highest) readError(`reader ${r}: klay_blockNumber went backwards: ${n} after ${highest}`)
                highest = Math.max(highest, n)
                const hex = '0x' + n.toString(16)
                step = 'klay_getBlockByNumber'
                const block = await rpc(provider, 'klay_getBlockByNumber', [hex, true])
                if (!block) {
                    readError(`reader ${r}: klay_getBlockByNumber(${n}) is null (klay_blockNumber said ${n})`)
                } else {
                    if (Number(block.number) !== n) readError(`reader ${r}: klay_getBlockByNumber(${n}) returned block ${block.number}`)
                    const txs = Array.isArray(block.transactions) ? block.transactions : []
                    step = 'klay_getBlockReceipts'
                    const receipts = await rpc(provider, 'klay_getBlockReceipts', [hex])
                    if (!Array.isArray(receipts)) readError(`reader ${r}: klay_getBlockReceipts(${n}) is ${JSON.stringify(receipts)}, block has ${txs.length} txs`)
                    else if (receipts.length !== txs.length) readError(`reader ${r}: klay_getBlockReceipts(${n}) has ${receipts.length} receipts, block has ${txs.length} txs`)
                    for (const tx of txs.slice(0, 3)) {
                        step = 'klay_getTransactionReceipt'
                        if (!(await rpc(provider, 'klay_getTransactionReceipt', [tx.hash]))) readError(`reader ${r}: klay_getTransactionReceipt(${tx.hash}) of block ${n} is null`)
                        step = 'eth_getTransactionByHash'
                        if (!(await rpc(provider, 'eth_getTransactionByHash', [tx.hash]))) readError(`reader ${r}: eth_getTransactionByHash(${tx.hash}) of block ${n} is null`)
                    }
                }
                if (round % 2 === 1) {
                    step = 'klay_getBalance'
                    const addr = accounts[(r + round) % accounts.length].address
                    const balance = await rpc(provider, 'klay_getBalance', [addr, 'latest'])
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
