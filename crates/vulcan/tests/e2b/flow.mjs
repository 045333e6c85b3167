// The flow of flow.py with E2B's JavaScript SDK (`e2b` on npm, unmodified), run by
// tests/e2b.rs with Node. The first step that does not hold exits non-zero.
import { randomBytes, randomUUID } from 'node:crypto'
import { CommandExitError, NotFoundError, Sandbox, SandboxError } from 'e2b'

const TEMPLATE = process.env.E2B_TEMPLATE
const RUN = randomUUID()

function check(what, holds, seen) {
  console.log(`${holds ? 'ok' : 'FAILED'}: ${what}: ${JSON.stringify(seen)}`)
  if (!holds) {
    console.error(`${what} does not hold: saw ${JSON.stringify(seen)}`)
    process.exit(1)
  }
}

async function raises(fn) {
  try {
    await fn()
    return null
  } catch (e) {
    return e
  }
}

const sbx = await Sandbox.create(TEMPLATE, {
  timeoutMs: 300_000,
  metadata: { run: RUN },
  envs: { GREETING: 'hello' },
})
check('created', Boolean(sbx.sandboxId), sbx.sandboxId)

let r = await sbx.commands.run('echo hi')
check('echo hi', r.stdout === 'hi\n' && r.exitCode === 0, [r.stdout, r.exitCode])

let e = await raises(() => sbx.commands.run('echo oops >&2; exit 3'))
check('a failing command throws', e instanceof CommandExitError && e.exitCode === 3 && e.stderr === 'oops\n', [e?.constructor?.name, e?.exitCode, e?.stderr])

const arrivals = []
await sbx.commands.run('echo one; sleep 1.5; echo two', {
  onStdout: (data) => arrivals.push([performance.now(), data]),
})
const lines = arrivals.map(([, d]) => d).join('')
const gap = arrivals.length > 1 ? (arrivals.at(-1)[0] - arrivals[0][0]) / 1000 : 0
check('output arrives as printed', lines === 'one\ntwo\n' && gap >= 1.0, [lines, gap])

r = await sbx.commands.run('echo $GREETING $EXTRA; pwd', { envs: { EXTRA: 'there' }, cwd: '/tmp' })
check('envs and cwd', r.stdout === 'hello there\n/tmp\n', r.stdout)

const sleeper = await sbx.commands.run('sleep 600', { background: true })
let pids = (await sbx.commands.list()).map((p) => p.pid)
check('a background command is listed', pids.includes(sleeper.pid), pids)

const reader = await sbx.commands.run('read line; echo got $line', { background: true, stdin: true })
await sbx.commands.sendStdin(reader.pid, 'abc\n')
r = await reader.wait()
check('stdin reaches it', r.stdout === 'got abc\n', r.stdout)

const again = await sbx.commands.connect(sleeper.pid)
check('kill', (await sbx.commands.kill(sleeper.pid)) === true, sleeper.pid)
e = await raises(() => again.wait())
check('a killed command ends as killed', e instanceof CommandExitError && e.exitCode !== 0, [e?.constructor?.name, e?.exitCode])
pids = (await sbx.commands.list()).map((p) => p.pid)
check('a killed command is no longer listed', !pids.includes(sleeper.pid), pids)

// A terminal: the size it was opened with, then the one it is resized to, typed input.
let typed = ''
let resized = false
const term = await sbx.pty.create({
  rows: 24,
  cols: 80,
  onData: async (data) => {
    typed += Buffer.from(data).toString()
    if (!resized && typed.includes('24 80')) {
      resized = true
      await sbx.pty.resize(term.pid, { rows: 30, cols: 100 })
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode('go\n'))
    }
  },
})
await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; read go; stty size; exit 4\n'))
e = await raises(() => term.wait())
check('a terminal has its size, resized', e?.exitCode === 4 && typed.includes('24 80') && typed.includes('30 100'), [e?.exitCode, typed.slice(-300)])

