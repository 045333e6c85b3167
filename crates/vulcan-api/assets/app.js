// Vulcan's dashboard: each page is drawn from the path, its data comes from the API, and
// live changes arrive over the API's own WebSockets (no polling). The key is kept for the
// tab's session only (sessionStorage) and travels in the X-API-Key header, or as the
// WebSocket subprotocol `vulcan.key.<key>`: never in a URL.

const KEY_STORAGE = "vulcan.key";
const session = { key: sessionStorage.getItem(KEY_STORAGE) || "", me: null };
const main = document.getElementById("main");
const PAGE_SIZE = 20;
const STATUSES = ["pending", "running", "completed", "failed", "killed"];
const ISOLATIONS = ["isolate", "gvisor", "microvm"];
const RUNTIMES = ["node", "python", "go", "wasm", "oci"];

// ---- Elements ---------------------------------------------------------------------------

// An element with attributes (`on…` are listeners; false and null are left out) and
// children (strings become text: data never becomes markup).
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// Replaces `el`'s children, as `h` adds them.
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return el;
}

const link = (href, text) => h("a", { href }, text);
const badge = (status) => h("span", { class: `badge s-${status}` }, status);
const dash = "–";

function field(label, control, hint) {
  const id = control.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("small", { class: "muted" }, hint) : null);
}

function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, text]) =>
    h("option", { value: v, selected: v === value }, text)));
}

// A table of `rows` with `columns` ([heading, row => cell]); `empty` when there are none.
function table(caption, columns, rows, empty = "None yet.", rowAttrs = () => ({})) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map(([head]) => h("th", { scope: "col" }, head)))),
    h("tbody", {}, rows.map((r) => h("tr", rowAttrs(r), columns.map(([, cell]) => h("td", {}, cell(r) ?? dash)))))));
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) =>
    [h("dt", {}, k), h("dd", {}, v ?? dash)]));
}

// ---- Formatting -------------------------------------------------------------------------

const when = (iso) => (iso ? new Date(iso).toLocaleString() : dash);
function ms(n) {
  if (n == null) return dash;
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
}
function bytes(n) {
  if (n == null) return dash;
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const pretty = (text) => {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
};

// ---- The API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, requestId) {
    super(message);
    this.status = status;
    this.requestId = requestId;
  }
}

async function api(method, path, body, key = session.key) {
  const headers = {};
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const message = (data && data.error) || text || res.statusText;
    throw new ApiError(res.status, message, (data && data.request_id) || res.headers.get("x-request-id"));
  }
  return data;
}

const can = (permission) => Boolean(session.me && session.me.permissions.includes(permission));

// What an error means to the person looking at the page.
function explain(err) {
  if (err.status === 403) {
    return `Your key (role ${session.me ? session.me.role : "unknown"}) may not do this: ${err.message}.`;
  }
  if (err.status === 401) return `Your key was refused: ${err.message}. Sign in again.`;
  return err.message;
}

function showError(err) {
  const box = document.getElementById("alert");
  fill(box, h("span", {}, explain(err)),
    err.requestId ? h("small", {}, ` (request id ${err.requestId})`) : null,
    h("button", { type: "button", class: "link", onclick: () => { box.hidden = true; } }, "Dismiss"));
  box.hidden = false;
  if (err.status === 401 && session.me) signOut();
}

// Runs `action` (an async function), showing its error if it fails.
const guarded = (action) => async (...args) => {
  try { await action(...args); } catch (e) { showError(e); }
};

// ---- Pages and live streams -------------------------------------------------------------

// What the current page opened (sockets, timers): closed when it is left.
let current = { cleanups: [] };

function leave() {
  for (const close of current.cleanups) close();
  current = { cleanups: [] };
}

const onLeave = (close) => current.cleanups.push(close);

// Follows a WebSocket of the API while the page is shown, reconnecting after a drop;
// `path` may be a function (to resume where it left off). Returns `stop()`.
function live(path, onMessage) {
  const owner = current;
  let socket = null, stopped = false, delay = 500;
  const open = () => {
    if (stopped || owner !== current) return;
    const protocols = ["vulcan"];
    if (session.key) protocols.push(`vulcan.key.${session.key}`);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const target = typeof path === "function" ? path() : path;
    socket = new WebSocket(`${scheme}://${location.host}${target}`, protocols);
    socket.onopen = () => { delay = 500; };
    socket.onmessage = (e) => {
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      onMessage(message);
    };
    socket.onclose = () => {
      if (!stopped) setTimeout(open, (delay = Math.min(delay * 2, 10000)));
    };
  };
  const stop = () => { stopped = true; if (socket) socket.close(); };
  owner.cleanups.push(stop);
  open();
  return stop;
}

// `fn` at most once per `wait` ms, the last call winning.
function debounce(fn, wait) {
  let timer = null;
  const owner = current;
  const call = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { if (owner === current) fn(); }, wait);
  };
  owner.cleanups.push(() => clearTimeout(timer));
  return call;
}

// A page's section, appended to <main>; the heading is what a screen reader lands on.
function page(title, ...intro) {
  document.title = `${title} · Vulcan`;
  const root = h("section", { class: "page" }, h("h1", {}, title), intro);
  fill(main, root);
  return root;
}

// ---- Code editor ------------------------------------------------------------------------

const KEYWORDS = {
  js: "as async await break case catch class const continue default delete do else enum export extends false finally for from function if implements import in instanceof interface let new null of readonly return static super switch this throw true try type typeof undefined var void while yield",
  python: "False None True and as assert async await break case class continue def del elif else except finally for from global if import in is lambda match nonlocal not or pass raise return try while with yield",
  go: "break case chan const continue default defer else fallthrough false for func go goto if import interface map nil package range return select struct switch true type var",
};
const LANGUAGE = { node: "js", python: "python", go: "go" };
const esc = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// `text` as HTML with comments, strings, numbers and keywords of `lang` marked.
function highlight(text, lang) {
  const words = new Set((KEYWORDS[lang] || "").split(" "));
  const comment = lang === "python" ? String.raw`#[^\n]*` : String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`;
  const quoted = String.raw`"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?`;
  const strings = lang === "python"
    ? String.raw`"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|` + quoted
    : String.raw`\x60(?:[^\x60\\]|\\[\s\S])*\x60?|` + quoted;
  const re = new RegExp(`(${comment})|(${strings})|(\\b\\d[\\w.]*)|([A-Za-z_$][\\w$]*)`, "g");
  let out = "", last = 0;
  for (const m of text.matchAll(re)) {
    const [token] = m;
    out += esc(text.slice(last, m.index));
    const kind = m[1] ? "comment" : m[2] ? "string" : m[3] ? "number" : words.has(token) ? "keyword" : null;
    out += kind ? `<span class="t-${kind}">${esc(token)}</span>` : esc(token);
    last = m.index + token.length;
  }
  return out + esc(text.slice(last));
}

// A textarea over a highlighted copy of its text; `language()` says how to colour it.
function codeEditor(id, language, value = "") {
  const code = h("code");
  const shadow = h("pre", { class: "shadow", "aria-hidden": "true" }, code);
  const area = h("textarea", {
    id, class: "code", spellcheck: "false", autocapitalize: "off", autocomplete: "off", rows: 12,
  });
  const sync = () => { shadow.scrollTop = area.scrollTop; shadow.scrollLeft = area.scrollLeft; };
  const paint = () => {
    // Colouring only: the text itself is the textarea's, and escaped here.
    code.innerHTML = highlight(area.value, language()) + "\n";
    sync();
  };
  area.addEventListener("input", paint);
  area.addEventListener("scroll", sync);
  area.value = value;
  paint();
  return { element: h("div", { class: "editor" }, shadow, area), area, paint };
}

