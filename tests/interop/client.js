// Interop client: the npm `xmlrpc` package calls a running rpcd daemon.
//
//   node client.js http://127.0.0.1:PORT/RPC2 TOKEN
//
// Prints one JSON document on stdout: {"calls": [{name, ok, value} | {name, ok: false, faultCode,
// faultString, error}]}. Values that JSON cannot carry are tagged: a Date as {"$dateTime": ISO in
// UTC}, a Buffer as {"$base64": "..."}. The assertions live in tests/test_interop_node.py, so this
// script only reports what the wire gave it. Run it with TZ=UTC: the package reads and writes
// zone-less dateTime.iso8601 values in local time.
'use strict'

const xmlrpc = require('xmlrpc')

const [url, token] = process.argv.slice(2)
if (!url) {
  process.stderr.write('usage: node client.js URL [TOKEN]\n')
  process.exit(2)
}
const target = new URL(url)

function client(headers) {
  return xmlrpc.createClient({
    host: target.hostname,
    port: Number(target.port),
    path: target.pathname,
    headers: headers,
  })
}

const authed = client(token ? { Authorization: 'Bearer ' + token } : {})
const anonymous = client({})

function tag(value) {
  if (value instanceof Date) return { $dateTime: value.toISOString() }
  if (Buffer.isBuffer(value)) return { $base64: value.toString('base64') }
  if (Array.isArray(value)) return value.map(tag)
  if (value !== null && typeof value === 'object') {
    const out = {}
    for (const key of Object.keys(value)) out[key] = tag(value[key])
    return out
  }
  return value
}

function call(c, name, params) {
  return new Promise((resolve) => {
    c.methodCall(name, params, (err, value) => {
      if (err) {
        resolve({
          name: name,
          ok: false,
          faultCode: err.faultCode === undefined ? null : err.faultCode,
          faultString: err.faultString === undefined ? null : err.faultString,
          error: String(err.message || err),
          httpStatus: err.res ? err.res.statusCode : null,
        })
      } else {
        resolve({ name: name, ok: true, value: tag(value) })
      }
    })
  })
}

// Every XML-RPC type the package can write: struct, array, string (with whitespace and markup
// characters), int, negative int, boolean, double, dateTime.iso8601, base64, nil.
const everyType = {
  text: '  two leading, two trailing  <&> ünïcödé ',
  count: 42,
  negative: -7,
  yes: true,
  no: false,
  ratio: 2.5,
  when: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
  blob: Buffer.from([0, 1, 2, 127, 128, 254, 255]),
  list: [1, 'two', false, 3.25, ['nested', { deep: 'yes' }]],
  empty_list: [],
  empty_struct: {},
  nothing: null,
}

async function main() {
  const calls = [
    ['hello.helloWorld', ['Ada', 'Lovelace']],
    ['hello.add', [2, 3]],
    ['hello.echo', [everyType]],
    ['hello.sum', [[1, 2, 3.5]]],
    ['system.listMethods', []],
    ['hello.noSuchMethod', [1]],
    [
      'system.multicall',
      [
        [
          { methodName: 'hello.add', params: [20, 22] },
          { methodName: 'hello.noSuchMethod', params: [] },
        ],
      ],
    ],
  ]
  const results = []
  for (const [name, params] of calls) results.push(await call(authed, name, params))
  const anon = await call(anonymous, 'hello.add', [1, 1])
  anon.name = 'anonymous hello.add'
  results.push(anon)
  process.stdout.write(JSON.stringify({ calls: results }) + '\n')
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err) + '\n')
  process.exit(1)
})
