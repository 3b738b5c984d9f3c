// cstack's Dedicated Worker: runs the wasm runtime over OPFS sync access
// handles (docs/web.md).  One worker per origin and database owns the files,
// elected with a Web Lock; the workers of other tabs proxy their requests to
// it over a BroadcastChannel and take over when its tab closes.
//
// Messages from cstack.js: {id, op, args}; answers: {id, ok, value | error}.
// Unsolicited: {event: "watch", wid, response} and {event: "status", status}.
import createModule from "./cstack-wasm.mjs";

const OPFS_DIR = "cstack";
let mod = null;          // the wasm module, once loaded
let db = 0;              // the runtime handle (owner only)
let dbName = null;
let storage = null;      // "opfs" | "memory"
let role = null;         // "owner" | "proxy"
let channel = null;      // BroadcastChannel shared by the tabs of one database
const me = Math.random().toString(36).slice(2) + Date.now().toString(36);
const pendingProxy = new Map();  // request id -> resolve, for proxied calls
let nextProxyId = 1;

// ---- files: OPFS sync handles or memory, behind the VFS's host calls ------

const files = new Map();   // id -> {handle} | {mem: Uint8Array, size}
const byName = new Map();  // name -> id
let nextFile = 1;

function addFile(name, file) {
  const id = nextFile++;
  files.set(id, file);
  if (name !== null) byName.set(name, id);
  return id;
}

function memGrow(f, size) {
  if (size <= f.mem.length) return;
  const bigger = new Uint8Array(Math.max(size, f.mem.length * 2, 4096));
  bigger.set(f.mem.subarray(0, f.size));
  f.mem = bigger;
}

const host = {
  lookup(name, create) {
    if (name !== null && byName.has(name)) return byName.get(name);
    if (!create) return -1;
    return addFile(name, { mem: new Uint8Array(0), size: 0 });
  },
  read(id, dst, off) {
    const f = files.get(id);
    if (!f) return -1;
    try {
      if (f.handle) return f.handle.read(dst, { at: off });
      const n = Math.max(0, Math.min(dst.length, f.size - off));
      dst.set(f.mem.subarray(off, off + n));
      return n;
    } catch (e) { return -1; }
  },
  write(id, src, off) {
    const f = files.get(id);
    if (!f) return -1;
    try {
      if (f.handle) return f.handle.write(src, { at: off }) === src.length ? 0 : -1;
      memGrow(f, off + src.length);
      f.mem.set(src, off);
      f.size = Math.max(f.size, off + src.length);
      return 0;
    } catch (e) { return -1; }
  },
  truncate(id, size) {
    const f = files.get(id);
    if (!f) return -1;
    try {
      if (f.handle) f.handle.truncate(size);
      else { memGrow(f, size); f.mem.fill(0, Math.min(size, f.size)); f.size = size; }
      return 0;
    } catch (e) { return -1; }
  },
  size(id) {
    const f = files.get(id);
    if (!f) return -1;
    try { return f.handle ? f.handle.getSize() : f.size; } catch (e) { return -1; }
  },
  flush(id) {
    const f = files.get(id);
    try { if (f && f.handle) f.handle.flush(); return 0; } catch (e) { return -1; }
  },
  release(id) {
    const f = files.get(id);
    if (f && !f.handle) files.delete(id);
  },
};

// Opens the database file and its journal as sync handles; false when the
// browser has no OPFS sync access handles here.
async function openOpfsFiles(path) {
  if (!(self.navigator && navigator.storage && navigator.storage.getDirectory)) return false;
  if (typeof FileSystemFileHandle === "undefined" ||
      !FileSystemFileHandle.prototype.createSyncAccessHandle) return false;
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle(OPFS_DIR, { create: true });
  for (const name of [path, path + "-journal"]) {
    const fh = await dir.getFileHandle(name, { create: true });
    addFile(name, { handle: await fh.createSyncAccessHandle() });
  }
  return true;
}

