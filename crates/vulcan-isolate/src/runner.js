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
const encoder = new TextEncoder();
const stdout = Deno.stdout;
const inspect = Deno.inspect;
const stringify = JSON.stringify;

function frame(obj) {
  const bytes = encoder.encode(stringify(obj) + "\n");
  let written = 0;
  while (written < bytes.length) written += stdout.writeSync(bytes.subarray(written));
}

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

// A pooled process warms the module loader (transpiler, caches) before the job arrives: it
// is most of the cost of a first import. A cold one goes straight to its job.
if (Deno.args.includes("--warm-up")) {
  await importModule(btoa("export default (x) => x;"));
  await importModule(btoa("export default (x: unknown) => x;"));
}
frame({ t: "ready" });
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
function threw(e) {
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  frame({ t: "x", m: message, s: e instanceof Error ? String(e.stack ?? "") : "" });
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

try {
  const job = JSON.parse(readJob());
  setEnv(job.env);
  await (job.kind === "wasm" ? runWasm(job) : job.kind === "serve" ? serve(job) : runModule(job));
} catch (e) {
  threw(e);
}
