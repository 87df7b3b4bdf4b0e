// caver-js BApp smoke test: chain id, balance, a signed value transfer and a contract deploy + call.
// Env: RPC_URL (required), CHAIN_ID, ACCOUNTS_FILE, ACCOUNT_INDEX (default 0).
const fs = require('fs')
const Caver = require('caver-js')

// Counter.sol (solc 0.8.19, evmVersion istanbul, optimizer 200 runs), compiled offline:
//   contract Counter { uint256 public value; constructor(uint256 initial) { value = initial; }
//                      function set(uint256 v) external { value = v; } }
const COUNTER_ABI = [
    { inputs: [{ internalType: 'uint256', name: 'initial', type: 'uint256' }], stateMutability: 'nonpayable', type: 'constructor' },
    { inputs: [{ internalType: 'uint256', name: 'v', type: 'uint256' }], name: 'set', outputs: [], stateMutability: 'nonpayable', type: 'function' },
    { inputs: [], name: 'value', outputs: [{ internalType: 'uint256', name: '', type: 'uint256' }], stateMutability: 'view', type: 'function' },
]
const COUNTER_BYTECODE =
    '0x608060405234801561001057600080fd5b5060405161010f38038061010f83398101604081905261002f91610037565b600055610050565b6000602082840312156100' +
    '4957600080fd5b5051919050565b60b18061005e6000396000f3fe6080604052348015600f57600080fd5b506004361060325760003560e01c80633fa4f24514603757' +
    '806360fe47b1146051575b600080fd5b603f60005481565b60405190815260200160405180910390f35b6061605c3660046063565b600055565b005b60006020828403' +
    '1215607457600080fd5b503591905056fea264697066735822122050b14cf9ed524b642478552a6e8e29639fad4bd0a6641f2c5acf91decfff10d064736f6c63430008130033'

const RECEIPT_TIMEOUT_MS = 60000

function env(name, fallback) {
    const v = process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

function withTimeout(promise, what) {
    let timer
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${RECEIPT_TIMEOUT_MS / 1000}s waiting for ${what}`)), RECEIPT_TIMEOUT_MS)
    })
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function checkReceipt(receipt, what) {
    if (!receipt) throw new Error(`${what}: no receipt`)
    if (receipt.status !== true && receipt.status !== '0x1') {
        throw new Error(`${what}: receipt status ${receipt.status} (txError ${receipt.txError}) in block ${receipt.blockNumber}`)
    }
    console.log(`${what}: mined in block ${parseInt(receipt.blockNumber)} (gas used ${parseInt(receipt.gasUsed)})`)
}

async function main() {
    const rpcUrl = env('RPC_URL')
    const expectedChainId = Number(env('CHAIN_ID', process.env.LOCALNET_CHAIN_ID))
    const accounts = JSON.parse(fs.readFileSync(env('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS), 'utf8'))
    const index = Number(env('ACCOUNT_INDEX', '0'))
    if (!accounts[index]) throw new Error(`no test account #${index} in the accounts file`)

    const caver = new Caver(rpcUrl)
    const sender = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(accounts[index].privateKey))
    console.log(`rpc ${rpcUrl}, sender #${index} ${sender.address}`)

    // 1. chain id (klay_chainID)
    const chainId = Number(await caver.rpc.klay.getChainId())
    if (chainId !== expectedChainId) throw new Error(`chain id ${chainId}, expected ${expectedChainId}`)
    console.log(`chain id: ${chainId}`)

    // 2. balance (klay_getBalance, "latest")
    const balance = caver.utils.toBN(await caver.rpc.klay.getBalance(sender.address))
    if (balance.isZero()) throw new Error(`sender ${sender.address} has no KLAY`)
    console.log(`balance: ${caver.utils.convertFromPeb(balance, 'KLAY')} KLAY`)

    // 3. value transfer (type 0x08) to a fresh address, signed by the keyring, sent raw
    const recipient = caver.wallet.keyring.generate().address
    const value = caver.utils.toPeb('0.01', 'KLAY')
    const vt = caver.transaction.valueTransfer.create({ from: sender.address, to: recipient, value, gas: 25000 })
    await caver.wallet.sign(sender.address, vt) // fills nonce, gasPrice and chainId from the node
    console.log(`value transfer: nonce ${parseInt(vt.nonce)}, gas price ${parseInt(vt.gasPrice)}, hash ${vt.getTransactionHash()}`)
    const receipt = await withTimeout(caver.rpc.klay.sendRawTransaction(vt), 'the value transfer receipt')
    checkReceipt(receipt, 'value transfer')
    const got = caver.utils.toBN(await caver.rpc.klay.getBalance(recipient))
    if (!got.eq(caver.utils.toBN(value))) throw new Error(`recipient balance ${got}, expected ${value}`)
    console.log(`recipient ${recipient} balance: ${caver.utils.convertFromPeb(got, 'KLAY')} KLAY`)

    // 4. deploy Counter (SmartContractDeploy, type 0x28) and read it back (klay_call)
    const initial = Math.floor(Math.random() * 1e9)
    const deploy = caver.transaction.smartContractDeploy.create({
        from: sender.address,
        input: caver.abi.encodeContractDeploy(COUNTER_ABI, COUNTER_BYTECODE, initial),
        gas: 1000000,
    })
    await caver.wallet.sign(sender.address, deploy)
    const deployReceipt = await withTimeout(caver.rpc.klay.sendRawTransaction(deploy), 'the contract deploy receipt')
    checkReceipt(deployReceipt, 'contract deploy')
    const counter = caver.contract.create(COUNTER_ABI, deployReceipt.contractAddress)
    console.log(`contract deployed at ${counter.options.address}`)

    const stored = await counter.call('value')
    if (String(stored) !== String(initial)) throw new Error(`Counter.value() returned ${stored}, expected ${initial}`)
    console.log(`contract call: value() = ${stored}`)
}

main().then(
    () => {
        console.log('caver-js: OK')
        process.exit(0)
    },
    err => {
        console.error(`caver-js: FAILED: ${err && err.message ? err.message : err}`)
        process.exit(1)
    }
)