function closeOpfsFiles() {
  for (const f of files.values()) if (f.handle) { try { f.handle.close(); } catch (e) { /* gone */ } }
  files.clear();
  byName.clear();
}

// ---- strings across the wasm boundary -----------------------------------

function withCString(text, fn) {
  const n = mod.lengthBytesUTF8(text) + 1;
  const p = mod._malloc(n);
  if (!p) throw new Error("out of memory");
  try {
    mod.stringToUTF8(text, p, n);
    return fn(p, n - 1);
  } finally { mod._free(p); }
}

function takeCString(p) {
  if (!p) return null;
  const s = mod.UTF8ToString(p);
  mod._csw_free(p);
  return s;
}

// ---- the owner's operations ---------------------------------------------

async function loadModule() {
  if (mod) return;
  const opts = {};
  if (typeof process !== "undefined" && process.versions && process.versions.node) {
    // Node's fetch cannot read a file path: hand the bytes over.
    const fs = await import("node:fs");
    opts.wasmBinary = fs.readFileSync(new URL("./cstack-wasm.wasm", import.meta.url));
  }
  mod = await createModule(opts);
  mod.cstackHost = host;
}

async function ownerOpen(name, schema) {
  await loadModule();
  const path = name + ".db";
  let opfs = false;
  let why = "";
  try { opfs = await openOpfsFiles(path); } catch (e) { why = String(e && e.message || e); }
  storage = opfs ? "opfs" : "memory";
  if (!opfs) {
    closeOpfsFiles();
    console.warn(`cstack: OPFS sync access handles are not available${why ? " (" + why + ")" : ""}; ` +
      `database "${name}" is kept in memory and will not persist`);
  }
  const h = withCString(schema, (ps) => withCString(path, (pp) => mod._csw_open(ps, pp)));
  if (!h) throw new Error(mod.UTF8ToString(mod._csw_error()));
  db = h;
}

const BAD_REQUEST = (message) => ({ status: "err", code: "bad_request", message });

function ownerCall(request) {
  let text;
  try { text = typeof request === "string" ? request : JSON.stringify(request); }
  catch (e) { return BAD_REQUEST("request: cannot be encoded as JSON: " + e.message); }
  if (typeof text !== "string") text = "null";   // the envelope explains what is missing
  const out = withCString(text, (p, n) => takeCString(mod._csw_call(db, p, n)));
  if (out === null) return { status: "err", code: "internal", message: "out of memory" };
  pump();
  for (const f of afterCallHooks) f();
  return JSON.parse(out);
}
const afterCallHooks = [];

// ---- live queries -------------------------------------------------------
// The owner runs every tab's watches; each delivery goes to the page of the
// worker that asked (this one's directly, a proxy's over the channel).

const owned = new Map();     // number -> {ptr, to, wid}
let nextWatch = 1;
let pumpTimer = null;

host.watchEvent = (num, text) => {
  const w = owned.get(num);
  if (!w) return;
  const response = JSON.parse(text);
  if (w.to === me) self.postMessage({ event: "watch", wid: w.wid, response });
  else channel.postMessage({ to: w.to, event: "watch", wid: w.wid, response });
};

function pump() {
  if (pumpTimer) { clearTimeout(pumpTimer); pumpTimer = null; }
  if (!db) return;
  const next = mod._csw_pump(db);
  if (next >= 0) pumpTimer = setTimeout(pump, next);
}

function ownerWatch({ wid, request, throttleMs }, from) {
  let text;
  try { text = JSON.stringify(request); } catch (e) { return BAD_REQUEST("request: " + e.message); }
  const num = nextWatch++;
  const w = { ptr: 0, to: from, wid };
  owned.set(num, w);   // before: the first delivery may come at once
  w.ptr = withCString(text || "null", (p, n) => mod._csw_watch(db, p, n, throttleMs ?? -1, num));
  if (!w.ptr) {
    owned.delete(num);
    // The runtime's message embeds the envelope's error response: hand that on.
    const msg = mod.UTF8ToString(mod._csw_errmsg(db));
    try { const r = JSON.parse(msg.replace(/^watch: /, "")); if (r && r.status === "err") return r; } catch (e) { /* plain text */ }
    return BAD_REQUEST(msg);
  }
  pump();
  return { status: "ok", data: null };
}

