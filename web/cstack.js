// cstack in the browser (docs/web.md): the page-side API.  Every database
// runs in a Dedicated Worker (worker.js) that owns its OPFS files or proxies
// to the tab that does; this module only posts messages to it.
//
//   import { openDatabase } from "./cstack.js";
//   const db = await openDatabase({ name: "notes", schema: schemaText });
//   const res = await db.call({ model: "Note", kind: "create", payload: { data: {...} } });

const INITIAL_STATUS = Object.freeze({
  connected: false, connecting: false, uploading: false, downloading: false,
  downloaded: 0, downloadTotal: 0, pendingUploads: 0, lastSyncedAt: null, lastError: null,
});

class Database {
  #worker;
  #next = 1;
  #pending = new Map();
  #watches = new Map();
  #status = INITIAL_STATUS;
  #statusListeners = new Set();
  #closed = false;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = (ev) => this.#onMessage(ev.data);
    worker.onerror = (ev) => this.#failAll(ev.message || "the cstack worker failed");
  }

  #onMessage(m) {
    if (m.event === "watch") {
      const cb = this.#watches.get(m.wid);
      if (cb) cb(m.response);
      return;
    }
    if (m.event === "status") {
      this.#status = Object.freeze({ ...INITIAL_STATUS, ...m.status });
      for (const cb of this.#statusListeners) cb(this.#status);
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.ok) p.resolve(m.value); else p.reject(new Error(m.error));
  }

  #failAll(message) {
    for (const p of this.#pending.values()) p.reject(new Error(message));
    this.#pending.clear();
  }

  _send(op, args) {
    if (this.#closed) return Promise.reject(new Error("the database is closed"));
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args });
    });
  }

  /** Runs one envelope request; resolves to the envelope response object. */
  async call(request) {
    try {
      return await this._send("call", { request });
    } catch (e) {
      return { status: "err", code: "internal", message: String(e && e.message || e) };
    }
  }

  /** A live query: `callback` gets an envelope response now and after every
   *  change that may alter it.  Returns the function that stops it. */
  watch(request, callback) {
    const wid = "w" + this.#next++;
    this.#watches.set(wid, callback);
    this._send("watch", { wid, request }).then((r) => {
      if (r && r.status === "err") callback(r);
    }, (e) => callback({ status: "err", code: "internal", message: String(e.message || e) }));
    return () => {
      if (!this.#watches.delete(wid) || this.#closed) return;
      this._send("unwatch", { wid }).catch(() => {});
    };
  }

  /** Starts sync with a `cstack serve` at `server` (an origin URL). */
  connect({ server, token }) { return this._send("connect", { server, token }); }
  disconnect() { return this._send("disconnect", {}); }
  status() { return this.#status; }
  onStatus(callback) {
    this.#statusListeners.add(callback);
    return () => this.#statusListeners.delete(callback);
  }
  /** Where the data lives: {storage: "opfs"|"memory"|"shared", role: "owner"|"proxy"}. */
  info() { return this._send("info", {}); }

  async close() {
    if (this.#closed) return;
    try { await this._send("close", {}); } finally {
      this.#closed = true;
      this.#watches.clear();
      this.#statusListeners.clear();
      this.#worker.terminate();
    }
  }
}

/** Opens (creating if needed) the database `name` for `schema` (.cstack text),
 *  bootstrapping or migrating it as the native runtime does. */
export async function openDatabase({ name, schema, workerUrl }) {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,100}$/.test(name) || name.startsWith("."))
    throw new Error("openDatabase: name must be 1-100 characters of [A-Za-z0-9_.-]");
  if (typeof schema !== "string") throw new Error("openDatabase: schema must be the .cstack text");
  const url = workerUrl || new URL("./worker.js", import.meta.url);
  const db = new Database(new Worker(url, { type: "module", name: "cstack:" + name }));
  try {
    await db._send("open", { name, schema });
  } catch (e) {
    await db.close().catch(() => {});
    throw e;
  }
  return db;
}
