#!/usr/bin/env node
// A BApp page in a real browser against kengate, cross-origin: serves page.html (and the ethers / ethers-ext
// browser bundles from node_modules) on http://127.0.0.1:PAGE_PORT, a different origin from kengate's,
// opens it in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core: no browser
// download), waits for the page's window.result and prints it as one JSON line on stdout. What the page
// does: see page.js. Chromium's console errors (CORS refusals, failed handshakes) are in `console_errors`.
//
// Exit status: EXPECT=ok (default): 0 when every step succeeded. EXPECT=refused: 0 when the page failed as
// a browser does against a server that does not allow its origin: the HTTP calls with fetch's
// "TypeError: Failed to fetch", the WebSocket before opening, and no step succeeded. 1 otherwise, 2 when
// the browser could not be run.
//
//   node run.mjs             run the page (env below)
//   node run.mjs --origin    print the page's origin (http://127.0.0.1:$PAGE_PORT) and exit, e.g. to put it in
//                            kengate's [cors] allowed_origins before starting kengate
//
// Env: RPC_URL (required: kengate's HTTP JSON-RPC URL), WS_URL (default: RPC_URL with ws://), CHAIN_ID,
// ACCOUNTS_FILE (defaults LOCALNET_CHAIN_ID, LOCALNET_ACCOUNTS), ACCOUNT_INDEX (sender, default 5),
// PAGE_PORT (default 0: any free port), EXPECT (ok | refused), CHROMIUM (default /usr/bin/chromium),
// PAGE_TIMEOUT_MS (default 120000).
import fs from 'node:fs'
import http from 'node:http'
import { chromium } from 'playwright-core'

function env(name, fallback) {
    const v = process.env[name] || fallback
    if (v === undefined || v === '') throw new Error(`${name} is not set`)
    return v
}

const log = msg => process.stderr.write(`browser: ${msg}\n`)
const file = rel => new URL(rel, import.meta.url)
const PAGE_PORT = Number(process.env.PAGE_PORT || '0')

if (process.argv.includes('--origin')) {
    if (!PAGE_PORT) throw new Error('--origin needs PAGE_PORT')
    console.log(`http://127.0.0.1:${PAGE_PORT}`)
    process.exit(0)
}

const EXPECT = process.env.EXPECT || 'ok'
if (!['ok', 'refused'].includes(EXPECT)) throw new Error(`EXPECT is ${EXPECT}: ok or refused`)
const RPC_URL = env('RPC_URL')
const WS_URL = process.env.WS_URL || RPC_URL.replace(/^http/, 'ws')
const CHAIN_ID = env('CHAIN_ID', process.env.LOCALNET_CHAIN_ID)
const ACCOUNTS_FILE = env('ACCOUNTS_FILE', process.env.LOCALNET_ACCOUNTS)
const ACCOUNT_INDEX = Number(process.env.ACCOUNT_INDEX || '5')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const PAGE_TIMEOUT_MS = Number(process.env.PAGE_TIMEOUT_MS || '120000')

const accounts = JSON.parse(fs.readFileSync(ACCOUNTS_FILE, 'utf8'))
const account = accounts[ACCOUNT_INDEX]
if (!account) throw new Error(`no account #${ACCOUNT_INDEX} in ${ACCOUNTS_FILE}`)

// What the page loads. config.js hands it the URLs and the sender's key.
const config = { rpcUrl: RPC_URL, wsUrl: WS_URL, chainId: CHAIN_ID, address: account.address, privateKey: account.privateKey }
const routes = {
    '/': ['text/html', () => fs.readFileSync(file('./page.html'))],
    '/page.js': ['text/javascript', () => fs.readFileSync(file('./page.js'))],
    '/config.js': ['text/javascript', () => `window.CONFIG = ${JSON.stringify(config)}\n`],
    '/ethers.umd.min.js': ['text/javascript', () => fs.readFileSync(file('./node_modules/ethers/dist/ethers.umd.min.js'))],
    '/ethers-ext.v6.bundle.js': [
        'text/javascript',
        () => fs.readFileSync(file('./node_modules/@kaiachain/ethers-ext/dist/ethers-ext.v6.bundle.js')),
    ],
}

function serve() {
    const server = http.createServer((req, res) => {
        const path = new URL(req.url, 'http://x').pathname
        const route = req.method === 'GET' && routes[path]
        if (path === '/favicon.ico') {
            res.writeHead(204).end()
            return
        }
        if (!route) {
            res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
            return
        }
        res.writeHead(200, { 'content-type': route[0], 'cache-control': 'no-store' }).end(route[1]())
    })
    return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(PAGE_PORT, '127.0.0.1', () => resolve(server))
    })
}

// Whether the page failed the way a browser fails against a server that does not allow its origin.
function refusedAsABrowserWould(r) {
    const why = []
    if (r.ok) why.push('the page succeeded')
    if (!/^TypeError: Failed to fetch/.test(r.http_error || '')) why.push(`HTTP error is ${JSON.stringify(r.http_error)}, not fetch's "TypeError: Failed to fetch"`)
    if (!/failed before opening/.test(r.ws_error || '')) why.push(`WebSocket error is ${JSON.stringify(r.ws_error)}, not a failure before opening`)
    if (r.steps && r.steps.length) why.push(`steps succeeded: ${r.steps.join(', ')}`)
    return why
}

async function main() {
    const t0 = Date.now()
    const server = await serve()
    const origin = `http://127.0.0.1:${server.address().port}`
    log(`page origin ${origin}, kengate ${RPC_URL} and ${WS_URL}, sender #${ACCOUNT_INDEX} ${account.address}, expect ${EXPECT}`)
    let browser
    try {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 60000 })
        const page = await browser.newPage()
        const consoleErrors = []
        page.on('console', m => {
            if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text())
            log(`[console.${m.type()}] ${m.text()}`)
        })
        page.on('pageerror', e => {
            consoleErrors.push(`uncaught: ${e.message}`)
            log(`[uncaught] ${e.message}`)
        })
        const t1 = Date.now()
        await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 30000 })
        await page.waitForFunction(() => window.result !== undefined, null, { timeout: PAGE_TIMEOUT_MS, polling: 100 })
        const result = await page.evaluate(() => window.result)
        result.console_errors = consoleErrors
        result.browser = `${browser.browserType().name()} ${browser.version()}`
        result.browser_start_ms = t1 - t0
        result.total_ms = Date.now() - t0
        result.expect = EXPECT
        if (EXPECT === 'refused') {
            const why = refusedAsABrowserWould(result)
            result.refused_as_a_browser_would = why.length === 0
            if (why.length) result.why_not = why
            process.exitCode = why.length ? 1 : 0
        } else {
            process.exitCode = result.ok ? 0 : 1
        }
        console.log(JSON.stringify(result))
    } finally {
        if (browser) await browser.close()
        server.close()
    }
}

main().catch(e => {
    console.log(JSON.stringify({ ok: false, error: `${e && e.message ? e.message : e}`, expect: EXPECT }))
    log(`FAILED: ${e && e.stack ? e.stack : e}`)
    process.exit(2)
})