function ownerUnwatch({ wid }, from) {
  for (const [num, w] of owned) {
    if (w.wid === wid && w.to === from) { mod._csw_watch_stop(w.ptr); owned.delete(num); }
  }
  return null;
}

// ---- sync (owner only) --------------------------------------------------
// A round is cstack_sync_run_once in C (push the queue, pull until caught
// up) over synchronous XHR (src/web/http.c); between rounds the worker
// follows /v1/stream with fetch and runs a round when the server announces
// changes, and after every local write.  Failures retry with backoff.

host.http = (url, headers, body) => {
  host.httpBody = new Uint8Array(0);
  host.httpHeaders = "";
  host.httpError = "";
  try {
    const x = new XMLHttpRequest();
    x.open(body ? "POST" : "GET", url, false);
    x.responseType = "arraybuffer";
    for (const line of headers.split("\n")) {
      const i = line.indexOf(":");
      if (i > 0) x.setRequestHeader(line.slice(0, i).trim(), line.slice(i + 1).trim());
    }
    x.send(body);
    host.httpBody = new Uint8Array(x.response || new ArrayBuffer(0));
    host.httpHeaders = x.getAllResponseHeaders();
    return x.status;
  } catch (e) {
    host.httpError = String(e && e.message || e) || "network error";
    return 0;
  }
};

let sync = null;   // {server, token, attempts, timer, abort, cursor}
let status = { connected: false, connecting: false, uploading: false, downloading: false,
  downloaded: 0, downloadTotal: 0, pendingUploads: 0, lastSyncedAt: null, lastError: null };

function publishStatus(patch) {
  status = { ...status, ...patch };
  self.postMessage({ event: "status", status });
  if (channel) channel.postMessage({ to: "all", event: "status", status });
}

host.syncStatus = (json) => {
  const st = JSON.parse(json);
  if (!sync) return;
  sync.cursor = st.cursor;
  publishStatus({
    uploading: st.state === "uploading", downloading: st.state === "downloading",
    connecting: st.state === "connecting",
    downloaded: Math.max(0, st.rowsDone), downloadTotal: Math.max(0, st.rowsTotal),
    pendingUploads: Math.max(0, st.pending),
    lastSyncedAt: st.lastSyncedMs > 0 ? st.lastSyncedMs : status.lastSyncedAt,
    lastError: st.lastError || (st.event === "error" ? "sync failed" : status.lastError),
  });
};

// One round; true when it went through.
function syncRound() {
  if (!sync || !db) return false;
  const s = sync;
  const rc = withCString(s.server, (pu) => withCString(s.token, (pt) => mod._csw_sync_once(db, pu, pt)));
  if (sync !== s) return false;
  if (rc !== 0) {
    publishStatus({ connected: false, uploading: false, downloading: false, connecting: false,
      lastError: mod.UTF8ToString(mod._csw_errmsg(db)) });
    return false;
  }
  publishStatus({ uploading: false, downloading: false, connecting: false, lastError: null,
    lastSyncedAt: Date.now(), pendingUploads: Math.max(0, mod._csw_sync_pending(db)) });
  return true;
}

function retryLater() {
  if (!sync) return;
  if (sync.abort) { sync.abort.abort(); sync.abort = null; }
  const n = Math.min(sync.attempts++, 8);
  const delay = Math.min(30000, 200 * 2 ** n) * (0.5 + Math.random() / 2);
  publishStatus({ connected: false });
  clearTimeout(sync.timer);
  sync.timer = setTimeout(syncConnect, delay);
}

