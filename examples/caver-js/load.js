// Write load with caver-js: each sender in SENDERS signs TXS value transfers (type 0x08) with its keyring, asking
// RPC_URL for its pending nonce (klay_getTransactionCount "pending") before every send, all senders concurrently,
// and submits them with klay_sendRawTransaction through caver's provider. Prints one JSON line:
// {"sent":[hashes],"errors":[messages]}. Used by tests/e2e/writes.rs.
// Env: RPC_URL, ACCOUNTS_FILE (or LOCALNET_ACCOUNTS), SENDERS ("0-9" or "3,5"), TXS (default 50), PACE_MS (default 20).
const fs = require('fs')
const Caver = require('caver-js')

function indices(spec) {
    return spec.split(',').flatMap(part => {
        const [a, b] = part.split('-').map(Number)
        return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i)
    })
}

// One JSON-RPC call through caver's own provider (no receipt polling per tx).
function rpc(caver, method, params) {
    return new Promise((resolve, reject) => {
        caver.currentProvider.send({ jsonrpc: '2.0', id: Date.now(), method, params }, (err, res) => {
            if (err) return reject(err)
            if (res.error) return reject(new Error(res.error.message))
            resolve(res.result)
        })
    })
}

async function sender(caver, account, txs, paceMs, gasPrice, out) {
    const keyring = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(account.privateKey))
    const to = caver.wallet.keyring.generate().address
    for (let i = 0; i < txs; i++) {
        try {
            const nonce = await rpc(caver, 'klay_getTransactionCount', [keyring.address, 'pending'])
            const tx = caver.transaction.valueTransfer.create({ from: keyring.address, to, value: 1, gas: 25000, nonce, gasPrice })
            await caver.wallet.sign(keyring.address, tx)
            out.sent.push(await rpc(caver, 'klay_sendRawTransaction', [tx.getRLPEncoding()]))
        } catch (e) {
            out.errors.push(`${keyring.address}: ${e.message}`)
        }
        await new Promise(r => setTimeout(r, paceMs))
    }
}

async function main() {
    const accounts = JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE || process.env.LOCALNET_ACCOUNTS, 'utf8'))
    const caver = new Caver(process.env.RPC_URL)
    const txs = Number(process.env.TXS || 50)
    const paceMs = Number(process.env.PACE_MS || 20)
    const gasPrice = await rpc(caver, 'klay_gasPrice', [])
    const out = { sent: [], errors: [] }
    await Promise.all(indices(process.env.SENDERS || '0').map(i => sender(caver, accounts[i], txs, paceMs, gasPrice, out)))
    console.log(JSON.stringify(out))
}

main().catch(e => { console.error(e); process.exit(1) })
