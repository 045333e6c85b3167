// Vulcan's isolate runner. Runs in a Deno process started with no permissions, inside a
// chroot that holds nothing but Deno. It runs exactly one job, read as one line of JSON from stdin:
//   {"kind": "module" | "wasm", "code_b64": "...", "input": <any JSON>}
// (plus "env": {NAME: value}, the only environment the code sees, through Deno.env and
// process.env) and writes one JSON frame per line on stdout:
//   {"t":"ready"}  the runner is loaded and waits for its job
//   {"t":"loaded"}  (kind "serve") the function's module is imported and its handler found
//   {"t":"o","l":"..."} / {"t":"e","l":"..."}  a console line (stdout / stderr)
//   {"t":"r","v":"<JSON text>"}  the default export's return value
//   {"t":"s"}  a script (no default export) ran to its end
//   {"t":"x","m":"message","s":"stack"}  the code threw
// A pooled process (--workers) runs each job in a Worker of its own and reads each job as
// `KEY<tab>JSON`: only its main thread writes frames, every one of that job's carrying
// `"k": KEY` — which the job never sees — so nothing a job writes itself is a frame:
//   {"t":"b","k":KEY}  the job was handed to its Worker (what comes before is not its)
//   {"t":"n","k":KEY}  the job's Worker is ended, and the next one ready for a next job
const encoder = new TextEncoder();
const stdout = Deno.stdout;
const inspect = Deno.inspect;
const stringify = JSON.stringify;

function write(text) {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += stdout.writeSync(bytes.subarray(written));
}

// Where frames go: stdout here; in a job's Worker, the main thread (see `relay`).
let frame = (obj) => write(stringify(obj) + "\n");

function emit(t, args) {
  const text = args.map((a) => (typeof a === "string" ? a : inspect(a))).join(" ");
  for (const line of text.split("\n")) frame({ t, l: line });
}

for (const name of ["log", "info", "debug", "trace"]) console[name] = (...a) => emit("o", a);
for (const name of ["warn", "error"]) console[name] = (...a) => emit("e", a);

