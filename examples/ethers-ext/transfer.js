// @kaiachain/ethers-ext (ethers v6) BApp smoke test: chain id, balance, a Klaytn value transfer, a contract
// deploy + call, and a fee-delegated value transfer (sender signs, fee payer signs and sends).
// Env: RPC_URL (required), CHAIN_ID, ACCOUNTS_FILE, ACCOUNT_INDEX (default 1), FEE_PAYER_INDEX (default 2).
const fs = require('fs')
const { ethers } = require('ethers')
const { Wallet, JsonRpcProvider, TxType, parseKaia, formatKaia } = require('@kaiachain/ethers-ext/v6')

// Counter.sol (solc 0.8.19, evmVersion istanbul, optimizer 200 runs), compiled offline:
//   contract Counter { uint256 public value; constructor(uint256 initial) { value = initial; }
//                      function set(uint256 v) external { value = v; } }
const COUNTER_ABI = [
    'constructor(uint256 initial)',
    'function set(uint256 v)',
    'function value() view returns (uint256)',
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

// Poll eth_getTransactionReceipt once a second until the tx is mined; fail on status 0 or after 60 s.
async function waitForReceipt(provider, hash, what) {
    const deadline = Date.now() + RECEIPT_TIMEOUT_MS
    for (;;) {
        const receipt = await provider.getTransactionReceipt(hash)
        if (receipt) {
            if (receipt.status !== 1) throw new Error(`${what}: receipt status ${receipt.status} in block ${receipt.blockNumber}`)
            console.log(`${what}: mined in block ${receipt.blockNumber} (gas used ${receipt.gasUsed})`)
            return receipt
        }
        if (Date.now() > deadline) throw new Error(`${what}: timed out after ${RECEIPT_TIMEOUT_MS / 1000}s waiting for receipt of ${hash}`)
        await new Promise(resolve => setTimeout(resolve, 1000))
    }
}

async function expectBalance(provider, address, expected) {
    const got = await provider.getBalance(address)
    if (got !== expected) throw new Error(`balance of ${address} is ${got}, expected ${expected}`)
    console.log(`recipient ${address} balance: ${formatKaia(got)} KLAY`)
}

async function main() {
    const rpcUrl = env('RPC_URL')
    const expectedChainId = BigInt(env('CHAIN_ID', process.env.LOCALNET_CHAIN_ID))
    const accounts = JSON.parse(fs.readFileSync(env('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS), 'utf8'))
    const senderIndex = Number(env('ACCOUNT_INDEX', '1'))
    const feePayerIndex = Number(env('FEE_PAYER_INDEX', '2'))
    for (const i of [senderIndex, feePayerIndex]) if (!accounts[i]) throw new Error(`no test account #${i} in the accounts file`)

    const provider = new JsonRpcProvider(rpcUrl)
    const sender = new Wallet(accounts[senderIndex].privateKey, provider)
    const feePayer = new Wallet(accounts[feePayerIndex].privateKey, provider)
    console.log(`rpc ${rpcUrl}, sender #${senderIndex} ${sender.address}, fee payer #${feePayerIndex} ${feePayer.address}`)

    // 1. chain id (eth_chainId)
    const { chainId } = await provider.getNetwork()
    if (chainId !== expectedChainId) throw new Error(`chain id ${chainId}, expected ${expectedChainId}`)
    console.log(`chain id: ${chainId}`)

    // 2. balance (eth_getBalance, "latest")
    const balance = await provider.getBalance(sender.address)
    if (balance === 0n) throw new Error(`sender ${sender.address} has no KLAY`)
    console.log(`balance: ${formatKaia(balance)} KLAY`)

    // 3. Klaytn value transfer (type 0x08) to a fresh address, sent with klay_sendRawTransaction
    const recipient = ethers.Wallet.createRandom().address
    const value = parseKaia('0.01')
    const sent = await sender.sendTransaction({ type: TxType.ValueTransfer, to: recipient, value, gasLimit: 25000 })
    console.log(`value transfer: nonce ${sent.nonce}, hash ${sent.hash}`)
    await waitForReceipt(provider, sent.hash, 'value transfer')
    await expectBalance(provider, recipient, value)

    // 4. deploy Counter (SmartContractDeploy, type 0x28) and read it back (eth_call)
    const initial = BigInt(Math.floor(Math.random() * 1e9))
    const factory = new ethers.ContractFactory(COUNTER_ABI, COUNTER_BYTECODE)
    const { data } = await factory.getDeployTransaction(initial)
    const deploy = await sender.sendTransaction({
        type: TxType.SmartContractDeploy,
        to: ethers.ZeroAddress,
        value: 0,
        data,
        humanReadable: false,
        codeFormat: 0,
        gasLimit: 1000000,
    })
    const deployReceipt = await waitForReceipt(provider, deploy.hash, 'contract deploy')
    if (!deployReceipt.contractAddress) throw new Error('contract deploy: receipt has no contractAddress')
    console.log(`contract deployed at ${deployReceipt.contractAddress}`)
    const counter = new ethers.Contract(deployReceipt.contractAddress, COUNTER_ABI, provider)
    const stored = await counter.value()
    if (stored !== initial) throw new Error(`Counter.value() returned ${stored}, expected ${initial}`)
    console.log(`contract call: value() = ${stored}`)

    // 5. fee-delegated value transfer (type 0x09): the sender signs, the fee payer signs and sends
    const fdRecipient = ethers.Wallet.createRandom().address
    const fdTx = await sender.populateTransaction({ type: TxType.FeeDelegatedValueTransfer, to: fdRecipient, value, gasLimit: 50000 })
    const senderSigned = await sender.signTransaction(fdTx)
    const fdSent = await feePayer.sendTransactionAsFeePayer(senderSigned)
    console.log(`fee-delegated transfer: hash ${fdSent.hash}`)
    await waitForReceipt(provider, fdSent.hash, 'fee-delegated transfer')
    const klayReceipt = await provider.send('klay_getTransactionReceipt', [fdSent.hash])
    if (!klayReceipt || String(klayReceipt.feePayer).toLowerCase() !== feePayer.address.toLowerCase()) {
        throw new Error(`fee-delegated transfer: klay receipt feePayer ${klayReceipt && klayReceipt.feePayer}, expected ${feePayer.address}`)
    }
    console.log(`fee-delegated transfer: fee paid by ${klayReceipt.feePayer}`)
    await expectBalance(provider, fdRecipient, value)
}

main().then(
    () => {
        console.log('ethers-ext: OK')
        process.exit(0)
    },
    err => {
        console.error(`ethers-ext: FAILED: ${err && err.message ? err.message : err}`)
        process.exit(1)
    }
)