// A JSON text field; `read()` is its value parsed (undefined when empty) or throws with
// what is wrong, shown beside it.
function jsonField(id, label, placeholder) {
  const error = h("small", { class: "error", id: `${id}-error`, role: "alert" });
  const area = h("textarea", { id, rows: 3, spellcheck: "false", placeholder, "aria-describedby": error.id });
  const read = () => {
    error.textContent = "";
    area.removeAttribute("aria-invalid");
    if (!area.value.trim()) return undefined;
    try {
      return JSON.parse(area.value);
    } catch (e) {
      area.setAttribute("aria-invalid", "true");
      error.textContent = `${label} is not valid JSON: ${e.message}`;
      area.focus();
      throw null;
    }
  };
  area.addEventListener("input", () => {
    if (area.hasAttribute("aria-invalid")) {
      error.textContent = "";
      area.removeAttribute("aria-invalid");
    }
  });
  return { element: h("div", { class: "field" }, h("label", { for: id }, label), area, error), read, area };
}

// ---- Sign in ----------------------------------------------------------------------------

function signIn() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true });
  const error = h("p", { class: "error", role: "alert", id: "sign-in-error" });
  const form = h("form", {
    class: "card narrow",
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const key = input.value.trim();
      try {
        session.me = await api("GET", "/v1/me", undefined, key);
        session.key = key;
        sessionStorage.setItem(KEY_STORAGE, key);
        chrome();
        navigate(next.startsWith("/") && !next.startsWith("//") ? next : "/");
      } catch (err) {
        error.textContent = err.status === 401 ? `Sign-in refused: ${err.message}.` : explain(err);
        if (err.requestId) error.append(h("small", {}, ` (request id ${err.requestId})`));
        input.select();
      }
    },
  },
  field("API key", input, "Kept for this tab's session only, and sent as a header."),
  h("button", { type: "submit" }, "Sign in"), error);
  page("Sign in", form);
  input.focus();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  session.key = "";
  session.me = null;
  chrome();
  navigate("/sign-in");
}

// The header: navigation as far as the key's role reaches, and who is signed in.
function chrome() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.hidden = !session.me;
  who.hidden = !session.me;
  if (!session.me) return;
  for (const a of nav.querySelectorAll("a[data-needs]")) a.hidden = !can(a.dataset.needs);
  const me = session.me;
  document.getElementById("who-text").textContent = me.auth
    ? `${me.key_id} · ${me.role} · tenant ${me.tenant}`
    : "auth off (admin)";
  document.getElementById("sign-out").hidden = !me.auth;
}

function markNav(path) {
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href");
    const here = target === "/" ? path === "/" : path === target || (path.startsWith(`${target}/`) && !(target === "/workloads" && path === "/workloads/new"));
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

// ---- Overview ---------------------------------------------------------------------------

function perMinuteChart(minutes) {
  const width = 1000, height = 140, gap = 2;
  const max = Math.max(1, ...minutes.map((m) => m.created));
  const bar = (width - gap * minutes.length) / minutes.length;
  const ns = "http://www.w3.org/2000/svg";
  const total = minutes.reduce((n, m) => n + m.created, 0);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 18}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${total} workloads in the last hour; at most ${max} in one minute`);
  svg.classList.add("per-minute");
  minutes.forEach((m, i) => {
    const rect = document.createElementNS(ns, "rect");
    const hgt = m.created ? Math.max(2, (height * m.created) / max) : 0;
    rect.setAttribute("x", i * (bar + gap));
    rect.setAttribute("y", height - hgt);
    rect.setAttribute("width", bar);
    rect.setAttribute("height", hgt);
    rect.setAttribute("class", "bar");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${new Date(m.at).toLocaleTimeString()}: ${m.created}`;
    rect.append(title);
    svg.append(rect);
  });
  for (const [i, text] of [[0, "60 min ago"], [minutes.length - 1, "now"]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", i * (bar + gap));
    t.setAttribute("y", height + 14);
    if (i) t.setAttribute("text-anchor", "start");
    t.textContent = text;
    svg.append(t);
  }
  return h("figure", { class: "chart" }, svg, h("figcaption", {}, `${total} in the last hour (peak ${max}/min)`));
}

function backendTable(backends) {
  return table("Backends", [
    ["Backend", (b) => b.name],
    ["Available", (b) => (b.available ? "yes" : "no")],
    ["Reason", (b) => b.reason],
    ["Runtimes", (b) => (b.capabilities ? b.capabilities.supported_runtimes.join(", ") : null)],
    ["Slots", (b) => (b.capabilities ? b.capabilities.max_concurrency : null)],
  ], backends);
}

function nodeTable(nodes) {
  return table("Nodes", [
    ["Node", (n) => h("span", { id: `node-${n.id}` }, n.id)],
    ["State", (n) => badge(n.state)],
    ["Host", (n) => n.hostname],
    ["Running", (n) => n.active_workloads],
    ["CPUs", (n) => n.cpus],
    ["Memory", (n) => `${n.memory_used_mb} / ${n.memory_total_mb} MB`],
    ["Free slots", (n) => (n.backends || []).map((b) => `${b.name} ${b.free_slots}/${b.slots}`).join(", ")],
    ["Heartbeat", (n) => when(n.heartbeat_at)],
    ["Version", (n) => n.version],
  ], nodes);
}

async function overview() {
  const totals = h("div", { class: "cards", role: "group", "aria-label": "Workloads by status" });
  const chartBox = h("div"), latency = h("div"), backendsBox = h("div"), nodesBox = h("div");
  page("Overview", totals,
    h("h2", {}, "Workloads per minute"), chartBox,
    h("h2", {}, "Latency per backend"), latency,
    h("h2", {}, "Backends"), backendsBox,
    h("h2", {}, "Nodes"), nodesBox);

  const drawStats = (s) => {
    fill(totals,
      h("div", { class: "card stat" }, h("span", {}, "total"), h("strong", {}, s.total)),
      STATUSES.map((st) => h("div", { class: `card stat s-${st}` }, h("span", {}, st), h("strong", {}, s.by_status[st] || 0))),
      Object.entries(s.by_isolation).map(([iso, n]) => h("div", { class: "card stat" }, h("span", {}, iso), h("strong", {}, n))));
    fill(latency, table("Latency per backend", [
      ["Backend", ([b]) => b],
      ["Finished", ([, f]) => f.finished],
      ["Average", ([, f]) => ms(f.avg_duration_ms)],
      ["p50", ([, f]) => ms(f.p50_duration_ms)],
      ["p95", ([, f]) => ms(f.p95_duration_ms)],
      ["CPU time (avg)", ([, f]) => ms(f.avg_cpu_time_ms)],
      ["Peak memory (avg)", ([, f]) => bytes(f.avg_peak_memory_bytes)],
    ], Object.entries(s.backends), "Nothing has finished yet."));
  };

  let minutes = (await api("GET", "/v1/stats/timeline?minutes=60")).minutes;
  const drawChart = () => fill(chartBox, perMinuteChart(minutes));
  // Keeps the window on the last 60 minutes, adding `count` to the minute of `at`.
  const advance = (at, count) => {
    const minute = Math.floor(at / 60000) * 60000;
    let last = Date.parse(minutes[minutes.length - 1].at);
    while (last < minute) {
      last += 60000;
      minutes.push({ at: new Date(last).toISOString(), created: 0 });
    }
    minutes = minutes.slice(-60);
    const slot = minutes.find((m) => Date.parse(m.at) === minute);
    if (slot) slot.created += count;
  };
  drawChart();
  const tick = setInterval(() => { advance(Date.now(), 0); drawChart(); }, 30000);
  onLeave(() => clearInterval(tick));

  drawStats(await api("GET", "/v1/stats"));
  const drawInfra = guarded(async () => {
    const [backends, nodes] = await Promise.all([api("GET", "/v1/backends"), api("GET", "/v1/nodes")]);
    fill(backendsBox, backendTable(backends));
    fill(nodesBox, nodeTable(nodes));
  });
  await drawInfra();
  const infraSoon = debounce(drawInfra, 1000);
  live("/ws/stats", drawStats);
  live("/ws/events", (ev) => {
    if (ev.kind === "workload" && ev.type === "created") {
      advance(Date.parse(ev.at) || Date.now(), 1);
      drawChart();
    }
    if (ev.kind === "node" || (ev.kind === "workload" && ev.type !== "created")) infraSoon();
  });
}

