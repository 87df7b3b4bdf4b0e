// Write load with @kaiachain/ethers-ext: each sender in SENDERS sends TXS Klaytn value transfers (type 0x08),
// asking RPC_URL for its pending nonce (klay_getTransactionCount "pending") before every send, all senders
// concurrently. Prints one JSON line: {"sent":[hashes],"errors":[messages]}. Used by tests/e2e/writes.rs.
// Env: RPC_URL, ACCOUNTS_FILE (or LOCALNET_ACCOUNTS), SENDERS (account indices, e.g. "0-9" or "3,5"), TXS (default 50),
// PACE_MS (pause between a sender's txs, default 20).
const fs = require('fs')
const { Wallet, JsonRpcProvider, TxType } = require('@kaiachain/ethers-ext/v6')

function indices(spec) {
    return spec.split(',').flatMap(part => {
        const [a, b] = part.split('-').map(Number)
        return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i)
    })
}

async function sender(provider, key, txs, paceMs, out) {
    const wallet = new Wallet(key, provider)
    const to = Wallet.createRandom().address
    for (let i = 0; i < txs; i++) {
        try {
            const nonce = Number(await provider.send('klay_getTransactionCount', [wallet.address, 'pending']))
            const tx = await wallet.populateTransaction({ type: TxType.ValueTransfer, to, value: 1n, nonce, gasLimit: 21000 })
            const signed = await wallet.signTransaction(tx)
            out.sent.push(await provider.send('klay_sendRawTransaction', [signed]))
        } catch (e) {
            out.errors.push(`${wallet.address}: ${e.shortMessage || e.message}`)
        }
        await new Promise(r => setTimeout(r, paceMs))
    }
}

async function main() {
    const accounts = JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE || process.env.LOCALNET_ACCOUNTS, 'utf8'))
    const provider = new JsonRpcProvider(process.env.RPC_URL, undefined, { batchMaxCount: 1, staticNetwork: true })
    const txs = Number(process.env.TXS || 50)
    const paceMs = Number(process.env.PACE_MS || 20)
    const out = { sent: [], errors: [] }
    await Promise.all(indices(process.env.SENDERS || '0').map(i => sender(provider, accounts[i].privateKey, txs, paceMs, out)))
    console.log(JSON.stringify(out))
}

main().catch(e => { console.error(e); process.exit(1) })
