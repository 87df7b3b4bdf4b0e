// The page's program: what a BApp in a browser tab does against kengate, cross-origin.
// Over HTTP (@kaiachain/ethers-ext's JsonRpcProvider and Wallet, i.e. fetch() with a CORS preflight):
// the chain id, the block number, that block, the sender's balance, a Klaytn value transfer (0x08) and its
// receipt, the recipient's balance. Over WebSocket (ethers' WebSocketProvider on a WebSocket the page
// opens): the block number and one newHeads block. The outcome goes to window.result (and the <pre>);
// a step that fails stops its half and leaves its error in http_error / ws_error, worded as the page saw
// it (a refused cross-origin fetch is "TypeError: Failed to fetch"; the browser tells a page nothing more).
'use strict'

const C = window.CONFIG
const t0 = performance.now()
const result = { ok: false, origin: location.origin, rpc_url: C.rpcUrl, ws_url: C.wsUrl, steps: [] }

// ethers cancels the eth_unsubscribe it sends for a finished `once` listener when the provider is
// destroyed right after, and leaves that rejection unhandled: not a failure.
window.addEventListener('unhandledrejection', ev => {
    const e = ev.reason
    if (e && e.code === 'UNSUPPORTED_OPERATION' && /provider destroyed/.test(e.message)) ev.preventDefault()
})

function done(what, detail) {
    result.steps.push(what)
    console.log(`[page] ${what}${detail === undefined ? '' : `: ${detail}`}`)
}

// The error as the page sees it; ethers reports a failed bootstrap as an 'error' event wrapping the cause.
function errText(e) {
    if (e && e.info && e.info.error) e = e.info.error
    if (e instanceof Error) return `${e.name}: ${e.shortMessage || e.message}`
    return String(e)
}

// `promise`, or a rejection after `ms` or when one of `failures` rejects first.
function deadline(promise, ms, what, failures) {
    let timer
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    })
    return Promise.race([promise, timeout, ...failures]).finally(() => clearTimeout(timer))
}

async function overHttp() {
    const { JsonRpcProvider, Wallet, TxType, parseKaia } = window.ethers_ext
    const provider = new JsonRpcProvider(C.rpcUrl)
    // A JsonRpcProvider that cannot reach its URL retries the chain id forever and only emits 'error'.
    const failed = new Promise((_, reject) => provider.on('error', reject))
    failed.catch(() => {})
    const call = (p, what, ms = 15000) => deadline(p, ms, what, [failed])
    try {
        const { chainId } = await call(provider.getNetwork(), 'eth_chainId')
        if (chainId !== BigInt(C.chainId)) throw new Error(`chain id ${chainId}, expected ${C.chainId}`)
        result.chain_id = Number(chainId)
        done('chain id', chainId)

        const n = await call(provider.getBlockNumber(), 'eth_blockNumber')
        if (!(n > 0)) throw new Error(`block number ${n}`)
        result.block_number = n
        done('block number', n)

        const block = await call(provider.getBlock(n), 'eth_getBlockByNumber')
        if (!block || block.number !== n || !block.hash) throw new Error(`block ${n}: ${JSON.stringify(block)}`)
        result.block = {
            number: block.number,
            hash: block.hash,
            parent_hash: block.parentHash,
            timestamp: block.timestamp,
            transactions: block.transactions.length,
        }
        done('block', `${block.number} ${block.hash}`)

        const sender = new Wallet(C.privateKey, provider)
        if (sender.address.toLowerCase() !== C.address.toLowerCase()) throw new Error(`key is not ${C.address}'s`)
        const balance = await call(provider.getBalance(sender.address), 'eth_getBalance')
        if (balance === 0n) throw new Error(`sender ${sender.address} has no KLAY`)
        result.sender = sender.address
        result.balance = balance.toString()
        done('balance', `${sender.address} ${balance}`)

        // A Klaytn value transfer (type 0x08), signed in the page, sent with klay_sendRawTransaction.
        const recipient = window.ethers.Wallet.createRandom().address
        const value = parseKaia('0.001')
        const sent = await call(
            sender.sendTransaction({ type: TxType.ValueTransfer, to: recipient, value, gasLimit: 25000 }),
            'value transfer',
            30000,
        )
        result.tx = { hash: sent.hash, nonce: sent.nonce, to: recipient, value: value.toString() }
        done('sent', `${sent.hash} (nonce ${sent.nonce})`)

        const receiptDeadline = Date.now() + 60000
        let receipt
        while (!(receipt = await call(provider.getTransactionReceipt(sent.hash), 'eth_getTransactionReceipt'))) {
            if (Date.now() > receiptDeadline) throw new Error(`no receipt for ${sent.hash} within 60 s`)
            await new Promise(resolve => setTimeout(resolve, 500))
        }
        result.tx.block_number = receipt.blockNumber
        result.tx.status = receipt.status
        if (receipt.status !== 1) throw new Error(`receipt status ${receipt.status} in block ${receipt.blockNumber}`)
        done('mined', `block ${receipt.blockNumber}`)

        const got = await call(provider.getBalance(recipient), 'eth_getBalance (recipient)')
        result.recipient_balance = got.toString()
        if (got !== value) throw new Error(`recipient balance ${got}, expected ${value}`)
        done('recipient balance', got)
    } catch (e) {
        result.http_error = errText(e)
        console.log(`[page] HTTP failed: ${result.http_error}`)
    } finally {
        provider.destroy()
    }
}

async function overWs() {
    let socket, provider
    try {
        // The page opens the socket itself to see it fail: ethers' WebSocketProvider has no error path
        // before the socket opens (its calls would wait forever).
        socket = new WebSocket(C.wsUrl)
        provider = new window.ethers.WebSocketProvider(socket, Number(C.chainId))
        let sawError = false
        socket.addEventListener('error', () => {
            sawError = true
        })
        const closed = new Promise((_, reject) =>
            socket.addEventListener('close', ev =>
                reject(new Error(`WebSocket ${result.ws_opened ? 'closed' : 'failed before opening'}: ` +
                    `${sawError ? 'error event, then ' : ''}close code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`)),
            ),
        )
        closed.catch(() => {})
        const opened = new Promise(resolve => socket.addEventListener('open', resolve))
        await deadline(opened, 10000, 'WebSocket open', [closed])
        result.ws_opened = true
        done('WebSocket open', C.wsUrl)

        const n = await deadline(provider.getBlockNumber(), 15000, 'eth_blockNumber over WebSocket', [closed])
        if (!(n > 0)) throw new Error(`block number ${n} over WebSocket`)
        result.ws_block_number = n
        done('block number over WebSocket', n)

        // eth_subscribe newHeads: the next block.
        const head = await deadline(
            new Promise(resolve => provider.once('block', resolve)),
            20000,
            'a newHeads block over WebSocket',
            [closed],
        )
        result.ws_new_head = head
        done('newHeads block over WebSocket', head)
    } catch (e) {
        result.ws_error = errText(e)
        console.log(`[page] WebSocket failed: ${result.ws_error}`)
    } finally {
        if (provider) await provider.destroy()
    }
}

;(async () => {
    try {
        await overHttp()
        await overWs()
        result.ok = !result.http_error && !result.ws_error
    } catch (e) {
        result.error = errText(e)
    }
    result.elapsed_ms = Math.round(performance.now() - t0)
    document.getElementById('outcome').textContent = JSON.stringify(result, null, 2)
    window.result = result
})()