// ---- Workloads --------------------------------------------------------------------------

const workloadColumns = [
  ["ID", (w) => link(`/workloads/${w.id}`, w.id)],
  ["Status", (w) => badge(w.status)],
  ["Isolation", (w) => w.isolation],
  ["Runtime", (w) => w.runtime],
  ["Function", (w) => (w.function ? link(`/functions/${encodeURIComponent(w.function)}`, w.function) : null)],
  ["Node", (w) => w.node_id],
  ["Duration", (w) => ms(w.duration_ms)],
  ["Created", (w) => when(w.created_at)],
];

function workloadTable(caption, list, empty) {
  return table(caption, workloadColumns, list, empty, (w) => ({
    "data-id": w.id,
    class: "clickable",
    onclick: (e) => { if (!e.target.closest("a")) navigate(`/workloads/${w.id}`); },
  }));
}

async function workloads() {
  const params = new URLSearchParams(location.search);
  let offset = Number(params.get("offset")) || 0;
  const status = select([["", "any"], ...STATUSES.map((s) => [s, s])], params.get("status") || "", { id: "filter-status" });
  const isolation = select([["", "any"], ...ISOLATIONS.map((s) => [s, s])], params.get("isolation") || "", { id: "filter-isolation" });
  const fn = h("input", { id: "filter-function", type: "search", value: params.get("function") || "", placeholder: "name" });
  const list = h("div", { "aria-live": "polite" });
  const summary = h("span", { class: "muted" });
  const prev = h("button", { type: "button", onclick: () => { offset = Math.max(0, offset - PAGE_SIZE); load(); } }, "Previous");
  const next = h("button", { type: "button", onclick: () => { offset += PAGE_SIZE; load(); } }, "Next");
  const filters = h("form", {
    class: "filters", role: "search", "aria-label": "Filter workloads",
    onsubmit: (e) => { e.preventDefault(); offset = 0; load(); },
    onchange: () => { offset = 0; load(); },
  }, field("Status", status), field("Isolation", isolation), field("Function", fn),
  h("button", { type: "submit" }, "Filter"));
  page("Workloads", can("workloads:create") ? h("p", {}, link("/workloads/new", "New workload")) : null,
    filters, list, h("div", { class: "pager" }, prev, summary, next));

  let shown = [];
  const query = () => {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (isolation.value) q.set("isolation", isolation.value);
    if (fn.value.trim()) q.set("function", fn.value.trim());
    return q;
  };
  async function load() {
    const q = query();
    if (offset) q.set("offset", offset);
    history.replaceState(null, "", `/workloads${q.toString() ? `?${q}` : ""}`);
    q.set("limit", PAGE_SIZE);
    q.set("offset", offset);
    let result;
    try { result = await api("GET", `/v1/workloads?${q}`); } catch (e) { showError(e); return; }
    shown = result.workloads;
    fill(list, workloadTable("Workloads, newest first", shown, "No workloads match."));
    summary.textContent = result.total
      ? `${offset + 1}–${offset + shown.length} of ${result.total}` : "0 of 0";
    prev.disabled = offset === 0;
    next.disabled = offset + shown.length >= result.total;
  }
  await load();
  const reload = debounce(load, 300);
  live("/ws/events?kind=workload", async (ev) => {
    const known = shown.findIndex((w) => w.id === ev.id);
    if (known < 0) {
      if (ev.type === "created" && offset === 0) reload();
      return;
    }
    if (status.value && ev.status !== status.value) { reload(); return; }
    try {
      shown[known] = await api("GET", `/v1/workloads/${ev.id}`);
    } catch { return; }
    const row = list.querySelector(`tr[data-id="${ev.id}"]`);
    if (row) row.replaceWith(workloadTable("", [shown[known]]).querySelector("tbody tr"));
  });
}

function logLine(line) {
  return h("div", { class: `line s-${line.stream}`, "data-seq": line.seq },
    h("span", { class: "stream" }, line.stream), h("span", { class: "text" }, line.line));
}

async function workloadDetail(id) {
  const status = h("span", { id: "status", role: "status", "aria-label": "Status" });
  const summary = h("div");
  const actions = h("div", { class: "actions" });
  const output = h("pre", { id: "output-text" });
  const lines = h("div", { class: "log", id: "log-lines", tabindex: "0", "aria-label": "Log lines" });
  const logEnd = h("p", { class: "muted", id: "log-state" }, "Following…");
  const stream = select([["", "all"], ["stdout", "stdout"], ["stderr", "stderr"], ["backend", "backend"]], "", {
    id: "log-stream",
    onchange: () => { lines.dataset.stream = stream.value; },
  });
  const specBox = h("div");
  page(`Workload ${id}`,
    h("p", {}, h("strong", {}, "Status: "), status), actions, summary,
    h("section", { "aria-label": "Output", id: "output" }, h("h2", {}, "Output"), output),
    h("section", { "aria-label": "Logs", id: "logs" }, h("h2", {}, "Logs"), field("Stream", stream), lines, logEnd),
    h("details", { id: "spec" }, h("summary", {}, "Spec"), specBox));

  let workload;
  const draw = (w) => {
    workload = w;
    fill(status, badge(w.status));
    const running = w.status === "pending" || w.status === "running";
    fill(actions, running && can("workloads:kill")
      ? h("button", { type: "button", id: "kill", class: "danger", onclick: guarded(kill) }, "Kill")
      : null);
    const trigger = w.trigger && w.trigger.kind === "schedule" ? w.trigger.id : null;
    fill(summary, facts([
      ["Isolation", w.requested_isolation && w.requested_isolation !== w.isolation ? `${w.isolation} (asked ${w.requested_isolation})` : w.isolation],
      ["Runtime", w.runtime],
      ["Node", w.node_id ? link(`/nodes#node-${w.node_id}`, w.node_id) : null],
      w.function && ["Function", link(`/functions/${encodeURIComponent(w.function)}`, `${w.function} v${w.function_version}`)],
      trigger && ["Schedule", link(`/schedules#schedule-${trigger}`, trigger)],
      ["Created", when(w.created_at)],
      ["Started", when(w.started_at)],
      ["Finished", when(w.finished_at)],
      ["Duration", ms(w.duration_ms)],
      ["Preparation", ms(w.prepare_ms)],
      ["Exit code", w.exit_code],
      w.error && ["Error", h("span", { class: "error", id: "workload-error" }, w.error)],
      ["CPU time", ms(w.cpu_time_ms)],
      ["Peak memory", bytes(w.peak_memory_bytes)],
      ["Processes (max)", w.max_processes],
      ["Limits", `${w.cpu_limit} CPU, ${w.mem_limit} MB, ${w.timeout_s} s`],
      ["Request id", w.request_id],
      ["Input hash", h("code", {}, w.input_hash)],
    ]));
    output.textContent = w.output == null ? (running ? "(not yet)" : "(none)") : pretty(w.output);
  };
  const refresh = guarded(async () => draw(await api("GET", `/v1/workloads/${id}`)));
  async function kill() {
    try {
      draw(await api("DELETE", `/v1/workloads/${id}`));
    } catch (e) {
      showError(e);
      await refresh();
    }
  }
  draw(await api("GET", `/v1/workloads/${id}`));
  api("GET", `/v1/workloads/${id}/spec`).then((spec) => {
    fill(specBox, facts([
      ["Runtime", spec.runtime],
      ["Isolation asked", spec.isolation],
      spec.image && ["Image", spec.image],
      spec.command && ["Command", spec.command.join(" ")],
      spec.code_archive_bytes != null && ["Archive", bytes(spec.code_archive_bytes)],
      ["Resources", JSON.stringify(spec.resources)],
      ["Input", h("pre", {}, JSON.stringify(spec.input, null, 2))],
      Object.keys(spec.env).length && ["Environment", Object.keys(spec.env).join(", ")],
      spec.secrets.length && ["Secrets", spec.secrets.join(", ")],
    ]), spec.code ? h("pre", { class: "code-view" }, h("code", {}, spec.code)) : null);
  }, (e) => fill(specBox, h("p", { class: "muted" }, explain(e))));

  // The log, then every new line as it is written; resumes after the last line seen.
  let lastSeq = null;
  const stop = live(() => `/ws/logs/${id}${lastSeq == null ? "" : `?since=${lastSeq}`}`, (m) => {
    if (m.type === "log") {
      if (lastSeq != null && m.seq <= lastSeq) return;
      lastSeq = m.seq;
      const atEnd = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 8;
      lines.append(logLine(m));
      if (atEnd) lines.scrollTop = lines.scrollHeight;
    } else if (m.type === "done") {
      stop();
      logEnd.textContent = `Ended: ${m.status}${m.exit_code != null ? `, exit code ${m.exit_code}` : ""}.`;
      refresh();
    }
  });
  live("/ws/events?kind=workload", (ev) => {
    if (ev.id === id && (!workload || ev.status !== workload.status)) refresh();
  });
}

