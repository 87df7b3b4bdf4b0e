// A tiny HTTP server that logs exactly what a client sends (one JSON line per request: socket number, method,
// path, HTTP version, raw headers in order, body) and answers JSON-RPC with canned results. Used to find out
// what node_api.js (caver-js-ext-kas) puts on the wire; see examples/README.md.
//
//   PORT=18999 node wire_log.js &
//   ACCESS_KEY_ID=id SECRET_ACCESS_KEY=secret ACCOUNTS_FILE=.localnet/accounts.json node node_api.js http://127.0.0.1:18999 1337
//
// STATUS=401|403|429 answers every request with that status and a body chosen by BODY:
//   kas (KAS's {"code":1010009,"message":…}), rpcerror (JSON-RPC error, the request's id), rpcerror-null-id,
//   text, html, empty, result (a valid JSON-RPC result: shows the SDK ignores the status).
const http = require('http')
const Caver = require('caver-js')

const port = Number(process.env.PORT || 18999)
const status = Number(process.env.STATUS || 200)
const bodyKind = process.env.BODY || 'kas'
const caver = new Caver()
let sockets = 0

const canned = {
    klay_blockNumber: () => '0x2a',
    klay_chainID: () => '0x539',
    klay_gasPrice: () => '0xba43b7400',
    klay_getTransactionCount: () => '0x0',
    klay_getBalance: () => '0xde0b6b3a7640000',
    klay_getBlockByNumber: p => ({ number: p[0], hash: `0x${'ab'.repeat(32)}`, parentHash: `0x${'cd'.repeat(32)}`, timestamp: '0x5f5e100', transactions: [] }),
    klay_sendRawTransaction: p => caver.transaction.decode(p[0]).getTransactionHash(),
    klay_getTransactionReceipt: p => ({ transactionHash: p[0], blockNumber: '0x2b', blockHash: `0x${'ef'.repeat(32)}`, status: '0x1', gasUsed: '0x5208', logs: [], contractAddress: null }),
}

function refusal(id) {
    const json = v => [JSON.stringify(v), 'application/json']
    switch (bodyKind) {
        case 'kas': return json({ code: 1010009, message: 'The credential you provided does not match in our record' })
        case 'rpcerror': return json({ jsonrpc: '2.0', id, error: { code: -32001, message: 'unauthorized: invalid access key' } })
        case 'rpcerror-null-id': return json({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'unauthorized: invalid access key' } })
        case 'result': return json({ jsonrpc: '2.0', id, result: '0x2a' })
        case 'text': return ['Unauthorized', 'text/plain']
        case 'html': return ['<html><body><h1>401 Authorization Required</h1></body></html>', 'text/html']
        case 'empty': return ['', null]
        default: throw new Error(`unknown BODY ${bodyKind}`)
    }
}

const answer = r => {
    const f = canned[r.method]
    return { jsonrpc: '2.0', id: r.id, result: f ? f(r.params || []) : null }
}

http.createServer((req, res) => {
    if (!req.socket.kid) req.socket.kid = ++sockets
    let body = ''
    req.on('data', c => (body += c))
    req.on('end', () => {
        console.log(JSON.stringify({ socket: req.socket.kid, method: req.method, url: req.url, httpVersion: req.httpVersion, headers: req.rawHeaders, body }))
        let parsed
        try {
            parsed = JSON.parse(body)
        } catch (e) {
            res.writeHead(400)
            return res.end()
        }
        if (status !== 200) {
            const [text, type] = refusal(Array.isArray(parsed) ? null : parsed.id)
            res.writeHead(status, type ? { 'content-type': type } : {})
            return res.end(text)
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(Array.isArray(parsed) ? parsed.map(answer) : answer(parsed)))
    })
}).listen(port, '127.0.0.1', () => console.error(`wire_log: listening on http://127.0.0.1:${port} (status ${status})`))
