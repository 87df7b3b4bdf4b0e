// A KAS (Klaytn API Service) Node API client, written the way a BApp on KAS is: caver-js-ext-kas with
// caver.initNodeAPIWithHttp(chainId, accessKeyId, secretAccessKey, url). Pointed at kengate instead of
// node-api.klaytnapi.com, it reads (block number, chain id, balance, the block at that number) and sends
// a value transfer (type 0x08) signed locally with a keyring, then waits for its receipt.
//
// What the SDK sends (caver-js-ext-kas 1.12.0 on caver-js 1.6.5-rc.1): HTTP POST to URL + "/v1/klaytn"
// (appended unless URL already ends in /v1/klaytn), one JSON-RPC call per request, with headers
// `Authorization: Basic base64(ACCESS_KEY_ID:SECRET_ACCESS_KEY)` and `x-chain-id: CHAIN_ID`.
//
// Usage: node node_api.js [RPC_URL [CHAIN_ID [ACCESS_KEY_ID [SECRET_ACCESS_KEY]]]]   (args override env)
// Env:   RPC_URL (required), CHAIN_ID (default LOCALNET_CHAIN_ID), ACCESS_KEY_ID, SECRET_ACCESS_KEY (required),
//        ACCOUNTS_FILE (default LOCALNET_ACCOUNTS), ACCOUNT_INDEX (default 5),
//        EXPECT_DENIED=1: the first call must be refused (HTTP 401/403); exit 0 only then.
// Output: progress lines on stderr; on success one JSON line on stdout, exit 0.
//         On failure "kas-node-api: FAILED: reason" on stderr, exit 1.
const fs = require('fs')
const CaverExtKAS = require('caver-js-ext-kas')

const RECEIPT_TIMEOUT_MS = 60000
const NAME = 'kas-node-api'
const ARG_NAMES = ['RPC_URL', 'CHAIN_ID', 'ACCESS_KEY_ID', 'SECRET_ACCESS_KEY']

function setting(name, fallback) {
    const i = ARG_NAMES.indexOf(name)
    const v = (i >= 0 && process.argv[2 + i]) || process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

const say = line => console.error(line)

function withTimeout(promise, what) {
    let timer
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${RECEIPT_TIMEOUT_MS / 1000}s waiting for ${what}`)), RECEIPT_TIMEOUT_MS)
    })
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// caver-js 1.6 ignores the HTTP status: a refused request surfaces only as the text of the reply body
// ("Returned error: <error.message>" for a JSON-RPC error body, "Invalid JSON RPC response: <body>" for
// other JSON or text, "Request failed: <status text>" for an empty body). So "denied" is judged by words.
const DENIED = /\b(401|403)\b|unauthori[sz]ed|forbidden|authenticat|authoriz|access key|credential|denied/i

async function expectDenied(caver) {
    let n
    try {
        n = await caver.rpc.klay.getBlockNumber()
    } catch (e) {
        const message = String(e && e.message ? e.message : e)
        if (!DENIED.test(message)) throw new Error(`the first call failed, but not with an authentication error: ${message}`)
        console.log(JSON.stringify({ denied: true, error: message }))
        return
    }
    throw new Error(`expected the first call to be refused, but klay_blockNumber answered ${n}`)
}

async function main() {
    const rpcUrl = setting('RPC_URL')
    const chainId = Number(setting('CHAIN_ID', process.env.LOCALNET_CHAIN_ID))
    const accessKeyId = setting('ACCESS_KEY_ID')
    const secretAccessKey = setting('SECRET_ACCESS_KEY')
    if (!Number.isInteger(chainId) || chainId <= 0) throw new Error(`CHAIN_ID ${setting('CHAIN_ID', process.env.LOCALNET_CHAIN_ID)} is not a chain id`)

    const caver = new CaverExtKAS()
    caver.initNodeAPIWithHttp(chainId, accessKeyId, secretAccessKey, rpcUrl)
    const endpoint = caver.currentProvider.host // rpcUrl + "/v1/klaytn"
    say(`rpc ${endpoint} (chain id ${chainId}, access key ${accessKeyId})`)

    if (process.env.EXPECT_DENIED === '1') return expectDenied(caver)

    const accounts = JSON.parse(fs.readFileSync(setting('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS), 'utf8'))
    const index = Number(setting('ACCOUNT_INDEX', '5'))
    if (!accounts[index]) throw new Error(`no test account #${index} in the accounts file`)
    // caver.wallet of caver-js-ext-kas is the KAS Wallet API; a local in-memory wallet is a keyringContainer.
    const wallet = new caver.keyringContainer()
    const sender = wallet.add(caver.wallet.keyring.createFromPrivateKey(accounts[index].privateKey))
    say(`sender #${index} ${sender.address}`)

    // 1. reads
    const blockNumber = parseInt(await caver.rpc.klay.getBlockNumber(), 16)
    say(`block number: ${blockNumber}`)
    const gotChainId = Number(await caver.rpc.klay.getChainId())
    if (gotChainId !== chainId) throw new Error(`chain id ${gotChainId}, expected ${chainId}`)
    say(`chain id: ${gotChainId}`)
    const balance = caver.utils.toBN(await caver.rpc.klay.getBalance(sender.address))
    if (balance.isZero()) throw new Error(`sender ${sender.address} has no KLAY`)
    say(`balance: ${caver.utils.convertFromPeb(balance, 'KLAY')} KLAY`)
    const block = await caver.rpc.klay.getBlockByNumber(blockNumber)
    if (!block || parseInt(block.number, 16) !== blockNumber) throw new Error(`block ${blockNumber}: got ${JSON.stringify(block)}`)
    say(`block ${blockNumber}: hash ${block.hash}, ${block.transactions.length} txs`)

    // 2. value transfer (type 0x08) to a fresh address, signed locally, sent raw
    const recipient = caver.wallet.keyring.generate().address
    const value = caver.utils.toPeb('0.01', 'KLAY')
    const tx = caver.transaction.valueTransfer.create({ from: sender.address, to: recipient, value, gas: 25000 })
    await wallet.sign(sender.address, tx) // fills chainId, gasPrice and the "pending" nonce through the Node API
    const hash = tx.getTransactionHash()
    say(`value transfer: nonce ${parseInt(tx.nonce)}, gas price ${parseInt(tx.gasPrice)}, hash ${hash}`)
    const receipt = await withTimeout(caver.rpc.klay.sendRawTransaction(tx), 'the value transfer receipt')
    if (!receipt) throw new Error('value transfer: no receipt')
    if (receipt.status !== true && receipt.status !== '0x1') {
        throw new Error(`value transfer: receipt status ${receipt.status} (txError ${receipt.txError}) in block ${receipt.blockNumber}`)
    }
    if (receipt.transactionHash !== hash) throw new Error(`receipt is for ${receipt.transactionHash}, sent ${hash}`)
    say(`value transfer: mined in block ${parseInt(receipt.blockNumber)} (gas used ${parseInt(receipt.gasUsed)})`)

    console.log(
        JSON.stringify({
            endpoint,
            chainId: gotChainId,
            blockNumber,
            blockHash: block.hash,
            sender: sender.address,
            accountIndex: index,
            balance: balance.toString(),
            tx: { hash, nonce: parseInt(tx.nonce), to: recipient, value, block: parseInt(receipt.blockNumber), status: receipt.status },
        })
    )
}

main().then(
    () => process.exit(0),
    err => {
        console.error(`${NAME}: FAILED: ${err && err.message ? err.message : err}`)
        process.exit(1)
    }
)