const SAMPLES = {
  node: 'export default (input) => {\n  console.log("hello from an isolate");\n  return { hello: input?.name ?? "world" };\n};\n',
  python: 'import json, sys\n\nname = "world"\nprint(f"hello, {name}")\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello")\n}\n',
  wasm: "",
  oci: "",
};

function newWorkload() {
  const runtime = select(RUNTIMES.map((r) => [r, r]), "node", { id: "runtime" });
  const isolation = select([["auto", "auto"], ...ISOLATIONS.map((i) => [i, i])], "auto", { id: "isolation" });
  const editor = codeEditor("code", () => LANGUAGE[runtime.value], SAMPLES.node);
  const codeField = h("div", { class: "field" }, h("label", { for: "code" }, "Code"), editor.element,
    h("small", { class: "muted", id: "code-hint" }, "node/TypeScript: a default export called with the input, or a script."));
  const image = h("input", { id: "image", placeholder: "127.0.0.1:5000/busybox:1" });
  const command = h("input", { id: "command", placeholder: "echo hello" });
  const ociFields = h("div", { class: "row", hidden: true }, field("Image", image, "Empty: the default image."), field("Command", command, "Run with sh -c."));
  const input = jsonField("input", "Input", '{"name": "Ada"}');
  const cpus = h("input", { id: "cpus", type: "number", min: 1, value: 1 });
  const mem = h("input", { id: "mem", type: "number", min: 16, value: 128 });
  const timeout = h("input", { id: "timeout", type: "number", min: 1, value: 30 });
  let sample = SAMPLES.node;
  runtime.addEventListener("change", () => {
    const oci = runtime.value === "oci";
    ociFields.hidden = !oci;
    codeField.hidden = oci;
    if (editor.area.value === sample) editor.area.value = SAMPLES[runtime.value];
    sample = SAMPLES[runtime.value];
    document.getElementById("code-hint").textContent = {
      node: "node/TypeScript: a default export called with the input, or a script.",
      python: "A script; the input is on stdin as JSON.",
      go: "A package main.",
      wasm: "A base64 WebAssembly module.",
      oci: "",
    }[runtime.value];
    editor.paint();
  });
  const error = h("p", { class: "error", role: "alert" });
  const run = h("button", { type: "submit", id: "run" }, "Run");
  const form = h("form", {
    class: "card",
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      let parsed;
      try { parsed = input.read(); } catch { return; }
      const body = {
        runtime: runtime.value,
        isolation: isolation.value,
        resources: { cpus: Number(cpus.value), mem_mb: Number(mem.value), timeout_s: Number(timeout.value) },
      };
      if (parsed !== undefined) body.input = parsed;
      if (runtime.value === "oci") {
        if (image.value.trim()) body.image = image.value.trim();
        if (command.value.trim()) body.command = ["sh", "-c", command.value];
      } else {
        body.code = editor.area.value;
      }
      run.disabled = true;
      try {
        const w = await api("POST", "/v1/workloads/async", body);
        navigate(`/workloads/${w.id}`);
      } catch (err) {
        error.textContent = explain(err);
        if (err.requestId) error.append(h("small", {}, ` (request id ${err.requestId})`));
      } finally {
        run.disabled = false;
      }
    },
  },
  h("div", { class: "row" }, field("Runtime", runtime), field("Isolation", isolation)),
  codeField, ociFields, input.element,
  h("fieldset", {}, h("legend", {}, "Resources"),
    h("div", { class: "row" }, field("CPUs", cpus), field("Memory (MB)", mem), field("Timeout (s)", timeout))),
  run, error);
  page("New workload", form);
}

// ---- Functions --------------------------------------------------------------------------

async function functions() {
  const list = await api("GET", "/v1/functions");
  const root = page("Functions", table("Functions", [
    ["Name", (f) => link(`/functions/${encodeURIComponent(f.name)}`, f.name)],
    ["Tenant", (f) => f.tenant],
    ["Runtime", (f) => f.runtime],
    ["Active version", (f) => f.active_version],
    ["Latest", (f) => f.latest_version],
    ["Invocations", (f) => f.invocations],
    ["Warm instances", (f) => f.instances],
    ["Public", (f) => (f.public ? "yes" : "no")],
  ], list, "No functions deployed yet."));
  if (!can("functions:write")) return;
  const name = h("input", { id: "fn-name", required: true, pattern: "[a-z0-9][a-z0-9-]{0,62}" });
  const runtime = select(["node", "python", "go", "oci"].map((r) => [r, r]), "node", { id: "fn-runtime" });
  const editor = codeEditor("fn-code", () => LANGUAGE[runtime.value], SAMPLES.node);
  runtime.addEventListener("change", editor.paint);
  root.append(h("h2", {}, "Deploy"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      await api("PUT", `/v1/functions/${encodeURIComponent(name.value)}`, { runtime: runtime.value, code: editor.area.value });
      navigate(`/functions/${encodeURIComponent(name.value)}`);
    }),
  }, h("div", { class: "row" }, field("Name", name), field("Runtime", runtime)),
  h("div", { class: "field" }, h("label", { for: "fn-code" }, "Code"), editor.element),
  h("button", { type: "submit" }, "Deploy")));
}

