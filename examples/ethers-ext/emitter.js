// Event source for the subscription tests: deploys a tiny hand-assembled contract from account DEPLOYER, then
// calls it every PACE_MS for DURATION_S seconds, each call with an increasing counter (1, 2, ...) as calldata.
//
// The contract (no solc here; assembled by hand). Runtime, on any call (46 bytes):
//   33             CALLER
//   6000 52        PUSH1 0 MSTORE            mem[0..32] = caller (left-padded: the ABI encoding of an address)
//   6000 35        PUSH1 0 CALLDATALOAD      topic1 = first calldata word (the counter)
//   7f <32 bytes>  PUSH32 topic0             keccak256("Ping(uint256,address)")
//   6020 6000 a2   PUSH1 32 PUSH1 0 LOG2     log(data = mem[0..32], topics = [topic0, counter])
//   00             STOP
// i.e. `event Ping(uint256 indexed n, address from)`: the ABI signature hashed for topic0 is "Ping(uint256,address)"
// (not "Ping(uint256)"), so ethers/caver/web3 contract objects with that ABI decode it.
// Init code (11 bytes): 602e 80 600b 6000 39 6000 f3 = CODECOPY(0, 11, 46); RETURN(0, 46).
//
// Every tx is a legacy (type 0) EIP-155 tx signed by @kaiachain/ethers-ext's Wallet, with nonce
// (klay_getTransactionCount [addr,"pending"], read before every send), gas price (klay_gasPrice, read once) and gas
// limit filled here, sent with eth_sendRawTransaction through ethers' JsonRpcProvider (one call per HTTP request,
// static network: ethers makes no call of its own). The deploy is awaited by polling klay_getTransactionReceipt.
//
// Env: RPC_URL (HTTP, required), ACCOUNTS_FILE (or LOCALNET_ACCOUNTS), CHAIN_ID (or LOCALNET_CHAIN_ID, 1337),
//      DEPLOYER (account index, default 18), DURATION_S (default 20), PACE_MS (default 100),
//      ADDRESS_FILE (optional: the contract address is written there once deployed, via a rename, so a reader
//      never sees a partial file), REQUEST_TIMEOUT_MS (default 10000).
// Output: one JSON line on stdout:
//   {"contract":"0x..","deploy_tx":"0x..","deploy_block":n,"sent":[hash...],"sent_counters":[counter...],
//    "errors":[{step,counter,nonce,message}...],"counters":N,"topic0":"0x.."}
// sent[i] carries counter sent_counters[i]; "counters" = how many call txs were accepted (= sent.length).
// stderr gets "contract 0x..." as soon as the deploy receipt is in. Exit 1 only on a setup error (deploy failed).
// SIGTERM / SIGINT end the run early and still print the line.
const fs = require('fs')
const path = require('path')
const { FetchRequest, JsonRpcProvider, Network, keccak256, toBeHex, zeroPadValue } = require('ethers')
const { Wallet } = require('@kaiachain/ethers-ext/v6')

const TOPIC0 = '0xc05b373e05c47417d9c7204807552389e512c0e21cbc01a03d1554561080ac6e' // keccak256("Ping(uint256,address)")
const RUNTIME = '0x33600052600035' + '7f' + TOPIC0.slice(2) + '60206000a200'
const INIT = '0x602e80600b6000396000f3'
const BYTECODE = INIT + RUNTIME.slice(2)

const num = (name, dflt) => (process.env[name] === undefined || process.env[name] === '' ? dflt : Number(process.env[name]))
const sleep = ms => new Promise(r => setTimeout(r, ms))
const short = s => String(s).replace(/\s+/g, ' ').slice(0, 300)
const log = (...a) => console.error('emitter:', ...a)

function describe(e) {
    for (const c of [e && e.error, e && e.info && e.info.error]) {
        if (c && typeof c.message === 'string') return short(`jsonrpc ${c.code}: ${c.message}`)
    }
    return short((e && (e.shortMessage || e.message)) || String(e))
}

