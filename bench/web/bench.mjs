// Browser benchmarks (docs/web.md), in Chromium, one run, printed as ratios:
//  1. 10k creates in one transaction and reading the 10k rows back, through
//     cstack's worker (envelope `transaction` of creates, `find_many`) vs the
//     same SQL on the official @sqlite.org/sqlite-wasm with its OPFS VFS;
//  2. commit-to-watch latency across two tabs;
//  3. initial sync of ROWS (default 100k) rows from `cstack serve` into a
//     fresh browser database.
// Run: make web build && node bench/web/bench.mjs
import fs from "node:fs";
import path from "node:path";
import { serveStatic, startServer, launch, openPage, tempDir, cleanup, repo, BLANK } from "../../tests/web/harness.mjs";

const N = 10000;
const SYNC_ROWS = Number(process.env.ROWS || 100000);
const SCHEMA = `
auth User { id Uuid }
model Note {
  id      Uuid   @id @default(uuid())
  ownerId Uuid
  title   String
  body    String?
  n       Int    @default(0)
  @@allow('all', ownerId == auth().id)
}
`;
const OWNER = "11111111-1111-4111-8111-111111111111";
const official = path.join(repo, "web/node_modules/@sqlite.org/sqlite-wasm/dist");

async function main() {
  const srv = await startServer(SCHEMA);
  const extra = { "/blank.html": BLANK };
  for (const f of fs.readdirSync(official)) extra["/sqlite-wasm/" + f] = { file: path.join(official, f) };
  extra["/official-worker.mjs"] = { file: path.join(repo, "bench/web/official-worker.mjs") };
  const origin = await serveStatic(undefined, extra, srv.origin);
  const ctx = await launch(tempDir("bench"));
  const page = await openPage(ctx, origin);

  const ours = await page.evaluate(async ([schema, n, owner]) => {
    const { openDatabase } = await import("/cstack.js");
    const db = await openDatabase({ name: "bench", schema });
    const requests = Array.from({ length: n }, (_, i) => ({ model: "Note", kind: "create", payload: { data: { ownerId: owner, title: "note " + i, body: "body of note " + i, n: i } } }));
    let t0 = performance.now();
    const r = await db.call({ kind: "transaction", payload: { requests } });
    const create = performance.now() - t0;
    if (r.status !== "ok") throw new Error(JSON.stringify(r).slice(0, 300));
    t0 = performance.now();
    const rows = await db.call({ model: "Note", kind: "find_many", payload: { orderBy: [{ field: "n" }] } });
    const read = performance.now() - t0;
    await db.close();
    return { create, read, rows: rows.data.length };
  }, [SCHEMA, N, OWNER]);

  const base = await page.evaluate(async (n) => new Promise((resolve, reject) => {
    const w = new Worker("/official-worker.mjs", { type: "module" });
    w.onmessage = (ev) => { resolve(ev.data); w.terminate(); };
    w.onerror = (e) => reject(new Error(e.message));
    w.postMessage({ n });
  }), N);

  // Commit-to-watch latency across two tabs: the second tab proxies to the first.
  const tabA = page, tabB = await openPage(ctx, origin);
  const openIn = (p) => p.evaluate(async (schema) => { const { openDatabase } = await import("/cstack.js"); window.db = await openDatabase({ name: "latency", schema }); }, SCHEMA);
  await openIn(tabA); await openIn(tabB);
  await tabB.evaluate(() => { window.seenAt = []; window.db.watch({ model: "Note", kind: "count" }, () => window.seenAt.push(performance.timeOrigin + performance.now())); });
  const lat = [];
  for (let i = 0; i < 30; i++) {
    const before = await tabB.evaluate(() => window.seenAt.length);
    const t = await tabA.evaluate(async (owner) => { const t = performance.timeOrigin + performance.now(); await window.db.call({ model: "Note", kind: "create", payload: { data: { ownerId: owner, title: "x" } } }); return t; }, OWNER);
    await tabB.waitForFunction((b) => window.seenAt.length > b, before);
    lat.push((await tabB.evaluate(() => window.seenAt[window.seenAt.length - 1])) - t);
  }
  lat.sort((a, b) => a - b);

  // Initial sync: ROWS rows pushed by one browser database, pulled into a fresh one.
  const token = srv.token(OWNER);
  const seeded = await page.evaluate(async ([schema, rows, owner, token]) => {
    const { openDatabase } = await import("/cstack.js");
    const db = await openDatabase({ name: "seed", schema });
    for (let i = 0; i < rows; i += 10000)
      await db.call({ model: "Note", kind: "create_many", payload: { data: Array.from({ length: Math.min(10000, rows - i) }, (_, k) => ({ ownerId: owner, title: "row " + (i + k), body: "a body of some forty characters......", n: i + k })) } });
    await db.connect({ server: location.origin, token });
    for (;;) { const s = db.status(); if (s.connected && s.pendingUploads === 0 && !s.uploading) break; await new Promise((r) => setTimeout(r, 100)); }
    await db.close();
    return rows;
  }, [SCHEMA, SYNC_ROWS, OWNER, token]);
  const fresh = await openPage(await launch(tempDir("fresh")), origin);
  const initial = await fresh.evaluate(async ([schema, rows, token]) => {
    const { openDatabase } = await import("/cstack.js");
    const db = await openDatabase({ name: "fresh", schema });
    const t0 = performance.now();
    await db.connect({ server: location.origin, token });
    for (;;) { const c = await db.call({ model: "Note", kind: "count" }); if (c.data.count >= rows) break; await new Promise((r) => setTimeout(r, 50)); }
    return performance.now() - t0;
  }, [SCHEMA, seeded, token]);

  const f = (x) => x.toFixed(1);
  console.log(`10k creates in one transaction: cstack ${f(ours.create)} ms, official sqlite-wasm (opfs-sahpool) ${f(base.create)} ms, ratio ${(ours.create / base.create).toFixed(2)}x`);
  console.log(`10k rows read:                  cstack ${f(ours.read)} ms, official sqlite-wasm (opfs-sahpool) ${f(base.read)} ms, ratio ${(ours.read / base.read).toFixed(2)}x`);
  console.log(`commit-to-watch across two tabs (30 writes): median ${f(lat[15])} ms, max ${f(lat[29])} ms`);
  console.log(`initial sync of ${seeded} rows into a fresh browser database: ${f(initial)} ms (${Math.round(seeded / (initial / 1000))} rows/s)`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; }).finally(cleanup);