async function functionDetail(name) {
  const path = `/v1/functions/${encodeURIComponent(name)}`;
  const [fn, versions, recent] = await Promise.all([
    api("GET", path), api("GET", `${path}/versions`),
    api("GET", `/v1/workloads?function=${encodeURIComponent(name)}&limit=10`),
  ]);
  const write = can("functions:write");
  const activate = (v) => guarded(async () => {
    await api("PUT", `${path}/active`, { version: v });
    render();
  });
  const input = jsonField("invoke-input", "Input", '{"a": 1, "b": 2}');
  const root = page(`Function ${name}`, facts([
    ["Tenant", fn.tenant], ["Runtime", fn.runtime], ["Active version", fn.active_version],
    ["Latest version", fn.latest_version], ["Invocations", fn.invocations],
    ["Warm instances", fn.instances], ["Public", fn.public ? `yes: /fn/${fn.tenant}/${fn.name}` : "no"],
    ["Updated", when(fn.updated_at)],
  ]));
  if (can("workloads:create")) {
    root.append(h("h2", {}, "Invoke"), h("form", {
      class: "card",
      onsubmit: guarded(async (e) => {
        e.preventDefault();
        let parsed;
        try { parsed = input.read(); } catch { return; }
        const w = await api("POST", `${path}/invoke/async`, parsed === undefined ? null : parsed);
        navigate(`/workloads/${w.id}`);
      }),
    }, input.element, h("button", { type: "submit" }, "Invoke")));
  }
  root.append(h("h2", {}, "Versions"), table("Versions, newest first", [
    ["Version", (v) => v.version],
    ["Digest", (v) => h("code", {}, v.digest.slice(0, 19))],
    ["Created", (v) => when(v.created_at)],
    ["", (v) => (v.version === fn.active_version ? "active"
      : write ? h("button", { type: "button", onclick: activate(v.version) }, `Activate v${v.version}`) : null)],
  ], versions));
  root.append(h("h2", {}, "Recent invocations"), workloadTable("Recent invocations", recent.workloads, "Not invoked yet."));
  if (write) {
    root.append(h("button", {
      type: "button", class: "danger",
      onclick: guarded(async () => {
        if (!confirm(`Delete function ${name}? Its history is kept.`)) return;
        await api("DELETE", path);
        navigate("/functions");
      }),
    }, "Delete function"));
  }
}

// ---- Schedules --------------------------------------------------------------------------

async function schedules() {
  const list = await api("GET", "/v1/schedules");
  const write = can("functions:write");
  const patch = (s, body) => guarded(async () => { await api("PATCH", `/v1/schedules/${s.id}`, body); render(); });
  const root = page("Schedules", table("Schedules", [
    ["ID", (s) => h("span", { id: `schedule-${s.id}` }, s.id)],
    ["Function", (s) => link(`/functions/${encodeURIComponent(s.function)}`, s.function)],
    ["Cron", (s) => h("code", {}, s.cron)],
    ["Time zone", (s) => s.timezone],
    ["Enabled", (s) => (s.enabled ? "yes" : "no")],
    ["Next run", (s) => when(s.next_run_at)],
    ["Last run", (s) => (s.last_workload_id ? link(`/workloads/${s.last_workload_id}`, when(s.last_run_at)) : when(s.last_run_at))],
    ["Skipped", (s) => s.skipped_ticks],
    ["", (s) => (write ? [
      h("button", { type: "button", onclick: patch(s, { enabled: !s.enabled }) }, s.enabled ? "Disable" : "Enable"),
      h("button", { type: "button", class: "danger", onclick: guarded(async () => { await api("DELETE", `/v1/schedules/${s.id}`); render(); }) }, "Delete"),
    ] : null)],
  ], list, "No schedules yet."));
  if (!write) return;
  const fn = h("input", { id: "schedule-function", required: true });
  const cron = h("input", { id: "schedule-cron", required: true, placeholder: "*/5 * * * *" });
  const input = jsonField("schedule-input", "Input", "{}");
  root.append(h("h2", {}, "Add a schedule"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      let parsed;
      try { parsed = input.read(); } catch { return; }
      const body = { function: fn.value.trim(), cron: cron.value.trim() };
      if (parsed !== undefined) body.input = parsed;
      await api("POST", "/v1/schedules", body);
      render();
    }),
  }, h("div", { class: "row" }, field("Function", fn), field("Cron", cron, "5 fields, or 6 with seconds first")),
  input.element, h("button", { type: "submit" }, "Add schedule")));
}

// ---- Queues -----------------------------------------------------------------------------

async function queues() {
  const [list, topics] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/topics")]);
  const write = can("workloads:create");
  const act = (fn) => guarded(async () => { await fn(); render(); });
  const root = page("Queues", table("Queues", [
    ["Name", (q) => h("span", { id: `queue-${q.name}` }, q.name)],
    ["Tenant", (q) => q.tenant],
    ["Depth", (q) => h("span", { class: "queue-depth" }, String(q.depth))],
    ["In flight", (q) => q.in_flight],
    ["Delayed", (q) => q.delayed],
    ["Oldest", (q) => (q.oldest_age_s == null ? "" : `${Math.round(q.oldest_age_s)} s`)],
    ["Dead-letter queue", (q) => q.dead_letter_queue || ""],
    ["Dead-lettered", (q) => q.dead_lettered],
    ["Retries", (q) => q.redeliveries],
    ["", (q) => (write ? h("button", { type: "button", class: "danger", onclick: act(() => api("POST", `/v1/queues/${encodeURIComponent(q.name)}/purge`, {})) }, "Purge") : null)],
  ], list, "No queues yet."), table("Topics", [
    ["Name", (t) => t.name],
    ["Tenant", (t) => t.tenant],
    ["Subscriptions", (t) => t.subscriptions.map((s) => (s.queue ? `queue ${s.queue}` : s.function ? `function ${s.function}` : `url ${s.url}`)).join(", ")],
  ], topics, "No topics yet."));
  if (!write) return;
  const name = h("input", { id: "queue-name", required: true, placeholder: "orders" });
  const visibility = h("input", { id: "queue-visibility", type: "number", min: "1", value: "30" });
  const receives = h("input", { id: "queue-max-receives", type: "number", min: "1", value: "5" });
  const dlq = h("input", { id: "queue-dlq", placeholder: "none" });
  root.append(h("h2", {}, "Make a queue"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), visibility_timeout_s: Number(visibility.value), max_receives: Number(receives.value) };
      if (dlq.value.trim()) body.dead_letter_queue = dlq.value.trim();
      await api("POST", "/v1/queues", body);
      render();
    }),
  }, h("div", { class: "row" }, field("Name", name), field("Visibility timeout (s)", visibility),
    field("Max receives", receives), field("Dead-letter queue", dlq)),
  h("button", { type: "submit" }, "Make queue")));
  if (!list.length) return;
  const target = select(list.map((q) => [q.name, q.name]), list[0].name, { id: "send-queue" });
  const message = jsonField("send-body", "Body", "{}");
  root.append(h("h2", {}, "Send a message"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      let body;
      try { body = message.read(); } catch { return; }
      await api("POST", `/v1/queues/${encodeURIComponent(target.value)}/messages`, { body: body === undefined ? null : body });
      render();
    }),
  }, field("Queue", target), message.element, h("button", { type: "submit" }, "Send")));
}

// ---- Sandboxes --------------------------------------------------------------------------

const SANDBOX_STATES = ["running", "paused", "ended", "lost"];

