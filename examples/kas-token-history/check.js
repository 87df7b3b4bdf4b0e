// check.js: reads back, through kengate, what make.js did (expected.json) — with the KAS SDK a BApp uses
// (caver-js-ext-kas 1.12.0: caver.initTokenHistoryAPI(chainId, accessKeyId, secretAccessKey, KENGATE_URL), then every
// caver.kas.tokenHistory method), kengate's presets (POST/GET/PUT/DELETE /v2/preset, plain fetch with the same Basic
// auth and x-chain-id) and the Etherscan-compatible API (/api?module=account&action=txlist|tokentx|tokennfttx|
// token1155tx|txlistinternal) — and compares every answer with expected.json: item sets (no item missing, none extra, none twice
// across pages), order (newest first), every field of KAS's shapes (hex amounts and ids, lower-case addresses,
// timestamps, fees, fee payers, types, statuses), balances and owners equal to the balanceOf/ownerOf make.js read.
// Paged methods are called with a small `size` (PAGE_SIZE, default 3) and followed cursor by cursor until "".
// Each block an answer names is read back at once through kengate (klay_getBlockByNumber): it must be there, with
// the hash make.js saw and the tx in it.
//
// Env: KENGATE_URL (required: kengate's base URL, e.g. http://127.0.0.1:8545), CHAIN_ID (required), ACCESS_KEY_ID and
//      SECRET_ACCESS_KEY (a kengate access key allowed kas_tokenHistory and kas_preset), EXPECTED (default
//      ./expected.json), RPC_URL (JSON-RPC for the block reads; default KENGATE_URL with the same Basic auth and
//      x-chain-id), PAGE_SIZE (default 3), VERBOSE=1 (print every check).
// Output: a line per failure ("FAIL method: what: got …, want …"), a pass/fail line per method, NOTE lines for what
//         the spec leaves open, and last "kas: N passed, M failed"; exit 1 on any failure.
'use strict'
const fs = require('fs')
const path = require('path')
const util = require('util')
const CaverExtKAS = require('caver-js-ext-kas')

function env(name, fallback) {
    const v = process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

const ZERO = '0x0000000000000000000000000000000000000000'
const hexq = n => '0x' + BigInt(n).toString(16)
const show = v => util.inspect(v, { depth: 6, breakLength: Infinity, maxArrayLength: 20, maxStringLength: 200 })

// Tokens' decimal amount as KAS's formattedValue: "1.5", "1000", "0.00000000000000035".
function formatUnits(value, decimals) {
    const v = BigInt(value)
    const base = 10n ** BigInt(decimals)
    const int = v / base
    let frac = (v % base).toString().padStart(decimals, '0').replace(/0+$/, '')
    return frac ? `${int}.${frac}` : `${int}`
}

// ---- the tally ---------------------------------------------------------------------------------------------

const tally = new Map() // method -> {passed, failed}
const notes = []
let VERBOSE = false
function count(method, ok) {
    const t = tally.get(method) || { passed: 0, failed: 0 }
    if (ok) t.passed++
    else t.failed++
    tally.set(method, t)
}
function pass(method, what) {
    count(method, true)
    if (VERBOSE) console.log(`ok   ${method}: ${what}`)
}
function fail(method, what, detail) {
    count(method, false)
    console.log(`FAIL ${method}: ${what}: ${detail}`)
}
function note(method, what) {
    const line = `NOTE ${method}: ${what}`
    if (!notes.includes(line)) notes.push(line)
}

// One of several acceptable values (where the spec leaves a field open); `why` goes to the notes.
class AnyOf {
    constructor(values, why) {
        this.values = values
        this.why = why
    }
}
// A number within [lo, hi].
class Between {
    constructor(lo, hi) {
        this.lo = lo
        this.hi = hi
    }
}

// Differences between `got` and `want` (fields of `want` only; keys starting with _ are metadata).
function diff(got, want, at = '') {
    if (want instanceof AnyOf) {
        const hit = want.values.find(v => diff(got, v, at).length === 0)
        if (hit === undefined) return [`${at || '.'}: got ${show(got)}, want one of ${show(want.values)}`]
        return []
    }
    if (want instanceof Between) {
        if (typeof got !== 'number' || got < want.lo || got > want.hi) return [`${at || '.'}: got ${show(got)}, want a number in [${want.lo}, ${want.hi}]`]
        return []
    }
    if (Array.isArray(want)) {
        if (!Array.isArray(got)) return [`${at || '.'}: got ${show(got)}, want ${show(want)}`]
        if (got.length !== want.length) return [`${at || '.'}: got ${show(got)}, want ${show(want)}`]
        return want.flatMap((w, i) => diff(got[i], w, `${at}[${i}]`))
    }
    if (want !== null && typeof want === 'object') {
        if (got === null || typeof got !== 'object') return [`${at || '.'}: got ${show(got)}, want an object ${show(strip(want))}`]
        return Object.keys(want)
            .filter(k => !k.startsWith('_'))
            .flatMap(k => (Object.prototype.hasOwnProperty.call(got, k) || want[k] === undefined ? diff(got[k], want[k], `${at}.${k}`) : [`${at}.${k}: missing, want ${show(strip(want[k]))}`]))
    }
    if (got !== want) return [`${at || '.'}: got ${show(got)}, want ${show(want)}`]
    return []
}
function strip(v) {
    if (v instanceof AnyOf) return `one of ${show(v.values)}`
    if (v instanceof Between) return `in [${v.lo}, ${v.hi}]`
    if (Array.isArray(v)) return v.map(strip)
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => !k.startsWith('_')).map(([k, x]) => [k, strip(x)]))
    return v
}
// A plain object from the SDK's model instances (getters over _fields).
function plain(v) {
    if (Array.isArray(v)) return v.map(plain)
    if (v !== null && typeof v === 'object') {
        const o = {}
        for (const k of Object.keys(v)) o[k.startsWith('_') ? k.slice(1) : k] = plain(v[k])
        return o
    }
    return v
}
function check(method, what, got, want) {
    const d = diff(got, want)
    if (d.length === 0) pass(method, what)
    else fail(method, what, d.slice(0, 6).join('; ') + (d.length > 6 ? ` (+${d.length - 6} more)` : ''))
    if (want instanceof AnyOf && d.length === 0 && want.why) note(method, `${want.why}: kengate answers ${show(got)}`)
    return d.length === 0
}

// ---- main --------------------------------------------------------------------------------------------------

