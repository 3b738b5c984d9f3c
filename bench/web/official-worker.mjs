// The baseline of bench/web/bench.mjs: the official @sqlite.org/sqlite-wasm
// with its OPFS VFS (opfs-sahpool: sync access handles, as ours) in a worker.
import sqlite3InitModule from "/sqlite-wasm/index.mjs";

self.onmessage = async (ev) => {
  const { n } = ev.data;
  const sqlite3 = await sqlite3InitModule();
  const pool = await sqlite3.installOpfsSAHPoolVfs({ name: "bench-pool", clearOnInit: true });
  const db = new pool.OpfsSAHPoolDb("/bench.db");
  db.exec("PRAGMA journal_mode=DELETE; CREATE TABLE Note(id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT, n INTEGER NOT NULL DEFAULT 0)");
  let t0 = performance.now();
  db.exec("BEGIN");
  const ins = db.prepare("INSERT INTO Note(id, title, body, n) VALUES (?, ?, ?, ?)");
  for (let i = 0; i < n; i++) {
    ins.bind([crypto.randomUUID(), "note " + i, "body of note " + i, i]).stepReset();
  }
  ins.finalize();
  db.exec("COMMIT");
  const create = performance.now() - t0;
  t0 = performance.now();
  const rows = [];
  db.exec({ sql: "SELECT id, title, body, n FROM Note ORDER BY n", rowMode: "object", callback: (r) => { rows.push(r); } });
  const read = performance.now() - t0;
  db.close();
  self.postMessage({ create, read, rows: rows.length });
};