async function sandboxes() {
  const state = new URLSearchParams(location.search).get("state") || "";
  const list = await api("GET", `/v1/sandboxes?limit=100${state ? `&state=${state}` : ""}`);
  const filter = select([["", "any"], ...SANDBOX_STATES.map((s) => [s, s])], state, { id: "sandbox-filter" });
  filter.addEventListener("change", () => navigate(`/sandboxes${filter.value ? `?state=${filter.value}` : ""}`));
  const root = page("Sandboxes", field("State", filter), table("Sandboxes", [
    ["ID", (s) => link(`/sandbox/${s.id}`, s.id)],
    ["Tenant", (s) => s.tenant],
    ["Image", (s) => s.image],
    ["State", (s) => badge(s.state)],
    ["Node", (s) => s.node_id],
    ["Started", (s) => when(s.started_at)],
    ["Deadline", (s) => when(s.end_at)],
    ["Metadata", (s) => Object.entries(s.metadata || {}).map(([k, v]) => `${k}=${v}`).join(", ")],
  ], list.sandboxes, "No sandboxes yet."));
  if (!can("workloads:create")) return;
  const image = h("input", { id: "sandbox-image", placeholder: "the default image" });
  const timeout = h("input", { id: "sandbox-timeout", type: "number", min: "1", value: "600" });
  root.append(h("h2", {}, "Start a sandbox"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      const body = { timeout_s: Number(timeout.value) };
      if (image.value.trim()) body.image = image.value.trim();
      const created = await api("POST", "/v1/sandboxes", body);
      navigate(`/sandbox/${created.id}`);
    }),
  }, h("div", { class: "row" }, field("Image", image), field("Timeout (s)", timeout)),
  h("button", { type: "submit" }, "Start")));
}

async function sandboxDetail(id) {
  const path = `/v1/sandboxes/${encodeURIComponent(id)}`;
  const s = await api("GET", path);
  const running = s.state === "running";
  const [metrics, processes] = running
    ? await Promise.all([api("GET", `${path}/metrics`), api("GET", `${path}/processes`)])
    : [null, []];
  const last = metrics && metrics.samples.length ? metrics.samples[metrics.samples.length - 1] : null;
  const write = can("workloads:create");
  const act = (suffix) => guarded(async () => { await api("POST", `${path}/${suffix}`, {}); render(); });
  const root = page(`Sandbox ${id}`, facts([
    ["State", h("span", { id: "sandbox-state" }, s.state)],
    s.end_reason && ["Why it ended", s.end_reason],
    ["Tenant", s.tenant],
    ["Image", s.image],
    ["Isolation", s.isolation],
    ["Node", s.node_id],
    ["Resources", `${s.resources.cpus} CPU, ${s.resources.mem_mb} MB memory, ${s.resources.disk_mb} MB disk`],
    ["Started", when(s.started_at)],
    ["Deadline", `${when(s.end_at)} (then ${s.on_timeout === "pause" ? "paused" : "killed"})`],
    metrics && ["Memory", bytes(metrics.memory_bytes)],
    metrics && ["Disk", bytes(metrics.disk_bytes)],
    last && ["CPU, last 5 s", `${last.cpu_pct}% of one CPU`],
  ]));
  if (write && (running || s.state === "paused")) {
    root.append(h("p", {},
      running
        ? h("button", { type: "button", id: "sandbox-pause", onclick: act("pause") }, "Pause")
        : h("button", { type: "button", id: "sandbox-resume", onclick: act("resume") }, "Resume"),
      " ",
      h("button", {
        type: "button",
        class: "danger",
        id: "sandbox-delete",
        onclick: guarded(async () => {
          if (!confirm(`Delete sandbox ${id}? Its files go with it.`)) return;
          await api("DELETE", path);
          render();
        }),
      }, "Delete")));
  }
  if (!running) return;
  root.append(h("h2", {}, "Processes"), table("Processes", [
    ["PID", (p) => p.pid],
    ["Command", (p) => h("code", {}, p.cmd.join(" "))],
    ["State", (p) => p.state],
    ["Exit code", (p) => p.exit_code ?? (p.signal ? `signal ${p.signal}` : null)],
    ["Started", (p) => when(p.started_at)],
  ], processes, "No processes started through the API yet."));
  if (!write) return;
  const command = h("input", { id: "sandbox-command", required: true, placeholder: "ls -la /" });
  const out = h("pre", { id: "sandbox-output", class: "log", "aria-live": "polite" });
  root.append(h("h2", {}, "Run a command"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      out.textContent = "running…";
      const r = await api("POST", `${path}/processes`, { cmd: "sh", args: ["-c", command.value], timeout_s: 60 });
      const end = r.exit_code !== undefined && r.exit_code !== null ? `exit ${r.exit_code}` : `signal ${r.signal}`;
      out.textContent = `${r.stdout}${r.stderr}[${end}]`;
    }),
  }, field("Command", command, "run with sh -c, for up to 60 s"), h("button", { type: "submit" }, "Run")), out);
  root.append(sandboxTerminal(path), sandboxFiles(path, "/"));
}

// What a terminal shows of its output: no colours or cursor moves, lines as lines.
const plain = (text) => text
  .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")
  .replace(/\x1b[\]P^_][^\x07\x1b]*(\x07|\x1b\\)?/g, "")
  .replace(/\r\n?/g, "\n");

// A shell on a terminal in the sandbox, a line at a time: what is typed goes to it when
// Enter is pressed (its echo shows it), ^C and ^D as buttons; its output live.
function sandboxTerminal(path) {
  const screen = h("pre", { id: "sandbox-terminal", class: "log", "aria-live": "polite", "aria-label": "Terminal output" });
  const line = h("input", { id: "sandbox-terminal-input", autocomplete: "off", spellcheck: "false", disabled: true });
  let pid = null;
  const decoder = new TextDecoder();
  const type = (text) => guarded(async () => {
    if (pid != null) await api("POST", `${path}/processes/${pid}/input`, { data: text });
  });
  const keys = [["c", "\x03"], ["d", "\x04"]].map(([key, text]) =>
    h("button", { type: "button", class: "link", id: `sandbox-key-${key}`, disabled: true, onclick: type(text) }, `^${key.toUpperCase()}`));
  const open = h("button", {
    type: "button",
    id: "sandbox-terminal-open",
    onclick: guarded(async () => {
      const p = await api("POST", `${path}/processes`, { cmd: "sh", background: true, env: { TERM: "dumb" }, pty: { rows: 24, cols: 100 } });
      pid = p.pid;
      let offset = 0;
      screen.textContent = "";
      open.disabled = true;
      line.disabled = false;
      for (const k of keys) k.disabled = false;
      line.focus();
      const stop = live(() => `/ws/${path.slice(4)}/processes/${pid}?offset=${offset}`, (m) => {
        if (m.type === "stdout" || m.type === "stderr") {
          const raw = Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0));
          offset = m.offset + raw.length;
          screen.textContent = plain(screen.textContent + decoder.decode(raw, { stream: true }));
          screen.scrollTop = screen.scrollHeight;
        } else if (m.type === "exit") {
          stop();
          screen.textContent += `\n[ended: ${m.exit_code ?? `signal ${m.signal}`}]`;
          line.disabled = true;
          open.disabled = false;
          for (const k of keys) k.disabled = true;
        }
      });
    }),
  }, "Open a terminal");
  const form = h("form", {
    class: "card",
    onsubmit: (e) => { e.preventDefault(); const text = line.value; line.value = ""; type(`${text}\n`)(); },
  }, screen, field("Type a line", line, "sent with Enter; the shell runs on a 24×100 terminal"), h("p", {}, open, " ", keys));
  return h("section", {}, h("h2", {}, "Terminal"), form);
}