await sbx.files.write('/tmp/t.txt', 'some text')
check('text round trip', (await sbx.files.read('/tmp/t.txt')) === 'some text', 'some text')
const big = randomBytes(20 << 20)
await sbx.files.write('/tmp/big.bin', big.buffer.slice(big.byteOffset, big.byteOffset + big.length))
const back = Buffer.from(await sbx.files.read('/tmp/big.bin', { format: 'bytes' }))
check('20 MB round trip', back.equals(big), back.length)
const names = (await sbx.files.list('/tmp')).map((f) => f.name).sort()
check('list', names.includes('t.txt') && names.includes('big.bin'), names)
check('exists', (await sbx.files.exists('/tmp/t.txt')) && !(await sbx.files.exists('/tmp/nope')), '')
check('makeDir', (await sbx.files.makeDir('/tmp/d/e')) === true, '/tmp/d/e')
check('makeDir of one that exists', (await sbx.files.makeDir('/tmp/d/e')) === false, '/tmp/d/e')
const moved = await sbx.files.rename('/tmp/t.txt', '/tmp/d/u.txt')
check('rename', moved.path === '/tmp/d/u.txt' && (await sbx.files.read('/tmp/d/u.txt')) === 'some text', moved.path)
await sbx.files.remove('/tmp/d')
check('remove', !(await sbx.files.exists('/tmp/d')), '/tmp/d')
e = await raises(() => sbx.files.read('/tmp/nope'))
check('reading a missing file throws', e instanceof NotFoundError, e?.constructor?.name)

await sbx.files.makeDir('/tmp/w')
const seen = new Set()
const watcher = await sbx.files.watchDir('/tmp/w', (e) => seen.add(`${e.name}:${e.type}`), { recursive: true })
await sbx.files.write('/tmp/w/a.txt', 'x')
await sbx.commands.run('mkdir /tmp/w/sub && echo y > /tmp/w/sub/b.txt && rm /tmp/w/a.txt')
const want = ['a.txt:create', 'sub/b.txt:create', 'a.txt:remove']
const watchUntil = Date.now() + 10_000
while (!want.every((w) => seen.has(w)) && Date.now() < watchUntil) {
  await new Promise((done) => setTimeout(done, 200))
}
check('watchDir sees changes, below too', want.every((w) => seen.has(w)), [...seen].sort())
await watcher.stop()

const listed = await Sandbox.list({ query: { metadata: { run: RUN } } }).nextItems()
check('list by metadata', listed.length === 1 && listed[0].sandboxId === sbx.sandboxId, listed.map((s) => s.sandboxId))
const other = await Sandbox.list({ query: { metadata: { run: 'another' } } }).nextItems()
check('another metadata finds none', other.length === 0, other.length)

const short = await Sandbox.create(TEMPLATE, { timeoutMs: 300_000 })
await short.setTimeout(3_000)
await new Promise((done) => setTimeout(done, 7_000))
check('setTimeout ends it at the new deadline', (await short.isRunning()) === false, short.sandboxId)

const metrics = await sbx.getMetrics()
check('metrics over time', metrics.length >= 2 && metrics.at(-1).memUsed > 0
  && metrics[0].timestamp < metrics.at(-1).timestamp, metrics.length)

const napper = await Sandbox.create(TEMPLATE, { timeoutMs: 3_000, lifecycle: { onTimeout: 'pause', autoResume: true } })
await napper.files.write('/tmp/nap.txt', 'napped')
const until = Date.now() + 20_000
while ((await Sandbox.getInfo(napper.sandboxId)).state !== 'paused' && Date.now() < until) {
  await new Promise((done) => setTimeout(done, 500))
}
const napState = (await Sandbox.getInfo(napper.sandboxId)).state
check('onTimeout pause pauses it at its deadline', napState === 'paused', napState)
r = await napper.commands.run('cat /tmp/nap.txt')
check('autoResume: a command wakes it with its files', r.stdout === 'napped', r.stdout)
await napper.kill()

await sbx.files.write('/tmp/kept.txt', 'kept across the pause')
const counter = await sbx.commands.run('i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i; sleep 0.1; done', { background: true })
check('pause', (await sbx.pause()) === true, sbx.sandboxId)
const info = await Sandbox.getInfo(sbx.sandboxId)
check('paused', info.state === 'paused', info.state)
const resumed = await Sandbox.connect(sbx.sandboxId)
check('connect resumes it with its files', (await resumed.files.read('/tmp/kept.txt')) === 'kept across the pause', '')
pids = (await resumed.commands.list()).map((p) => p.pid)
check('a background command runs on after the pause', pids.includes(counter.pid), pids)
r = await (await resumed.commands.connect(counter.pid)).wait()
check('it ends as it would have', r.exitCode === 0 && r.stdout.trim().split('\n').pop() === '40', [r.exitCode, r.stdout.slice(-20)])
r = await resumed.commands.run('echo after')
check('it runs commands again', r.stdout === 'after\n', r.stdout)

await resumed.kill()
e = await raises(() => resumed.commands.run('echo too late'))
check('a killed sandbox refuses commands', e instanceof SandboxError, e?.constructor?.name)
e = await raises(() => Sandbox.connect(sbx.sandboxId))
check('connecting to a killed sandbox throws', e instanceof SandboxError, e?.constructor?.name)
console.log('flow complete')