function decodeBase64(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// The workload's environment replaces the process's (which it may not read anyway: the
// process has no --allow-env): Deno.env, and a `process` global with it as `env`. Deno's own
// `process` would read /proc, which the jail does not have (code that imports node:process
// still gets Deno's).
function setEnv(values) {
  const env = Object.assign(Object.create(null), values ?? {});
  const fake = {
    get: (k) => env[k],
    has: (k) => k in env,
    toObject: () => ({ ...env }),
    set: (k, v) => {
      env[k] = String(v);
    },
    delete: (k) => {
      delete env[k];
    },
  };
  Object.defineProperty(Deno, "env", { value: fake, configurable: false, writable: false, enumerable: true });
  const processEnv = new Proxy(env, {
    set: (target, k, v) => {
      target[k] = String(v);
      return true;
    },
  });
  const process = {
    env: processEnv,
    argv: ["deno"],
    platform: "linux",
    arch: "x64",
    cwd: () => "/",
    nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
  };
  Object.defineProperty(globalThis, "process", { value: process, configurable: true, writable: true });
}

function result(value) {
  if (value === undefined) value = null;
  if (typeof value === "bigint") value = value.toString();
  const text = stringify(value);
  frame({ t: "r", v: text === undefined ? "null" : text });
}

async function runWasm(job) {
  const { instance } = await WebAssembly.instantiate(decodeBase64(job.code_b64), {});
  const input = job.input ?? {};
  const name = input.fn ?? "main";
  const fn = instance.exports[name];
  if (typeof fn !== "function") {
    const names = Object.keys(instance.exports).filter((k) => typeof instance.exports[k] === "function");
    throw new Error(`the module exports no function "${name}"; its functions are: ${names.join(", ") || "none"}`);
  }
  result(fn(...(input.args ?? [])));
}

// JavaScript is imported as such, which skips the TypeScript transpiler (about a
// millisecond of a cold start). Code that does not parse as JavaScript is imported as
// TypeScript: a parse error stops the import before any of the module has run, so the
// second import is the only one that runs it.
function isParseError(e) {
  return e?.code === "ERR_MODULE_NOT_FOUND" && String(e.message).startsWith("SyntaxError:");
}

async function importModule(code_b64) {
  try {
    return await import("data:application/javascript;base64," + code_b64);
  } catch (e) {
    if (!isParseError(e)) throw e;
    return await import("data:application/typescript;base64," + code_b64);
  }
}

async function runModule(job) {
  const mod = await importModule(job.code_b64);
  if (typeof mod.default === "function") {
    result(await mod.default(job.input));
  } else {
    frame({ t: "s" });
  }
}

// Loads the module machinery (transpiler, caches) before a job arrives: it is most of the
// cost of a first import.
async function warmUp() {
  await importModule(btoa("export default (x) => x;"));
  await importModule(btoa("export default (x: unknown) => x;"));
}

// The job is one line. A blocking read wakes the moment it arrives (the stream reader
// adds about a millisecond), and nothing else runs in this process until it has.
function readJob() {
  const chunks = [];
  let size = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
    size += n;
    if (buf[n - 1] === 10) break;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}
function thrown(e) {
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return { t: "x", m: message, s: e instanceof Error ? String(e.stack ?? "") : "" };
}

function threw(e) {
  frame(thrown(e));
}

// A warm instance: one handler, many invocations, one at a time.
async function serve(job) {
  const mod = await importModule(job.code_b64);
  const handler = mod.default;
  if (typeof handler !== "function") {
    throw new Error("the module has no default export function: a function's handler is its default export");
  }
  frame({ t: "loaded" });
  for (;;) {
    const line = readJob();
    if (line === "") return;
    try {
      result(await handler(JSON.parse(line).input));
    } catch (e) {
      threw(e);
    }
  }
}

async function runOne(line) {
  try {
    const job = JSON.parse(line);
    setEnv(job.env);
    await (job.kind === "wasm" ? runWasm(job) : job.kind === "serve" ? serve(job) : runModule(job));
  } catch (e) {
    threw(e);
  }
}

// A process started with --workers runs each job in a Worker of its own — a fresh V8
// isolate, with no permissions (but its network's, see below), made before the job arrives — then ends that Worker, makes
// the next and says so ({"t":"n"}): the server gives such a process later jobs of the same
// tenant only. A job that exits (Deno.exit, close) ends the whole process, as it would alone.
// The Worker hands each frame to this thread as it is made (a line printed just before the
// code spins forever is still seen at once), at most AHEAD of them unwritten (it waits for
// the rest: a log flood is held back by the pipe, not buffered); this thread writes them
// with the job's key, and once the job's result is written it ends the Worker at once,
// whatever it was still doing.
const AHEAD = 1024;

async function workers() {
  // A process with a network gives its Workers that permission (`--net=*`: every host it
  // may reach); any other gives them none.
  const net = Deno.args.find((a) => a.startsWith("--net="))?.slice(6);
  const permissions = net ? { net: net === "*" ? true : net.split(",") } : "none";
  const spawn = () => {
    const worker = new Worker(import.meta.url, { type: "module", name: "vulcan-job", deno: { permissions } });
    // [frames sent, frames written]
    const flow = new Int32Array(new SharedArrayBuffer(8));
    const ready = new Promise((resolve) => {
      worker.onmessage = (e) => e.data === "ready" && resolve();
    });
    worker.postMessage({ flow });
    return { worker, ready, flow };
  };
  let next = spawn();
  await next.ready;
  frame({ t: "ready" });
  for (;;) {
    const line = readJob();
    if (line === "") {
      next.worker.terminate();
      return;
    }
    const tab = line.indexOf("\t");
    const k = line.slice(0, tab);
    const job = line.slice(tab + 1);
    const { worker, ready, flow } = next;
    await ready;
    await new Promise((resolve) => {
      let over = false;
      const end = () => {
        over = true;
        resolve();
      };
      worker.onmessage = (e) => {
        const d = e.data;
        if (over) return;
        if (d === "end") return end();
        if (typeof d?.exit === "number") Deno.exit(d.exit);
        const f = d?.frame;
        if (typeof f?.t !== "string") return;
        write(stringify({ ...f, k }) + "\n");
        Atomics.add(flow, 1, 1);
        Atomics.notify(flow, 1);
        if (f.t === "r" || f.t === "s" || f.t === "x") end();
      };
      worker.onerror = (e) => {
        e.preventDefault();
        if (over) return;
        write(stringify({ ...thrown(e.error ?? new Error(e.message)), k }) + "\n");
        end();
      };
      write(stringify({ t: "b", k }) + "\n");
      worker.postMessage(job);
    });
    worker.terminate();
    next = spawn();
    await next.ready;
    write(stringify({ t: "n", k }) + "\n");
  }
}

if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  // A job's Worker. Stdin carries the process's later jobs: not this one's to read; stdout
  // and stderr are the main thread's (what the code writes to them is relayed as lines).
  const post = self.postMessage.bind(self);
  let flow = null;
  frame = (obj) => {
    if (flow) {
      for (;;) {
        const written = Atomics.load(flow, 1);
        if (Atomics.load(flow, 0) - written < AHEAD) break;
        Atomics.wait(flow, 1, written, 1000);
      }
      Atomics.add(flow, 0, 1);
    }
    post({ frame: obj });
  };
  const relayed = (t) => {
    const decoder = new TextDecoder();
    let partial = "";
    const take = (bytes) => {
      partial += decoder.decode(bytes, { stream: true });
      const lines = partial.split("\n");
      partial = lines.pop();
      for (const l of lines) frame({ t, l });
      return bytes.length;
    };
    return {
      writeSync: take,
      write: async (bytes) => take(bytes),
      isTerminal: () => false,
    };
  };
  Object.defineProperty(Deno, "stdin", { value: undefined, configurable: false, writable: false });
  Object.defineProperty(Deno, "stdout", { value: relayed("o"), configurable: false, writable: false });
  Object.defineProperty(Deno, "stderr", { value: relayed("e"), configurable: false, writable: false });
  // Deno.exit in a Worker would end only the Worker, and not at once: the main thread is
  // told to end the process, and this thread waits for that without running another line.
  const exit = (code = 0) => {
    post({ exit: Number(code) || 0 });
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  };
  Object.defineProperty(Deno, "exit", { value: exit, configurable: false, writable: false });
  self.close = () => exit(0);
  // No warm-up here: the process's module machinery is warm after its first job, and an
  // import in a new isolate costs little (the Worker is ready sooner without one).
  self.onmessage = async (e) => {
    if (e.data?.flow) {
      flow = e.data.flow;
      post("ready");
      return;
    }
    self.onmessage = null;
    await runOne(e.data);
    post("end");
  };
} else if (Deno.args.includes("--workers")) {
  // Warms what the process's Workers share (the TypeScript transpiler, caches), once.
  await warmUp();
  await workers();
} else {
  if (Deno.args.includes("--warm-up")) await warmUp();
  frame({ t: "ready" });
  await runOne(readJob());
}