// The sandbox's files below `dir`: directories open in place, files download; a file
// chosen here is uploaded into `dir`.
function sandboxFiles(path, dir) {
  const section = h("section", { id: "sandbox-files" });
  const show = guarded(async (at) => {
    const entries = await api("GET", `${path}/files/list?path=${encodeURIComponent(at)}&depth=1`);
    const up = at === "/" ? null : at.replace(/\/[^/]+\/?$/, "") || "/";
    const download = (e) => guarded(async () => {
      const res = await fetch(`${path}/files?path=${encodeURIComponent(e.path)}`, { headers: { "X-API-Key": session.key } });
      if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => ({}))).error || res.statusText);
      const a = h("a", { href: URL.createObjectURL(await res.blob()), download: e.name });
      a.click();
      URL.revokeObjectURL(a.href);
    });
    const chooser = h("input", { type: "file", id: "sandbox-upload" });
    const upload = h("form", {
      class: "card",
      onsubmit: guarded(async (ev) => {
        ev.preventDefault();
        const file = chooser.files[0];
        if (!file) return;
        const target = `${at === "/" ? "" : at}/${file.name}`;
        const res = await fetch(`${path}/files?path=${encodeURIComponent(target)}`, {
          method: "PUT", headers: { "X-API-Key": session.key, "Content-Type": "application/octet-stream" }, body: file,
        });
        if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => ({}))).error || res.statusText);
        show(at);
      }),
    }, field("Upload here", chooser), h("button", { type: "submit" }, "Upload"));
    fill(section, h("h2", {}, "Files"), h("p", {}, "In ", h("code", { id: "sandbox-files-dir" }, at),
      up ? [" · ", h("button", { type: "button", class: "link", onclick: () => show(up) }, "up")] : null),
    table("Files", [
      ["Name", (e) => (e.type === "dir"
        ? h("button", { type: "button", class: "link", "data-path": e.path, onclick: () => show(e.path) }, `${e.name}/`)
        : e.name)],
      ["Type", (e) => e.type],
      ["Size", (e) => (e.type === "file" ? bytes(e.size) : null)],
      ["Modified", (e) => when(e.modified_at)],
      ["", (e) => (e.type === "file" ? h("button", { type: "button", class: "link", onclick: download(e) }, "Download") : null)],
    ], entries.sort((a, b) => a.name.localeCompare(b.name)), "Empty."), can("workloads:create") ? upload : null);
  });
  show(dir);
  return section;
}

// ---- Images, secrets, keys, audit -------------------------------------------------------

async function images() {
  const list = await api("GET", "/v1/images");
  const write = can("images:write");
  const pull = (reference, makeDefault) => guarded(async () => {
    await api("POST", "/v1/images", { reference, default: makeDefault });
    render();
  });
  const root = page("Images", table("Images", [
    ["Reference", (i) => i.reference],
    ["Default", (i) => (i.default ? "yes" : "no")],
    ["Digest", (i) => h("code", {}, i.digest.slice(0, 19))],
    ["Size", (i) => bytes(i.size_bytes)],
    ["Pulled", (i) => when(i.pulled_at)],
    ["microVM template", (i) => (i.microvm || []).map((t) =>
      `${t.node}: root ${bytes(t.root_bytes)}, ${t.snapshots} snapshot(s) ${bytes(t.snapshot_bytes)}`).join("; ") || "none"],
    ["", (i) => (write ? [
      i.default ? null : h("button", { type: "button", onclick: pull(i.reference, true) }, "Make default"),
      h("button", { type: "button", class: "danger", onclick: guarded(async () => { await api("DELETE", `/v1/images/${i.reference}`); render(); }) }, "Delete"),
    ] : null)],
  ], list, "No images pulled yet."));
  if (!write) return;
  const reference = h("input", { id: "image-reference", required: true, placeholder: "127.0.0.1:5000/busybox:1" });
  const makeDefault = h("input", { id: "image-default", type: "checkbox" });
  root.append(h("h2", {}, "Pull"), h("form", {
    class: "card",
    onsubmit: (e) => { e.preventDefault(); pull(reference.value.trim(), makeDefault.checked)(); },
  }, field("Reference", reference), h("label", { class: "check" }, makeDefault, " Default image"),
  h("button", { type: "submit" }, "Pull")));
}

async function secrets() {
  const list = await api("GET", "/v1/secrets");
  const write = can("secrets:write");
  const root = page("Secrets", h("p", { class: "muted" }, "Names and versions only: values are never shown, not even to admins."),
    table("Secrets", [
      ["Name", (s) => h("code", {}, s.name)],
      ["Tenant", (s) => s.tenant],
      ["Version", (s) => s.version],
      ["Updated", (s) => when(s.updated_at)],
      ["", (s) => (write ? h("button", { type: "button", class: "danger", onclick: guarded(async () => { await api("DELETE", `/v1/secrets/${s.name}`); render(); }) }, "Delete") : null)],
    ], list, "No secrets yet."));
  if (!write) return;
  const name = h("input", { id: "secret-name", required: true, pattern: "[A-Z_][A-Z0-9_]{0,63}" });
  const value = h("input", { id: "secret-value", type: "password", required: true, autocomplete: "off" });
  root.append(h("h2", {}, "Store a secret"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      await api("PUT", `/v1/secrets/${name.value}`, { value: value.value });
      render();
    }),
  }, h("div", { class: "row" }, field("Name", name), field("Value", value)), h("button", { type: "submit" }, "Store")));
}

async function keys() {
  const list = await api("GET", "/v1/keys");
  const root = page("Keys", table("API keys", [
    ["ID", (k) => h("code", {}, k.id)],
    ["Name", (k) => k.name],
    ["Role", (k) => k.role],
    ["Tenant", (k) => k.tenant],
    ["Created", (k) => when(k.created_at)],
    ["Expires", (k) => when(k.expires_at)],
    ["Revoked", (k) => when(k.revoked_at)],
    ["", (k) => (k.revoked_at ? null : h("button", {
      type: "button", class: "danger",
      onclick: guarded(async () => { await api("DELETE", `/v1/keys/${k.id}`); render(); }),
    }, "Revoke"))],
  ], list));
  const name = h("input", { id: "key-name", required: true });
  const role = select(["viewer", "developer", "operator", "admin"].map((r) => [r, r]), "developer", { id: "key-role" });
  const tenant = h("input", { id: "key-tenant", required: true, value: "default" });
  const shown = h("output", { id: "new-key", class: "secret" });
  root.append(h("h2", {}, "Create a key"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      const created = await api("POST", "/v1/keys", { name: name.value, role: role.value, tenant: tenant.value });
      fill(shown, h("p", {}, "The new key, shown this once:"), h("code", {}, created.key));
    }),
  }, h("div", { class: "row" }, field("Name", name), field("Role", role), field("Tenant", tenant)),
  h("button", { type: "submit" }, "Create key"), shown));
}

async function audit() {
  const params = new URLSearchParams(location.search);
  let offset = Number(params.get("offset")) || 0;
  const action = h("input", { id: "audit-action", type: "search", placeholder: "workload.create" });
  const actor = h("input", { id: "audit-actor", type: "search" });
  const outcome = select([["", "any"], ["ok", "ok"], ["denied", "denied"], ["failed", "failed"]], "", { id: "audit-outcome" });
  const list = h("div");
  const prev = h("button", { type: "button", onclick: () => { offset = Math.max(0, offset - 50); load(); } }, "Previous");
  const next = h("button", { type: "button", onclick: () => { offset += 50; load(); } }, "Next");
  page("Audit", h("form", {
    class: "filters", role: "search", "aria-label": "Filter the audit log",
    onsubmit: (e) => { e.preventDefault(); offset = 0; load(); },
  }, field("Action", action), field("Actor", actor), field("Outcome", outcome), h("button", { type: "submit" }, "Filter")),
  list, h("div", { class: "pager" }, prev, next));
  async function load() {
    const q = new URLSearchParams({ limit: 50, offset });
    if (action.value.trim()) q.set("action", action.value.trim());
    if (actor.value.trim()) q.set("actor", actor.value.trim());
    if (outcome.value) q.set("outcome", outcome.value);
    let entries;
    try { entries = await api("GET", `/v1/audit?${q}`); } catch (e) { showError(e); return; }
    fill(list, table("Audit log, newest first", [
      ["#", (a) => a.seq], ["At", (a) => when(a.at)], ["Actor", (a) => a.actor], ["Role", (a) => a.role],
      ["Tenant", (a) => a.tenant], ["Action", (a) => a.action], ["Target", (a) => a.target],
      ["Outcome", (a) => badge(a.outcome)], ["Status", (a) => a.status || null], ["Detail", (a) => a.detail],
      ["Count", (a) => a.count], ["Request id", (a) => a.request_id],
    ], entries, "Nothing recorded."));
    prev.disabled = offset === 0;
    next.disabled = entries.length < 50;
  }
  await load();
}