async function main() {
    const KENGATE_URL = env('KENGATE_URL').replace(/\/+$/, '')
    const CHAIN_ID = Number(env('CHAIN_ID'))
    const KEY_ID = env('ACCESS_KEY_ID')
    const SECRET = env('SECRET_ACCESS_KEY')
    const E = JSON.parse(fs.readFileSync(path.resolve(env('EXPECTED', path.join(__dirname, 'expected.json'))), 'utf8'))
    const PAGE = Number(env('PAGE_SIZE', '3'))
    VERBOSE = process.env.VERBOSE === '1'
    const AUTH = 'Basic ' + Buffer.from(`${KEY_ID}:${SECRET}`).toString('base64')
    const HEADERS = { authorization: AUTH, 'x-chain-id': String(CHAIN_ID) }
    const RPC_URL = process.env.RPC_URL || KENGATE_URL
    if (E.chain_id !== CHAIN_ID) throw new Error(`expected.json is for chain ${E.chain_id}, CHAIN_ID is ${CHAIN_ID}`)

    const caver = new CaverExtKAS()
    caver.initTokenHistoryAPI(CHAIN_ID, KEY_ID, SECRET, KENGATE_URL)
    console.log(`check: ${KENGATE_URL} (chain ${CHAIN_ID}, key ${KEY_ID}), expected.json: ${E.txs.length} txs in blocks ${E.first_block}..${E.last_block}`)

    // ---- plain HTTP and JSON-RPC ----
    async function http(method, url, body, headers = HEADERS) {
        const res = await fetch(url, {
            method,
            headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
            body: body === undefined ? undefined : JSON.stringify(body),
        })
        const text = await res.text()
        let json
        try {
            json = text ? JSON.parse(text) : null
        } catch (e) {
            json = undefined
        }
        return { status: res.status, json, text }
    }
    let rpcId = 0
    async function rpc(method, params) {
        const r = await http('POST', RPC_URL, { jsonrpc: '2.0', id: ++rpcId, method, params })
        if (!r.json || r.json.error) throw new Error(`${method}: HTTP ${r.status} ${r.text.slice(0, 200)}`)
        return r.json.result
    }

    // ---- blocks named by answers: readable through kengate at once ----
    const txByHash = new Map(E.txs.map(t => [t.hash, t]))
    const blockSeen = new Map() // number -> block
    async function blocksReadable(method, items) {
        const want = new Map() // number -> [tx hashes]
        for (const it of items) {
            const n = it && (it.blockNumber ?? (it.transaction && it.transaction.blockNumber))
            const h = it && (it.transactionHash ?? (it.transaction && it.transaction.transactionHash))
            if (typeof n !== 'number') continue
            if (!want.has(n)) want.set(n, [])
            if (h) want.get(n).push(h)
        }
        for (const [n, hashes] of want) {
            let b = blockSeen.get(n)
            if (!b) {
                b = await rpc('klay_getBlockByNumber', [hexq(n), false])
                if (b) blockSeen.set(n, b)
            }
            if (!b) {
                fail('klay_getBlockByNumber', `block ${n} named by ${method}`, 'null through kengate (an answer above what kengate serves)')
                continue
            }
            const ours = hashes.map(h => txByHash.get(h)).filter(Boolean)
            const bad = ours.filter(t => b.hash !== t.block_hash || !b.transactions.includes(t.hash))
            if (bad.length) fail('klay_getBlockByNumber', `block ${n} named by ${method}`, `hash ${b.hash}, txs ${show(b.transactions)}; expected.json: ${show(bad.map(t => [t.block_hash, t.hash]))}`)
            else pass('klay_getBlockByNumber', `block ${n} named by ${method} readable`)
        }
    }

    // ---- calling the SDK ----
    // Every tokenHistory method takes a callback last, called with the HTTP response: the checks read the JSON the
    // SDK was given (its models coerce types: a "3" would become 3), and the SDK's own result must be there too.
    let response
    const th = new Proxy(caver.kas.tokenHistory, {
        get(target, prop) {
            const v = target[prop]
            if (typeof v !== 'function') return v
            return (...args) => v.call(target, ...args, (err, data, res) => { response = res })
        },
    })
    async function sdk(method, fn) {
        response = undefined
        let data
        try {
            data = await fn()
        } catch (e) {
            const body = response && response.body && typeof response.body === 'object' ? response.body : {}
            const err = e && typeof e === 'object' && e.code !== undefined ? { code: e.code, message: e.message } : { message: String(e && e.message ? e.message : e) }
            return { error: { status: response ? response.status : undefined, ...err, ...body } }
        }
        if (!response || response.status !== 200) return { error: { status: response && response.status, message: `HTTP ${response && response.status}`, body: response && response.body } }
        if (data === null || data === undefined) return { error: { status: response.status, message: 'the SDK returned nothing', body: response.body } }
        return { data: response.body }
    }
    // Follows cursors until "": every item once; the pages' items in order.
    async function allPages(method, what, call, keyOf, size = PAGE) {
        const items = []
        const seen = new Set()
        let cursor
        let pages = 0
        for (;;) {
            const r = await sdk(method, () => call(cursor === undefined ? { size } : { size, cursor }))
            pages++
            if (r.error) {
                fail(method, `${what}: page ${pages}`, `error ${show(r.error)}`)
                return null
            }
            const page = r.data
            if (!page || !Array.isArray(page.items)) {
                fail(method, `${what}: page ${pages}`, `no items array: ${show(page)}`)
                return null
            }
            if (page.items.length > size) fail(method, `${what}: page ${pages}`, `${page.items.length} items for size ${size}`)
            await blocksReadable(method, page.items)
            for (const it of page.items) {
                const k = keyOf(it)
                if (seen.has(k)) fail(method, `${what}: page ${pages}`, `item ${k} again (already on an earlier page)`)
                seen.add(k)
                items.push(it)
            }
            if (typeof page.cursor !== 'string') {
                fail(method, `${what}: page ${pages}`, `cursor ${show(page.cursor)}, want a string ("" on the last page)`)
                return { items, pages, page }
            }
            if (page.cursor === '') return { items, pages, page }
            if (page.cursor === cursor) {
                fail(method, `${what}: page ${pages}`, `the same cursor again: ${page.cursor}`)
                return { items, pages, page }
            }
            if (pages > 500) {
                fail(method, what, 'more than 500 pages')
                return { items, pages, page }
            }
            cursor = page.cursor
        }
    }
    // Compares a set of answered items with the expected ones (by key): none missing, none extra, each field.
    function sameSet(method, what, items, want, keyOf, { ordered = false } = {}) {
        const byKey = new Map(want.map(w => [keyOf(w), w]))
        if (byKey.size !== want.length) throw new Error(`${method} ${what}: expected items with the same key`)
        const got = new Map()
        let ok = true
        for (const it of items) {
            const k = keyOf(it)
            const w = byKey.get(k)
            if (!w) {
                fail(method, `${what}: item ${k}`, `not expected: ${show(it)}`)
                ok = false
                continue
            }
            got.set(k, it)
            ok = check(method, `${what}: item ${k}`, it, w) && ok
        }
        const missing = want.filter(w => !got.has(keyOf(w)))
        if (missing.length) {
            fail(method, `${what}: ${missing.length} of ${want.length} items missing`, show(missing.slice(0, 4).map(keyOf)))
            ok = false
        } else pass(method, `${what}: ${want.length} items, none missing`)
        if (ordered) {
            const order = items.map(it => byKey.get(keyOf(it))).filter(Boolean).map(w => w._order)
            const bad = order.findIndex((o, i) => i > 0 && cmpOrder(order[i - 1], o) < 0)
            if (bad > 0) {
                fail(method, `${what}: order`, `item ${bad} (${keyOf(items[bad])}) is newer than item ${bad - 1} (${keyOf(items[bad - 1])}): want newest first`)
                ok = false
            } else pass(method, `${what}: newest first`)
        }
        return ok
    }
    const cmpOrder = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]

    // ---- what expected.json implies ----
    const A = E.accounts
    const CT = E.contracts
    const nameOf = Object.fromEntries(Object.entries(A).map(([k, a]) => [a, k]))
    const who = a => nameOf[a] || a
    const S = E.state
    const meta = {
        [CT.ft.address]: { address: CT.ft.address, name: CT.ft.name, symbol: CT.ft.symbol, decimals: CT.ft.decimals },
        [CT.nft.address]: { address: CT.nft.address, name: CT.nft.name, symbol: CT.nft.symbol },
        [CT.mt.address]: { address: CT.mt.address },
    }
    const txSub = t => ({
        from: t.from, fee: hexq(t.fee), transactionHash: t.hash, blockNumber: t.block_number, typeInt: t.type_int,
        timestamp: t.timestamp, value: hexq(t.value), feePayer: t.fee_payer || '', feeRatio: t.fee_ratio || 0,
    })
    const klayItems = E.txs.map(t => ({
        transferType: 'klay', from: t.from,
        to: t.to === null ? new AnyOf([t.created, '', null], `klay item of a contract deploy (spec silent on "to")`) : t.to,
        value: hexq(t.value), fee: hexq(t.fee), status: t.status, transactionHash: t.hash, transactionIndex: t.tx_index,
        blockNumber: t.block_number, typeInt: t.type_int, timestamp: t.timestamp, feePayer: t.fee_payer || '', feeRatio: t.fee_ratio || 0,
        _order: [t.block_number, t.tx_index, -1], _kind: 'klay', _from: t.from, _to: t.to, _contract: null, _zero: BigInt(t.value) === 0n, _tx: t.hash,
    }))
    const tokenItems = []
    const groups = new Map()
    for (const tr of E.transfers.filter(t => t.kind !== 'klay')) {
        const t = txByHash.get(tr.tx_hash)
        const base = { transaction: txSub(t), contract: meta[tr.contract], from: tr.from, to: tr.to,
            _order: [tr.block_number, tr.tx_index, tr.log_index], _kind: tr.kind, _from: tr.from, _to: tr.to, _contract: tr.contract, _tx: tr.tx_hash }
        if (tr.kind === 'ft') tokenItems.push({ transferType: 'ft', ...base, value: hexq(tr.value), formattedValue: formatUnits(tr.value, CT.ft.decimals) })
        else if (tr.kind === 'nft') tokenItems.push({ transferType: 'nft', ...base, tokenId: hexq(tr.token_id) })
        else {
            const k = `${tr.tx_hash}/${tr.log_index}`
            if (!groups.has(k)) {
                const item = { transferType: 'mt', ...base, operator: tr.operator, ids: [], values: [] }
                groups.set(k, item)
                tokenItems.push(item)
            }
            groups.get(k).ids.push(hexq(tr.token_id))
            groups.get(k).values.push(hexq(tr.value))
        }
    }
    const ALL = [...klayItems, ...tokenItems]
    const keyOfTransfer = it => {
        const h = it && (it.transactionHash || (it.transaction && it.transaction.transactionHash))
        const c = it && it.contract && it.contract.address
        switch (it && it.transferType) {
            case 'klay': return `klay:${h}`
            case 'ft': return `ft:${h}:${c}:${it.from}>${it.to}:${it.value}`
            case 'nft': return `nft:${h}:${c}:${it.tokenId}`
            case 'mt': return `mt:${h}:${c}:${it.from}>${it.to}:${(it.ids || []).join(',')}`
            default: return `?:${show(it)}`
        }
    }
    const newestFirst = list => list.slice().sort((a, b) => cmpOrder(b._order, a._order))

    // State replayed from the transfers (chain order), checked against the balanceOf/ownerOf make.js read.
    const ftHolders = new Map() // holder -> {balance, last: transfer}
    const nftTokens = new Map() // id -> {owner, previousOwner, created, last, history []}
    const mtTokens = new Map() // id -> {supply, holders: Map(holder -> {balance, last})}
    const lastTouch = new Map() // `${contract}/${holder}` -> transfer
    for (const tr of E.transfers.filter(t => t.kind !== 'klay')) {
        for (const h of [tr.from, tr.to]) if (h !== ZERO) lastTouch.set(`${tr.contract}/${h}`, tr)
        const v = BigInt(tr.value)
        if (tr.kind === 'ft') {
            for (const [h, d] of [[tr.from, -v], [tr.to, v]]) {
                if (h === ZERO) continue
                const x = ftHolders.get(h) || { balance: 0n }
                x.balance += d
                x.last = tr
                ftHolders.set(h, x)
            }
        } else if (tr.kind === 'nft') {
            const x = nftTokens.get(tr.token_id) || { history: [], created: tr }
            x.previousOwner = tr.from
            x.owner = tr.to
            x.last = tr
            x.history.push(tr)
            nftTokens.set(tr.token_id, x)
        } else {
            const x = mtTokens.get(tr.token_id) || { supply: 0n, holders: new Map() }
            if (tr.from === ZERO) x.supply += v
            if (tr.to === ZERO) x.supply -= v
            for (const [h, d] of [[tr.from, -v], [tr.to, v]]) {
                if (h === ZERO) continue
                const y = x.holders.get(h) || { balance: 0n }
                y.balance += d
                y.last = tr
                x.holders.set(h, y)
            }
            mtTokens.set(tr.token_id, x)
        }
    }
    for (const [h, x] of ftHolders) if (S.ft.balances[h] !== undefined && String(x.balance) !== S.ft.balances[h]) throw new Error(`expected.json: ft balance of ${h}`)
    for (const [id, x] of nftTokens) if ((x.owner === ZERO ? null : x.owner) !== S.nft.owners[id]) throw new Error(`expected.json: owner of NFT ${id}`)
    const ftSupply = BigInt(S.ft.total_supply)
    const nftLive = [...nftTokens.entries()].filter(([, x]) => x.owner !== ZERO)
    const nftSupply = nftLive.length
    const nftHolderSet = new Set(nftLive.map(([, x]) => x.owner))
    const mtHolderSet = new Set()
    for (const [, x] of mtTokens) for (const [h, y] of x.holders) if (y.balance > 0n) mtHolderSet.add(h)
    const EOAS = ['A', 'B', 'C', 'D', 'F'].map(k => A[k])
    const now = Math.floor(Date.now() / 1000) + 60
    const firstTs = E.txs[0].timestamp
    const lastTs = E.txs[E.txs.length - 1].timestamp

    // =================== 1. presets + getTransferHistory ===================
    {
        const M = 'preset'
        const body = { name: `kas-token-history ${Date.now()}`, addresses: [A.B, A.D], contracts: [CT.ft.address, CT.nft.address] }
        const created = await http('POST', `${KENGATE_URL}/v2/preset`, body)
        let id
        if (created.status === 201 && created.json && Number.isInteger(created.json.id)) {
            id = created.json.id
            check(M, 'POST /v2/preset -> 201', created.json, { id, name: body.name, addresses: body.addresses, contracts: body.contracts, createdAt: new Between(firstTs - 1, now) })
        } else fail(M, 'POST /v2/preset', `HTTP ${created.status} ${created.text.slice(0, 300)}, want 201 {id (integer), name, addresses, contracts, createdAt}`)
        if (id !== undefined) {
            const one = await http('GET', `${KENGATE_URL}/v2/preset/${id}`)
            check(M, `GET /v2/preset/${id}`, { status: one.status, ...(one.json || {}) }, { status: 200, id, name: body.name, addresses: body.addresses, contracts: body.contracts })
            const list = await http('GET', `${KENGATE_URL}/v2/preset`)
            const items = list.json && Array.isArray(list.json.items) ? list.json.items : null
            if (list.status === 200 && items && items.filter(p => p.id === id).length === 1) pass(M, 'GET /v2/preset lists it once')
            else fail(M, 'GET /v2/preset', `HTTP ${list.status} ${list.text.slice(0, 300)}, want {items:[…]} with id ${id} once`)
            // Another key's presets are not this key's: an unknown id is 404.
            const none = await http('GET', `${KENGATE_URL}/v2/preset/987654321`)
            check(M, 'GET /v2/preset/987654321 (none)', { status: none.status, code: none.json && none.json.code }, { status: 404, code: 1040400 })

            const TH = 'getTransferHistory'
            const inPreset = w => [w._from, w._to].some(a => a === A.B || a === A.D) && (w._kind === 'klay' || w._contract === CT.ft.address || w._contract === CT.nft.address)
            const want = newestFirst(ALL.filter(inPreset))
            const r = await allPages(TH, `preset ${id} (B, D; ft+nft contracts), size ${PAGE}`, q => th.getTransferHistory(id, q), keyOfTransfer)
            if (r) {
                sameSet(TH, `preset ${id}`, r.items, want, keyOfTransfer, { ordered: true })
                if (r.pages > 1) pass(TH, `paginated: ${r.pages} pages`)
                else fail(TH, 'paginated', `one page for ${want.length} items at size ${PAGE}`)
            }
            const r2 = await allPages(TH, `preset ${id}, kind klay, exclude-zero-klay`, q => th.getTransferHistory([id], { ...q, kind: ['klay'], excludeZeroKlay: true }), keyOfTransfer)
            if (r2) sameSet(TH, `preset ${id}, kind klay, exclude-zero-klay`, r2.items, want.filter(w => w._kind === 'klay' && !w._zero), keyOfTransfer, { ordered: true })
            const r3 = await allPages(TH, `preset ${id}, kind nft`, q => th.getTransferHistory(id, { ...q, kind: ['nft'] }), keyOfTransfer)
            if (r3) sameSet(TH, `preset ${id}, kind nft`, r3.items, want.filter(w => w._kind === 'nft'), keyOfTransfer, { ordered: true })
            const rr = await allPages(TH, `preset ${id}, range 0x${E.first_block.toString(16)},0x${E.last_block.toString(16)}`,
                q => th.getTransferHistory(id, { ...q, range: `${hexq(E.first_block)},${hexq(E.last_block)}` }), keyOfTransfer, 1000)
            if (rr) sameSet(TH, `preset ${id}, block range`, rr.items, want, keyOfTransfer, { ordered: true })

            const put = await http('PUT', `${KENGATE_URL}/v2/preset/${id}`, { name: body.name + ' (renamed)', addresses: [A.B], contracts: [] })
            check(M, `PUT /v2/preset/${id}`, { status: put.status, ...(put.json || {}) }, { status: 200, id, name: body.name + ' (renamed)', addresses: [A.B], contracts: [] })
            const after = await allPages(TH, `preset ${id} after PUT (B, no contract restriction)`, q => th.getTransferHistory(id, q), keyOfTransfer, 1000)
            if (after) sameSet(TH, `preset ${id} after PUT`, after.items, newestFirst(ALL.filter(w => w._from === A.B || w._to === A.B)), keyOfTransfer, { ordered: true })
            const del = await http('DELETE', `${KENGATE_URL}/v2/preset/${id}`)
            if (del.status >= 200 && del.status < 300) pass(M, `DELETE /v2/preset/${id} -> ${del.status}`)
            else fail(M, `DELETE /v2/preset/${id}`, `HTTP ${del.status} ${del.text.slice(0, 200)}`)
            const gone = await http('GET', `${KENGATE_URL}/v2/preset/${id}`)
            check(M, `GET /v2/preset/${id} after DELETE`, { status: gone.status }, { status: 404 })
            const gone2 = await sdk(TH, () => th.getTransferHistory(id, { size: PAGE }))
            if (gone2.error) pass(TH, `deleted preset ${id}: error ${show(gone2.error)}`)
            else fail(TH, `deleted preset ${id}`, `answered ${show(gone2.data).slice(0, 200)}, want an error`)
        }
    }

    // =================== 2. getTransferHistoryByTxHash ===================
    {
        const M = 'getTransferHistoryByTxHash'
        for (const t of E.txs) {
            const r = await sdk(M, () => th.getTransferHistoryByTxHash(t.hash))
            if (r.error) {
                fail(M, `${t.label}`, `error ${show(r.error)}`)
                continue
            }
            if (!r.data || !Array.isArray(r.data.items)) {
                fail(M, t.label, `no items: ${show(r.data)}`)
                continue
            }
            await blocksReadable(M, r.data.items)
            sameSet(M, t.label, r.data.items, newestFirst(ALL.filter(w => w._tx === t.hash)), keyOfTransfer, { ordered: true })
        }
        const r = await sdk(M, () => th.getTransferHistoryByTxHash('0x' + 'ab'.repeat(32)))
        check(M, 'an unknown tx hash', r.data || r.error, { items: [] })
    }

    // =================== 3. getTransferHistoryByAccount ===================
    {
        const M = 'getTransferHistoryByAccount'
        const mine = (w, a) => w._from === a || w._to === a
        const runs = []
        for (const k of ['A', 'B', 'C', 'D', 'F']) runs.push({ what: `${k}`, addr: A[k], q: {}, f: w => mine(w, A[k]) })
        for (const k of ['A', 'B', 'C', 'D']) {
            for (const kind of ['ft', 'nft', 'mt']) {
                runs.push({ what: `${k}, kind ${kind}, ca-filter ${kind} contract`, addr: A[k], q: { kind: [kind], caFilter: CT[kind].address }, f: w => mine(w, A[k]) && w._kind === kind })
            }
            runs.push({ what: `${k}, kind klay, exclude-zero-klay`, addr: A[k], q: { kind: ['klay'], excludeZeroKlay: true }, f: w => mine(w, A[k]) && w._kind === 'klay' && !w._zero })
        }
        runs.push({ what: 'A, kind ft,nft', addr: A.A, q: { kind: ['ft', 'nft'] }, f: w => mine(w, A.A) && (w._kind === 'ft' || w._kind === 'nft') })
        runs.push({ what: 'C, from-only', addr: A.C, q: { fromOnly: true }, f: w => w._from === A.C })
        runs.push({ what: 'C, to-only', addr: A.C, q: { toOnly: true }, f: w => w._to === A.C })
        runs.push({ what: 'D, kind ft, ca-filter nft contract (nothing)', addr: A.D, q: { kind: ['ft'], caFilter: CT.nft.address }, f: () => false })
        runs.push({ what: `Z (funder), range 0x${E.first_block.toString(16)},0x${E.last_block.toString(16)}`, addr: A.Z,
            q: { range: `${hexq(E.first_block)},${hexq(E.last_block)}` }, f: w => mine(w, A.Z) })
        // A time range: from the FT deploy's block time to the last NFT tx's.
        const t0 = txByHash.get(CT.ft.deploy_tx).timestamp
        const t1 = Math.max(...E.transfers.filter(t => t.kind === 'nft').map(t => t.timestamp))
        runs.push({ what: `A, range ${t0},${t1} (unix time)`, addr: A.A, q: { range: `${t0},${t1}` },
            f: w => mine(w, A.A) && txByHash.get(w._tx).timestamp >= t0 && txByHash.get(w._tx).timestamp <= t1 })
        for (const run of runs) {
            const want = newestFirst(ALL.filter(run.f))
            const r = await allPages(M, `${run.what}, size ${PAGE}`, q => th.getTransferHistoryByAccount(run.addr, { ...q, ...run.q }), keyOfTransfer)
            if (!r) continue
            sameSet(M, run.what, r.items, want, keyOfTransfer, { ordered: true })
            if (want.length > PAGE) {
                if (r.pages > 1) pass(M, `${run.what}: ${r.pages} pages`)
                else fail(M, `${run.what}: pagination`, `${r.items.length} items in one page at size ${PAGE}`)
            }
        }
        // Upper-case (checksum-style) address in the path: the same answer.
        const up = '0x' + A.A.slice(2).toUpperCase()
        const r = await allPages(M, 'A in upper case', q => th.getTransferHistoryByAccount(up, q), keyOfTransfer, 1000)
        if (r) sameSet(M, 'A in upper case', r.items, newestFirst(ALL.filter(w => mine(w, A.A))), keyOfTransfer, { ordered: true })
        // Errors as KAS's.
        const both = await http('GET', `${KENGATE_URL}/v2/transfer/account/${A.A}?from-only=true&to-only=true`)
        check(M, 'from-only and to-only both true', { status: both.status, code: both.json && both.json.code }, { status: 400, code: 1040010 })
        const badKind = await http('GET', `${KENGATE_URL}/v2/transfer/account/${A.A}?kind=nope`)
        check(M, 'kind=nope', { status: badKind.status, code: badKind.json && badKind.json.code }, { status: 400, code: 1040010 })
        const badSize = await http('GET', `${KENGATE_URL}/v2/transfer/account/${A.A}?size=-1`)
        check(M, 'size=-1', { status: badSize.status, code: badSize.json && badSize.json.code }, { status: 400, code: 1040011 })
    }

    // =================== 4. contracts: FT / NFT / MT lists and details ===================
    const ftDetail = {
        address: CT.ft.address, decimals: CT.ft.decimals, name: CT.ft.name, symbol: CT.ft.symbol, totalSupply: hexq(ftSupply),
        status: 'completed', type: 'KIP-7', createdAt: new Between(CT.ft.created_at, now), updatedAt: new Between(CT.ft.created_at, now), deletedAt: 0,
    }
    const nftDetail = {
        address: CT.nft.address, name: CT.nft.name, symbol: CT.nft.symbol, totalSupply: hexq(nftSupply),
        status: 'completed', type: 'KIP-17', createdAt: new Between(CT.nft.created_at, now), updatedAt: new Between(CT.nft.created_at, now), deletedAt: 0,
    }
    const mtDetail = {
        address: CT.mt.address, status: 'completed', type: 'KIP-37', createdAt: new Between(CT.mt.created_at, now), updatedAt: new Between(CT.mt.created_at, now), deletedAt: 0,
    }
    for (const [kind, list, one, detail, TYPE] of [
        ['ft', 'getFTContractList', 'getFTContract', ftDetail, 'KIP-7'],
        ['nft', 'getNFTContractList', 'getNFTContract', nftDetail, 'KIP-17'],
        ['mt', 'getMTContractList', 'getMTContract', mtDetail, 'KIP-37'],
    ]) {
        const addr = CT[kind].address
        for (const q of [{}, { type: TYPE }, { status: 'completed' }]) {
            const what = `size ${PAGE}${q.type ? `, type ${q.type}` : ''}${q.status ? `, status ${q.status}` : ''}`
            const r = await allPages(list, what, o => th[list]({ ...o, ...q }), it => (it && it.address) || show(it))
            if (!r) continue
            const ours = r.items.filter(it => it.address === addr)
            if (ours.length === 1) check(list, `${what}: the ${kind} contract`, ours[0], detail)
            else fail(list, what, `the ${kind} contract ${addr} listed ${ours.length} times among ${r.items.length}`)
            const others = r.items.filter(it => [CT.ft.address, CT.nft.address, CT.mt.address].includes(it.address) && it.address !== addr)
            if (others.length) fail(list, what, `lists another kind's contract: ${show(others.map(o => o.address))}`)
            if (q.type) {
                const wrong = r.items.filter(it => it.type !== q.type)
                if (wrong.length) fail(list, what, `${wrong.length} items of another type: ${show(wrong.slice(0, 2))}`)
                else pass(list, `${what}: all of type ${q.type}`)
            }
            const created = r.items.map(it => it.createdAt)
            if (created.some((c, i) => i > 0 && c > created[i - 1])) note(list, 'items are not in descending createdAt order')
        }
        const r = await sdk(one, () => th[one](addr))
        if (r.error) fail(one, kind, `error ${show(r.error)}`)
        else check(one, `${kind} contract ${addr}`, r.data, detail)
        const up = await sdk(one, () => th[one]('0x' + addr.slice(2).toUpperCase()))
        if (up.error) fail(one, `${kind} contract, address in upper case`, `error ${show(up.error)}`)
        else check(one, `${kind} contract, address in upper case`, up.data, detail)
        const other = kind === 'ft' ? CT.nft.address : CT.ft.address
        const nf = await sdk(one, () => th[one](other))
        check(one, `a ${kind === 'ft' ? 'nft' : 'ft'} contract is no ${kind} contract`, nf.error || nf.data, { status: 404, code: 1040400 })
        const bad = await http('GET', `${KENGATE_URL}/v2/contract/${kind}/0x1234`)
        check(one, 'invalid address', { status: bad.status, code: bad.json && bad.json.code }, { status: 400, code: 1040020 })
    }

    // =================== 5. holders ===================
    {
        const r = await sdk('getNFTHolder', () => th.getNFTHolder(CT.nft.address))
        check('getNFTHolder', 'nft contract', r.data || r.error, { address: CT.nft.address, totalHolder: nftHolderSet.size })
        const m = await sdk('getMTHolder', () => th.getMTHolder(CT.mt.address))
        check('getMTHolder', 'mt contract', m.data || m.error, { address: CT.mt.address, totalHolder: mtHolderSet.size })
        const nf = await sdk('getNFTHolder', () => th.getNFTHolder(CT.ft.address))
        check('getNFTHolder', 'an ft contract', nf.error || nf.data, { status: 404, code: 1040400 })
        const mf = await sdk('getMTHolder', () => th.getMTHolder(CT.nft.address))
        check('getMTHolder', 'an nft contract', mf.error || mf.data, { status: 404, code: 1040400 })
    }

    // =================== 6. NFTs ===================
    const nftItem = (id, x) => ({
        tokenId: hexq(id), owner: x.owner, previousOwner: x.previousOwner, tokenUri: S.nft.token_uris[id] ?? '',
        transactionHash: x.last.tx_hash, createdAt: x.created.timestamp, updatedAt: x.last.timestamp,
    })
    const keyOfNft = it => (it && it.tokenId) || show(it)
    {
        const M = 'getNFTList'
        const want = nftLive.map(([id, x]) => nftItem(id, x))
        const r = await allPages(M, `size 2`, q => th.getNFTList(CT.nft.address, q), keyOfNft, 2)
        if (r) {
            const burned = [...nftTokens.entries()].filter(([, x]) => x.owner === ZERO).map(([id]) => hexq(id))
            const listedBurned = r.items.filter(it => burned.includes(it.tokenId))
            if (listedBurned.length) note(M, `burned tokens are listed (spec silent): ${show(listedBurned)}`)
            listedBurned.forEach(it => check(M, `burned token ${it.tokenId}`, it, { owner: ZERO }))
            sameSet(M, 'nft contract', r.items.filter(it => !burned.includes(it.tokenId)), want, keyOfNft)
        }
        const nf = await sdk(M, () => th.getNFTList(CT.ft.address, { size: PAGE }))
        check(M, 'an ft contract', nf.error || nf.data, { status: 404, code: 1040400 })
    }
    {
        const M = 'getNFTListByOwner'
        for (const k of ['A', 'B', 'C', 'D', 'F']) {
            const want = nftLive.filter(([, x]) => x.owner === A[k]).map(([id, x]) => nftItem(id, x))
            const r = await allPages(M, `${k}, size 1`, q => th.getNFTListByOwner(CT.nft.address, A[k], q), keyOfNft, 1)
            if (r) sameSet(M, k, r.items, want, keyOfNft)
        }
    }
    {
        const M = 'getNFT'
        for (const [id, x] of nftTokens) {
            const r = await sdk(M, () => th.getNFT(CT.nft.address, BigInt(id).toString()))
            if (x.owner === ZERO) {
                if (r.error) check(M, `burned #${id}`, r.error, { status: 404, code: 1040400 })
                else {
                    note(M, `a burned token answers 200 (spec silent): ${show(r.data)}`)
                    check(M, `burned #${id}`, r.data, { tokenId: hexq(id), owner: ZERO })
                }
                continue
            }
            if (r.error) fail(M, `#${id}`, `error ${show(r.error)}`)
            else check(M, `#${id}`, r.data, nftItem(id, x))
            const h = await sdk(M, () => th.getNFT(CT.nft.address, hexq(id)))
            check(M, `#${id} asked as ${hexq(id)}`, h.data || h.error, nftItem(id, x))
        }
        const nf = await sdk(M, () => th.getNFT(CT.nft.address, 999999))
        check(M, 'a token never minted', nf.error || nf.data, { status: 404, code: 1040400 })
    }
    {
        const M = 'getNFTOwnershipHistory'
        for (const [id, x] of nftTokens) {
            const want = x.history.map(tr => ({ from: tr.from, to: tr.to, timestamp: tr.timestamp, _order: [tr.block_number, tr.tx_index, tr.log_index] })).reverse()
            const r = await allPages(M, `#${id}, size 1`, q => th.getNFTOwnershipHistory(CT.nft.address, BigInt(id).toString(), q), it => `${it.from}>${it.to}@${it.timestamp}`, 1)
            if (r) check(M, `#${id}: every change, newest first`, r.items, want)
        }
    }

    // =================== 7. MTs ===================
    const keyOfMt = it => (it && `${it.owner || ''}/${it.tokenId}`) || show(it)
    const mtTokenItem = (id, holder, y) => ({
        tokenId: hexq(id), owner: holder, tokenAddress: CT.mt.address, totalSupply: hexq(mtTokens.get(id).supply),
        tokenUri: S.mt.uris[id], balance: hexq(y.balance), transactionHash: y.last.tx_hash,
        transferFrom: y.last.from, transferTo: y.last.to, updatedAt: y.last.timestamp,
    })
    {
        const M = 'getMTList'
        const want = [...mtTokens.entries()].map(([id, x]) => ({ tokenId: hexq(id), totalSupply: hexq(x.supply), tokenUri: S.mt.uris[id] }))
        const r = await allPages(M, 'size 2', q => th.getMTList(CT.mt.address, q), it => (it && it.tokenId) || show(it), 2)
        if (r) sameSet(M, 'mt contract', r.items, want, it => it.tokenId)
        const nf = await sdk(M, () => th.getMTList(CT.nft.address, { size: PAGE }))
        check(M, 'an nft contract', nf.error || nf.data, { status: 404, code: 1040400 })
    }
    {
        const M = 'getMTListByOwner'
        for (const k of ['A', 'B', 'C', 'D']) {
            const held = [...mtTokens.entries()].flatMap(([id, x]) => {
                const y = x.holders.get(A[k])
                return y && y.balance > 0n ? [mtTokenItem(id, A[k], y)] : []
            })
            const total = held.reduce((s, it) => s + BigInt(it.balance), 0n)
            const r = await allPages(M, `${k}, size 1`, q => th.getMTListByOwner(CT.mt.address, A[k], q), keyOfMt, 1)
            if (!r) continue
            sameSet(M, k, r.items, held, keyOfMt)
            check(M, `${k}: totalBalance`, r.page.totalBalance, hexq(total))
        }
    }
    {
        const M = 'getMT'
        for (const [id, x] of mtTokens) {
            for (const [h, y] of x.holders) {
                if (y.balance === 0n) continue
                const r = await sdk(M, () => th.getMT(CT.mt.address, h, BigInt(id).toString()))
                check(M, `${who(h)} id ${id}`, r.data || r.error, mtTokenItem(id, h, y))
            }
        }
        const nf = await sdk(M, () => th.getMT(CT.mt.address, A.F, '1'))
        check(M, 'F never held id 1', nf.error || nf.data, { status: 404, code: 1040400 })
    }
    {
        const M = 'getMTOwnerListByTokenId'
        for (const [id, x] of mtTokens) {
            const want = [...x.holders.entries()].filter(([, y]) => y.balance > 0n).map(([h, y]) => mtTokenItem(id, h, y))
            const r = await allPages(M, `id ${id}, size 1`, q => th.getMTOwnerListByTokenId(CT.mt.address, BigInt(id).toString(), q), keyOfMt, 1)
            if (r) sameSet(M, `id ${id}`, r.items, want, keyOfMt)
        }
    }

    // =================== 8. what an account holds ===================
    const ftExtras = bal => ({ name: CT.ft.name, symbol: CT.ft.symbol, decimals: CT.ft.decimals, totalSupply: hexq(ftSupply), formattedValue: formatUnits(bal, CT.ft.decimals) })
    {
        const M = 'getContractListByOwner'
        const keyOf = it => (it && `${it.kind}:${it.contractAddress}`) || show(it)
        for (const k of ['A', 'B', 'C', 'D', 'F']) {
            const a = A[k]
            const want = []
            const f = ftHolders.get(a)
            if (f && f.balance > 0n) {
                want.push({ kind: 'ft', contractAddress: CT.ft.address, totalBalance: hexq(f.balance), updatedAt: lastTouch.get(`${CT.ft.address}/${a}`).timestamp, extras: ftExtras(f.balance) })
            }
            const n = nftLive.filter(([, x]) => x.owner === a).length
            if (n > 0) {
                want.push({ kind: 'nft', contractAddress: CT.nft.address, totalBalance: hexq(n), updatedAt: lastTouch.get(`${CT.nft.address}/${a}`).timestamp,
                    extras: { name: CT.nft.name, symbol: CT.nft.symbol, totalSupply: hexq(nftSupply) } })
            }
            let m = 0n
            for (const [, x] of mtTokens) m += (x.holders.get(a) || { balance: 0n }).balance
            if (m > 0n) want.push({ kind: 'mt', contractAddress: CT.mt.address, totalBalance: hexq(m), updatedAt: lastTouch.get(`${CT.mt.address}/${a}`).timestamp, extras: {} })
            const r = await allPages(M, `${k}, size 1`, q => th.getContractListByOwner(a, q), keyOf, 1)
            if (r) sameSet(M, k, r.items, want, keyOf)
            for (const kind of ['ft', 'nft', 'mt']) {
                const rk = await allPages(M, `${k}, kind ${kind}`, q => th.getContractListByOwner(a, { ...q, kind: [kind] }), keyOf)
                if (rk) sameSet(M, `${k}, kind ${kind}`, rk.items, want.filter(w => w.kind === kind), keyOf)
            }
        }
        const bad = await http('GET', `${KENGATE_URL}/v2/account/${A.A}/contract?kind=klay`)
        check(M, 'kind=klay', { status: bad.status, code: bad.json && bad.json.code }, { status: 400, code: 1040010 })
    }
    {
        const M = 'getTokenListByOwner'
        const keyOf = it => (it && `${it.kind}:${it.contractAddress}:${(it.extras && it.extras.tokenId) || ''}`) || show(it)
        const last = tr => ({ transactionHash: tr.tx_hash, transferFrom: tr.from, transferTo: tr.to })
        for (const k of ['A', 'B', 'C', 'D', 'F']) {
            const a = A[k]
            const want = []
            const f = ftHolders.get(a)
            if (f && f.balance > 0n) {
                want.push({ kind: 'ft', contractAddress: CT.ft.address, updatedAt: f.last.timestamp, balance: hexq(f.balance), lastTransfer: last(f.last), extras: ftExtras(f.balance) })
            }
            for (const [id, x] of nftLive) {
                if (x.owner !== a) continue
                want.push({ kind: 'nft', contractAddress: CT.nft.address, updatedAt: x.last.timestamp, balance: '0x1', lastTransfer: last(x.last),
                    extras: { tokenId: hexq(id), tokenUri: S.nft.token_uris[id] } })
            }
            for (const [id, x] of mtTokens) {
                const y = x.holders.get(a)
                if (!y || y.balance === 0n) continue
                want.push({ kind: 'mt', contractAddress: CT.mt.address, updatedAt: y.last.timestamp, balance: hexq(y.balance), lastTransfer: last(y.last),
                    extras: { tokenId: hexq(id), tokenUri: S.mt.uris[id], totalSupply: hexq(x.supply) } })
            }
            const r = await allPages(M, `${k}, size ${PAGE}`, q => th.getTokenListByOwner(a, q), keyOf)
            if (r) sameSet(M, k, r.items, want, keyOf)
            const rk = await allPages(M, `${k}, kind nft,mt`, q => th.getTokenListByOwner(a, { ...q, kind: ['nft', 'mt'] }), keyOf)
            if (rk) sameSet(M, `${k}, kind nft,mt`, rk.items, want.filter(w => w.kind !== 'ft'), keyOf)
            const rc = await allPages(M, `${k}, ca-filters ft,mt`, q => th.getTokenListByOwner(a, { ...q, caFilters: [CT.ft.address, CT.mt.address] }), keyOf)
            if (rc) sameSet(M, `${k}, ca-filters ft,mt`, rc.items, want.filter(w => w.kind !== 'nft'), keyOf)
        }
        const bad = await http('GET', `${KENGATE_URL}/v2/account/${A.A}/token?ca-filters=nope`)
        check(M, 'ca-filters=nope', { status: bad.status, code: bad.json && bad.json.code }, { status: 400, code: 1040010 })
    }

    // =================== 9. access: credentials and chain id ===================
    {
        const M = 'auth'
        const wrong = await http('GET', `${KENGATE_URL}/v2/contract/ft/${CT.ft.address}`, undefined,
            { authorization: 'Basic ' + Buffer.from(`${KEY_ID}:not-the-secret`).toString('base64'), 'x-chain-id': String(CHAIN_ID) })
        if (wrong.status === 401 || wrong.status === 403) pass(M, `a wrong secret: HTTP ${wrong.status}`)
        else fail(M, 'a wrong secret', `HTTP ${wrong.status} ${wrong.text.slice(0, 200)}, want 401/403`)
        const chain = await http('GET', `${KENGATE_URL}/v2/contract/ft/${CT.ft.address}`, undefined, { authorization: AUTH, 'x-chain-id': String(CHAIN_ID + 1000) })
        if (chain.status >= 400 && chain.status < 500) pass(M, `an unknown x-chain-id: HTTP ${chain.status}`)
        else fail(M, 'an unknown x-chain-id', `HTTP ${chain.status} ${chain.text.slice(0, 200)}, want 4xx`)
    }

    // =================== 10. the Etherscan-compatible API ===================
    {
        const api = async (query, base = KENGATE_URL) => {
            const r = await http('GET', `${base}/api?${query}`)
            return r.json || { status: 'HTTP', message: String(r.status), result: r.text.slice(0, 200) }
        }
        // All rows of a query: page by page with offset 4, checked against one offset-1000 answer.
        async function rows(M, query, base = KENGATE_URL) {
            const one = await api(`${query}&offset=1000&page=1&sort=asc`, base)
            if (!Array.isArray(one.result)) {
                fail(M, query, `answer ${show(one)}`)
                return null
            }
            const paged = []
            for (let p = 1; p <= 200; p++) {
                const r = await api(`${query}&offset=4&page=${p}&sort=asc`, base)
                if (!Array.isArray(r.result) || r.result.length === 0) break
                paged.push(...r.result)
            }
            const key = x => `${x.hash}/${x.logIndex ?? ''}/${x.tokenID ?? ''}`
            if (JSON.stringify(paged.map(key)) === JSON.stringify(one.result.map(key))) pass(M, `${query}: pages of 4 = one page of 1000`)
            else fail(M, `${query}: pages of 4`, `${paged.length} rows, one page ${one.result.length}`)
            const desc = await api(`${query}&offset=1000&page=1&sort=desc`, base)
            if (Array.isArray(desc.result) && JSON.stringify(desc.result.map(key)) === JSON.stringify(one.result.map(key).reverse())) pass(M, `${query}: sort=desc reverses`)
            else fail(M, `${query}: sort=desc`, `not the reverse of asc`)
            await blocksReadable(M, one.result.map(x => ({ blockNumber: Number(x.blockNumber), transactionHash: x.hash })))
            return one.result
        }
        const same = (M, what, got, want, keyOf) => {
            const g = new Map()
            for (const x of got) {
                const k = keyOf(x)
                if (g.has(k)) fail(M, `${what}: row ${k}`, 'twice')
                g.set(k, x)
            }
            const w = new Map(want.map(x => [keyOf(x), x]))
            for (const [k, x] of g) if (!w.has(k)) fail(M, `${what}: row ${k}`, `not expected: ${show(x)}`)
            let missing = 0
            for (const [k, x] of w) {
                if (!g.has(k)) missing++
                else check(M, `${what}: row ${k}`, g.get(k), x)
            }
            if (missing) fail(M, what, `${missing} of ${want.length} rows missing`)
            else pass(M, `${what}: ${want.length} rows, none missing`)
            const blocks = got.map(x => Number(x.blockNumber))
            if (blocks.some((b, i) => i > 0 && b < blocks[i - 1])) fail(M, what, 'not in ascending block order')
        }
        const tokenRow = tr => {
            const t = txByHash.get(tr.tx_hash)
            const row = { blockNumber: String(tr.block_number), timeStamp: String(tr.timestamp), hash: tr.tx_hash, from: tr.from, to: tr.to,
                contractAddress: tr.contract, transactionIndex: String(tr.tx_index), logIndex: String(tr.log_index), blockHash: t.block_hash,
                nonce: String(t.nonce), gasUsed: String(t.gas_used), gasPrice: t.gas_price }
            if (tr.kind === 'ft') Object.assign(row, { value: tr.value, tokenName: CT.ft.name, tokenSymbol: CT.ft.symbol, tokenDecimal: String(CT.ft.decimals) })
            if (tr.kind === 'nft') Object.assign(row, { tokenID: tr.token_id, tokenName: CT.nft.name, tokenSymbol: CT.nft.symbol, tokenDecimal: '0' })
            if (tr.kind === 'mt') Object.assign(row, { tokenID: tr.token_id, tokenValue: tr.value })
            return row
        }
        const keyRow = x => `${x.hash}/${x.logIndex}/${x.tokenID ?? ''}`
        for (const [action, kind] of [['tokentx', 'ft'], ['tokennfttx', 'nft'], ['token1155tx', 'mt']]) {
            const M = `etherscan ${action}`
            const c = CT[kind].address
            const all = E.transfers.filter(t => t.kind === kind)
            const got = await rows(M, `module=account&action=${action}&contractaddress=${c}`)
            if (got) same(M, `contractaddress ${kind}`, got, all.map(tokenRow), keyRow)
            for (const k of ['A', 'B', 'C', 'D']) {
                const g = await rows(M, `module=account&action=${action}&address=${A[k]}&contractaddress=${c}`)
                if (g) same(M, `${k} + contractaddress`, g, all.filter(t => t.from === A[k] || t.to === A[k]).map(tokenRow), keyRow)
            }
            const g = await rows(M, `module=account&action=${action}&address=${A.C}`)
            if (g) same(M, 'C (every contract)', g, all.filter(t => t.from === A.C || t.to === A.C).map(tokenRow), keyRow)
        }
        {
            const M = 'etherscan txlist'
            const txRow = t => ({
                blockNumber: String(t.block_number), timeStamp: String(t.timestamp), hash: t.hash, nonce: String(t.nonce), blockHash: t.block_hash,
                transactionIndex: String(t.tx_index), from: t.from, to: t.to === null ? '' : t.to, value: t.value,
                isError: t.status === 1 ? '0' : '1', txreceipt_status: String(t.status), contractAddress: t.created || '',
                gasUsed: String(t.gas_used), txType: String(t.type_int), feePayer: t.fee_payer || '',
            })
            for (const k of ['A', 'B', 'C', 'D', 'F']) {
                const g = await rows(M, `module=account&action=txlist&address=${A[k]}`)
                if (g) same(M, k, g, E.txs.filter(t => t.from === A[k] || t.to === A[k]).map(txRow), x => x.hash)
            }
            for (const kind of ['ft', 'nft', 'mt']) {
                const c = CT[kind].address
                const g = await rows(M, `module=account&action=txlist&address=${c}`)
                if (g) same(M, `${kind} contract`, g, E.txs.filter(t => t.to === c || t.created === c).map(txRow), x => x.hash)
            }
            const g = await rows(M, `module=account&action=txlist&address=${A.Z}&startblock=${E.first_block}&endblock=${E.last_block}`)
            if (g) same(M, 'Z in the run\'s blocks', g, E.txs.filter(t => t.from === A.Z || t.to === A.Z).map(txRow), x => x.hash)
        }
        {
            // Internal transfers: from INTERNAL_URL, a kengate with index.internal on (tracing a
            // whole busy chain is the documented cost the main one does not pay), if given.
            const M = 'etherscan txlistinternal'
            const base = (process.env.INTERNAL_URL || KENGATE_URL).replace(/\/+$/, '')
            const row = i => ({ blockNumber: String(i.block_number), hash: i.tx_hash, from: i.from, to: i.to, value: i.value, isError: '0' })
            for (const [what, q] of [['D', `address=${A.D}`], ['ft contract', `address=${CT.ft.address}`], ['by tx hash', `txhash=${E.internal[0].tx_hash}`]]) {
                const g = await rows(M, `module=account&action=txlistinternal&${q}`, base)
                if (g) same(M, what, g, E.internal.map(row), x => x.hash)
            }
            const g = await rows(M, `module=account&action=txlistinternal&address=${A.B}`, base)
            if (g) same(M, 'B (none)', g, [], x => x.hash)
        }
    }

    // ---- summary ----
    console.log('')
    let passed = 0
    let failed = 0
    for (const [m, t] of [...tally.entries()].sort()) {
        passed += t.passed
        failed += t.failed
        console.log(`${t.failed ? 'FAIL' : 'ok  '} ${m}: ${t.passed} passed, ${t.failed} failed`)
    }
    for (const n of notes) console.log(n)
    console.log(`kas: ${passed} passed, ${failed} failed`)
    return failed
}

main().then(
    failed => process.exit(failed ? 1 : 0),
    err => {
        console.error(`check: FAILED: ${err && err.stack ? err.stack : err}`)
        console.log('kas: 0 passed, 1 failed')
        process.exit(1)
    }
)