async function main() {
    if ((RUNTIME.length - 2) / 2 !== 0x2e) throw new Error(`runtime is ${(RUNTIME.length - 2) / 2} bytes, init code says 46`)
    const rpcUrl = process.env.RPC_URL
    if (!rpcUrl) throw new Error('RPC_URL is not set')
    const accounts = JSON.parse(fs.readFileSync(process.env.ACCOUNTS_FILE || process.env.LOCALNET_ACCOUNTS, 'utf8'))
    const chainId = BigInt(num('CHAIN_ID', num('LOCALNET_CHAIN_ID', 1337)))
    const deployerIndex = num('DEPLOYER', 18)
    const durationMs = num('DURATION_S', 20) * 1000
    const paceMs = num('PACE_MS', 100)
    const addressFile = process.env.ADDRESS_FILE || ''
    if (!accounts[deployerIndex]) throw new Error(`no account #${deployerIndex} in the accounts file`)

    const conn = new FetchRequest(rpcUrl)
    conn.timeout = num('REQUEST_TIMEOUT_MS', 10000)
    const network = Network.from(chainId)
    const provider = new JsonRpcProvider(conn, network, { batchMaxCount: 1, staticNetwork: network })
    const send = (method, params) => provider.send(method, params)
    const wallet = new Wallet(accounts[deployerIndex].privateKey, provider)
    const from = wallet.address

    let stopped = false
    const out = { contract: null, deploy_tx: null, deploy_block: null, sent: [], sent_counters: [], errors: [], counters: 0, topic0: TOPIC0 }
    const finish = code => {
        provider.destroy()
        out.counters = out.sent.length
        process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code))
    }
    const onSignal = () => {
        stopped = true
        if (!out.contract) finish(0) // still deploying: print what we have now
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)

    const gasPrice = BigInt(await send('klay_gasPrice', []))

    // 1. deploy (legacy contract creation) and wait for the receipt
    const nonce0 = Number(await send('klay_getTransactionCount', [from, 'pending']))
    const rawDeploy = await wallet.signTransaction({ type: 0, nonce: nonce0, gasPrice, gasLimit: 200000, chainId, data: BYTECODE, value: 0n })
    const deployHash = await send('eth_sendRawTransaction', [rawDeploy])
    out.deploy_tx = deployHash
    log(`deploy tx ${deployHash} from #${deployerIndex} ${from} nonce ${nonce0}`)
    let receipt = null
    for (const until = Date.now() + 60000; !receipt && Date.now() < until && !stopped;) {
        receipt = await send('klay_getTransactionReceipt', [deployHash]).catch(() => null)
        if (!receipt) await sleep(250)
    }
    if (!receipt) throw new Error(`no receipt for the deploy tx ${deployHash}`)
    if (Number(receipt.status) !== 1 || !receipt.contractAddress) {
        throw new Error(`deploy failed: status ${receipt.status}, txError ${receipt.txError}, contractAddress ${receipt.contractAddress}`)
    }
    out.contract = receipt.contractAddress
    out.deploy_block = Number(receipt.blockNumber)
    console.error(`contract ${out.contract}`)
    if (addressFile) {
        const tmp = path.join(path.dirname(addressFile), `.${path.basename(addressFile)}.${process.pid}.tmp`)
        fs.writeFileSync(tmp, out.contract + '\n')
        fs.renameSync(tmp, addressFile)
    }
    const code = await send('klay_getCode', [out.contract, 'latest'])
    if (String(code).toLowerCase() !== RUNTIME) log(`WARNING: deployed code ${code} is not the runtime ${RUNTIME}`)

    // 2. call it with counter 1, 2, ... until the deadline
    const deadline = Date.now() + durationMs
    for (let counter = 1; !stopped && Date.now() < deadline; counter++) {
        let step = 'klay_getTransactionCount'
        let nonce = null
        try {
            nonce = Number(await send('klay_getTransactionCount', [from, 'pending']))
            step = 'sign'
            const data = zeroPadValue(toBeHex(counter), 32)
            const raw = await wallet.signTransaction({ type: 0, to: out.contract, nonce, gasPrice, gasLimit: 60000, chainId, data, value: 0n })
            const hash = keccak256(raw)
            step = 'eth_sendRawTransaction'
            const got = await send('eth_sendRawTransaction', [raw])
            if (typeof got !== 'string' || got.toLowerCase() !== hash) throw new Error(`answered ${JSON.stringify(got)}, the tx hash is ${hash}`)
            out.sent.push(hash)
            out.sent_counters.push(counter)
        } catch (e) {
            out.errors.push({ step, counter, nonce, message: describe(e) })
            await sleep(100)
        }
        if (paceMs > 0) await sleep(paceMs)
    }
    log(`sent ${out.sent.length} calls, ${out.errors.length} errors`)
    finish(0)
}

main().catch(e => {
    console.error('emitter: setup error:', e)
    process.exit(1)
})