// ---- Benchmarks, nodes, backends --------------------------------------------------------

async function benchmarks() {
  const list = await api("GET", "/v1/benchmarks?limit=20");
  const root = page("Benchmarks", table("Benchmark runs, newest first", [
    ["ID", (b) => link(`/benchmarks/${b.id}`, b.id)],
    ["Status", (b) => badge(b.status)],
    ["Progress", (b) => `${b.progress.done}/${b.progress.total}`],
    ["Iterations", (b) => b.request.iterations],
    ["Concurrency", (b) => b.request.concurrency],
    ["Started", (b) => when(b.created_at)],
    ["Finished", (b) => when(b.finished_at)],
  ], list, "No benchmark has run yet."));
  if (!can("benchmarks:run")) return;
  const iterations = h("input", { id: "bench-iterations", type: "number", min: 1, value: 20 });
  const concurrency = h("input", { id: "bench-concurrency", type: "number", min: 1, value: 4 });
  const only = h("input", { id: "bench-backends", placeholder: "isolate, gvisor, microvm" });
  root.append(h("h2", {}, "Run the benchmark"), h("form", {
    class: "card",
    onsubmit: guarded(async (e) => {
      e.preventDefault();
      const body = { iterations: Number(iterations.value), concurrency: Number(concurrency.value) };
      const names = only.value.split(/[\s,]+/).filter(Boolean);
      if (names.length) body.backends = names;
      const report = await api("POST", "/v1/benchmarks", body);
      navigate(`/benchmarks/${report.id}`);
    }),
  }, h("div", { class: "row" }, field("Iterations", iterations), field("Concurrency", concurrency),
    field("Backends", only, "Empty: every backend.")),
  h("button", { type: "submit" }, "Start benchmark")));
}

async function benchmarkDetail(id) {
  const head = h("div"), progress = h("progress", { id: "bench-progress", max: 1, value: 0 });
  const charts = h("div", { class: "charts" }), figures = h("table", { class: "figures" });
  page(`Benchmark ${id}`, head, field("Progress", progress), charts, h("div", { class: "table-wrap" }, figures));
  const draw = (r) => {
    fill(head, facts([
      ["Status", badge(r.status)], ["Node", r.node_id], ["CPUs", r.cpus],
      ["Iterations", r.request.iterations], ["Concurrency", r.request.concurrency],
      ["Started", when(r.created_at)], ["Finished", when(r.finished_at)], r.error && ["Error", r.error],
    ]));
    progress.max = Math.max(1, r.progress.total);
    progress.value = r.progress.done;
    progress.textContent = `${r.progress.done}/${r.progress.total}`;
    window.vulcanBenchmarkCharts(r, charts, figures);
    return r.status === "running";
  };
  let running = draw(await api("GET", `/v1/benchmarks/${id}`));
  // A benchmark's runs are workloads: each one finished moves it on.
  const refresh = debounce(guarded(async () => {
    if (running) running = draw(await api("GET", `/v1/benchmarks/${id}`));
  }), 500);
  live("/ws/events?kind=workload", (ev) => { if (running && ev.type === "finished") refresh(); });
}

async function nodes() {
  const box = h("div");
  page("Nodes", box);
  const draw = async () => fill(box, nodeTable(await api("GET", "/v1/nodes")));
  await draw();
  const soon = debounce(guarded(draw), 1000);
  live("/ws/events", (ev) => { if (ev.kind === "node" || (ev.kind === "workload" && ev.type !== "created")) soon(); });
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

async function backends() {
  const list = await api("GET", "/v1/backends");
  page("Backends", table("Backends", [
    ["Backend", (b) => b.name],
    ["Available", (b) => (b.available ? "yes" : "no")],
    ["Reason", (b) => b.reason],
    ["Runtimes", (b) => b.capabilities.supported_runtimes.join(", ")],
    ["Isolations", (b) => b.capabilities.supported_isolations.join(", ")],
    ["Slots", (b) => b.capabilities.max_concurrency],
    ["Details", (b) => (b.details && Object.keys(b.details).length
      ? h("details", {}, h("summary", {}, "details"), h("pre", {}, JSON.stringify(b.details, null, 2))) : null)],
  ], list));
}

// ---- Routing ----------------------------------------------------------------------------

const ROUTES = [
  [/^\/$/, overview],
  [/^\/sign-in$/, signIn],
  [/^\/workloads$/, workloads],
  [/^\/workloads\/new$/, newWorkload],
  [/^\/workloads\/([^/]+)$/, workloadDetail],
  [/^\/functions$/, functions],
  [/^\/functions\/([^/]+)$/, functionDetail],
  [/^\/schedules$/, schedules],
  [/^\/queues$/, queues],
  [/^\/sandboxes$/, sandboxes],
  [/^\/sandbox\/([^/]+)$/, sandboxDetail],
  [/^\/images$/, images],
  [/^\/secrets$/, secrets],
  [/^\/keys$/, keys],
  [/^\/audit$/, audit],
  [/^\/benchmarks$/, benchmarks],
  [/^\/benchmarks\/([^/]+)$/, benchmarkDetail],
  [/^\/nodes$/, nodes],
  [/^\/backends$/, backends],
];

async function render() {
  leave();
  document.getElementById("alert").hidden = true;
  const path = location.pathname;
  if (!session.me && path !== "/sign-in") {
    history.replaceState(null, "", `/sign-in?next=${encodeURIComponent(path + location.search)}`);
    return render();
  }
  markNav(path);
  for (const [pattern, draw] of ROUTES) {
    const m = path.match(pattern);
    if (!m) continue;
    main.setAttribute("aria-busy", "true");
    try {
      await draw(...m.slice(1).map(decodeURIComponent));
    } catch (e) {
      if (e instanceof ApiError) {
        page("Cannot show this page", h("p", { class: "error" }, explain(e),
          e.requestId ? h("small", {}, ` (request id ${e.requestId})`) : null));
        if (e.status === 401) signOut();
      } else {
        throw e;
      }
    } finally {
      main.removeAttribute("aria-busy");
    }
    return;
  }
  page("Not found", h("p", {}, "No page here. ", link("/", "Go to the overview.")));
}

function navigate(path) {
  if (path !== location.pathname + location.search + location.hash) history.pushState(null, "", path);
  render().then(() => main.focus({ preventScroll: true }));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || a.origin !== location.origin || a.hasAttribute("download")) return;
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.pathname.startsWith("/v1/") || a.pathname.startsWith("/fn/")) return;
  e.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});
window.addEventListener("popstate", render);
document.getElementById("sign-out").addEventListener("click", signOut);

// With auth off the server answers /v1/me without a key: the dashboard opens directly.
async function boot() {
  try {
    session.me = await api("GET", "/v1/me");
  } catch (e) {
    session.me = null;
    if (session.key) sessionStorage.removeItem(KEY_STORAGE);
    session.key = "";
    if (e.status !== 401) showError(e);
  }
  chrome();
  await render();
  document.body.dataset.ready = "true";
}

boot();