// A round, then the stream until it ends; then again after a backoff.
async function syncConnect() {
  if (!sync) return;
  const s = sync;
  clearTimeout(s.timer);
  publishStatus({ connecting: true });
  if (!syncRound()) return retryLater();
  s.attempts = 0;
  s.abort = new AbortController();
  try {
    const res = await fetch(`${s.server}/v1/stream?since=${s.cursor || 0}`, {
      signal: s.abort.signal,
      headers: { Authorization: "Bearer " + s.token, "X-Cstack-Site": mod.UTF8ToString(mod._csw_site(db)),
        "X-Cstack-Schema": mod.UTF8ToString(mod._csw_schema_hash(db)) },
    });
    if (!res.ok) throw new Error(`stream: HTTP ${res.status}`);
    publishStatus({ connected: true, connecting: false });
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error("stream: the server closed the stream");
      // Anything but a keep-alive comment announces changes: pull them.
      if (sync !== s) return;
      const text = new TextDecoder().decode(value);
      if (/^(event|data):/m.test(text) && !syncRound()) throw new Error(status.lastError || "sync failed");
    }
  } catch (e) {
    if (sync !== s || (e && e.name === "AbortError" && !s.abort)) return;
    publishStatus({ lastError: String(e && e.message || e) });
    retryLater();
  }
}

// After a local write: push it now rather than at the next event.
afterCallHooks.push(() => {
  if (sync && status.connected && mod._csw_sync_pending(db) > 0) {
    clearTimeout(sync.push);
    sync.push = setTimeout(() => { if (sync && status.connected && !syncRound()) retryLater(); }, 0);
  }
});

self.addEventListener("online", () => { if (sync && !status.connected) syncConnect(); });

function ownerConnect({ server, token }) {
  if (typeof server !== "string" || !/^https?:\/\//.test(server)) throw new Error("connect: server must be an http:// or https:// origin");
  if (typeof token !== "string" || !token) throw new Error("connect: a token is required");
  ownerDisconnect();
  sync = { server: server.replace(/\/+$/, ""), token, attempts: 0, timer: null, abort: null, cursor: 0 };
  syncConnect();
  return null;
}

function ownerDisconnect() {
  if (!sync) return null;
  clearTimeout(sync.timer);
  clearTimeout(sync.push);
  const a = sync.abort;
  sync = null;
  if (a) a.abort();
  publishStatus({ connected: false, connecting: false, uploading: false, downloading: false });
  return null;
}

function ownerClose() {
  ownerDisconnect();
  if (pumpTimer) { clearTimeout(pumpTimer); pumpTimer = null; }
  if (db) {
    for (const w of owned.values()) mod._csw_watch_stop(w.ptr);
    owned.clear();
    mod._csw_close(db);
    db = 0;
  }
  closeOpfsFiles();
}

// ---- roles: owner or proxy ----------------------------------------------

// This page's watches, kept to register them again with a new owner.
const myWatches = new Map();  // wid -> args
let myConnect = null;         // this page's db.connect arguments

async function ownerServe(op, args, from) {
  switch (op) {
    case "call": return ownerCall(args.request);
    case "watch": return ownerWatch(args, from);
    case "unwatch": return ownerUnwatch(args, from);
    case "connect": return ownerConnect(args);
    case "disconnect": return ownerDisconnect();
    case "gone": for (const w of [...owned.values()]) if (w.to === from) ownerUnwatch(w, from); return null;
    default: throw new Error("unknown operation " + op);
  }
}

function proxyRequest(op, args) {
  return new Promise((resolve, reject) => {
    const rid = me + ":" + nextProxyId++;
    pendingProxy.set(rid, { resolve, reject, op, args });
    channel.postMessage({ to: "owner", rid, from: me, op, args });
  });
}

function onChannel(ev) {
  const m = ev.data;
  if (m.to === "owner" && role === "owner") {
    ownerServe(m.op, m.args, m.from).then(
      (value) => channel.postMessage({ to: m.from, rid: m.rid, ok: true, value }),
      (e) => channel.postMessage({ to: m.from, rid: m.rid, ok: false, error: String(e.message || e) }));
  } else if (m.to === me && pendingProxy.has(m.rid)) {
    const p = pendingProxy.get(m.rid);
    pendingProxy.delete(m.rid);
    if (m.ok) p.resolve(m.value); else p.reject(new Error(m.error));
  } else if (m.to === me && m.event === "watch") {
    if (myWatches.has(m.wid)) self.postMessage({ event: "watch", wid: m.wid, response: m.response });
  } else if (m.to === "all" && m.event === "status" && role === "proxy") {
    self.postMessage({ event: "status", status: m.status });
  } else if (m.to === "owner-changed" && role === "proxy") {
    // A new owner: ask again what the old one never answered, and watch again.
    for (const [rid, p] of pendingProxy)
      channel.postMessage({ to: "owner", rid, from: me, op: p.op, args: p.args });
    for (const args of myWatches.values()) proxyRequest("watch", args).catch(() => {});
    if (myConnect) proxyRequest("connect", myConnect).catch(() => {});
  }
}

// Takes the Web Lock for this database.  Resolves once this worker is the
// owner or has become a proxy; a proxy keeps waiting for the lock in the
// background and becomes the owner when the current owner's tab goes away.
function elect(name, schema) {
  return new Promise((resolve, reject) => {
    let settled = false;
    navigator.locks.request("cstack-db:" + name, { ifAvailable: true }, async (lock) => {
      if (!lock) {
        role = "proxy";
        settled = true;
        resolve();
        navigator.locks.request("cstack-db:" + name, { signal: lockAbort.signal }, async () => {
          await ownerOpen(name, schema);
          role = "owner";
          for (const args of myWatches.values()) ownerWatch(args, me);
          if (myConnect) ownerConnect(myConnect);
          channel.postMessage({ to: "owner-changed" });
          return holdLock();
        }).catch(() => { /* closed while waiting */ });
        return;
      }
      try { await ownerOpen(name, schema); }
      catch (e) { settled = true; reject(e); return; }
      role = "owner";
      settled = true;
      resolve();
      return holdLock();                  // held until close or the worker ends
    }).catch((e) => { if (!settled) reject(e); });
  });
}
let releaseLock = null;                 // ends the held Web Lock (db.close)
const lockAbort = new AbortController(); // a proxy's wait for the lock
const holdLock = () => new Promise((r) => { releaseLock = r; });

// ---- messages from cstack.js --------------------------------------------

async function handle(msg) {
  const { op, args } = msg;
  if (op === "open") {
    dbName = args.name;
    channel = new BroadcastChannel("cstack-db:" + args.name);
    channel.onmessage = onChannel;
    if (self.navigator && navigator.locks) await elect(args.name, args.schema);
    else { await ownerOpen(args.name, args.schema); role = "owner"; }
    return null;
  }
  if (op === "watch") myWatches.set(args.wid, args);
  if (op === "connect") myConnect = args;
  if (op === "disconnect") myConnect = null;
  if (op === "unwatch") myWatches.delete(args.wid);
  if (op === "close") {
    // The owner drops this tab's watches (no answer awaited: it may be gone).
    if (role === "proxy") channel.postMessage({ to: "owner", rid: "gone", from: me, op: "gone", args: {} });
    myWatches.clear();
    ownerClose();
    lockAbort.abort();
    if (releaseLock) releaseLock();
    if (channel) channel.close();
    role = null;
    return null;
  }
  if (op === "info") return { storage: role === "owner" ? storage : "shared", role };
  if (role === "owner") return ownerServe(op, args, me);
  if (role === "proxy") return proxyRequest(op, args);
  throw new Error("the database is not open");
}

self.onmessage = (ev) => {
  const msg = ev.data;
  handle(msg).then(
    (value) => self.postMessage({ id: msg.id, ok: true, value }),
    (e) => self.postMessage({ id: msg.id, ok: false, error: String(e && e.message || e) }));
};
