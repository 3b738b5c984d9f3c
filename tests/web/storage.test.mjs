// The worker, its OPFS storage and several tabs, in Chromium.
import { run, serveStatic, launch, openPage, tempDir, BLANK, NOTES_SCHEMA, assert, assertEq } from "./harness.mjs";

const pages = { "/blank.html": BLANK };

// In the page: open the database `name` and keep it as window.db.
async function open(page, name = "notes") {
  return page.evaluate(async ([name, schema]) => {
    const { openDatabase } = await import("/cstack.js");
    window.db = await openDatabase({ name, schema });
    return window.db.info();
  }, [name, NOTES_SCHEMA]);
}
const call = (page, req) => page.evaluate((r) => window.db.call(r), req);

// In the page: a watch whose responses collect in window.seen[key].
function watch(page, key, req) {
  return page.evaluate(([key, req]) => {
    window.seen = window.seen || {};
    window.seen[key] = [];
    window.stops = window.stops || {};
    window.stops[key] = window.db.watch(req, (r) => window.seen[key].push(r));
  }, [key, req]);
}
// Waits until the last response of watch `key` satisfies `pred` (a function's source).
async function waitSeen(page, key, pred, what) {
  for (let i = 0; i < 100; i++) {
    const last = await page.evaluate((key) => { const s = window.seen[key]; return s.length ? s[s.length - 1] : null; }, key);
    if (last && pred(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  const all = await page.evaluate((key) => window.seen[key], key);
  throw new Error(`watch ${key}: never saw ${what}; saw ${JSON.stringify(all).slice(0, 500)}`);
}

await run([
  ["a live query gets its first result, each change, and nothing after stop", async () => {
    const origin = await serveStatic(undefined, pages);
    const ctx = await launch(tempDir("p"));
    const page = await openPage(ctx, origin);
    await open(page);
    await watch(page, "n", { model: "Note", kind: "count" });
    await waitSeen(page, "n", (r) => r.status === "ok" && r.data.count === 0, "count 0");
    await call(page, { model: "Note", kind: "create", payload: { data: { title: "one" } } });
    await waitSeen(page, "n", (r) => r.data.count === 1, "count 1");
    await page.evaluate(() => window.stops.n());
    const before = await page.evaluate(() => window.seen.n.length);
    await call(page, { model: "Note", kind: "create", payload: { data: { title: "two" } } });
    await new Promise((r) => setTimeout(r, 300));
    assertEq(await page.evaluate(() => window.seen.n.length), before, "no delivery after stop");
    await page.evaluate(() => { window.bad = null; window.db.watch({ model: "Nope", kind: "count" }, (r) => { window.bad = r; }); });
    await page.waitForFunction(() => window.bad !== null);
    assertEq((await page.evaluate(() => window.bad)).status, "err", "a bad watch gets an error response");
  }],

  ["a row created through the worker reads back, and bad requests resolve to error responses", async () => {
    const origin = await serveStatic(undefined, pages);
    const ctx = await launch(tempDir("p"));
    const page = await openPage(ctx, origin);
    const info = await open(page);
    assertEq(info, { storage: "opfs", role: "owner" }, "storage of the first tab");
    const made = await call(page, { model: "Note", kind: "create", payload: { data: { title: "hello" } } });
    assertEq(made.status, "ok", "create: " + JSON.stringify(made));
    const found = await call(page, { model: "Note", kind: "find_many", payload: {} });
    assertEq(found.data.map((r) => r.title), ["hello"], "find_many");
    const bad = await call(page, { model: "Nope", kind: "find_many" });
    assertEq([bad.status, bad.code], ["err", "bad_request"], "unknown model");
    const notJson = await page.evaluate(() => window.db.call(undefined));
    assertEq(notJson.status, "err", "undefined request");
  }],

  ["the database survives a reload and a browser relaunch", async () => {
    const origin = await serveStatic(undefined, pages);
    const profile = tempDir("p");
    let ctx = await launch(profile);
    let page = await openPage(ctx, origin);
    await open(page);
    await call(page, { model: "Note", kind: "create", payload: { data: { title: "kept" } } });
    await page.reload();
    await open(page);
    assertEq((await call(page, { model: "Note", kind: "count" })).data, { count: 1 }, "after reload");
    await call(page, { model: "Note", kind: "create", payload: { data: { title: "kept too" } } });
    await ctx.close();
    ctx = await launch(profile);
    page = await openPage(ctx, origin);
    const info = await open(page);
    assertEq(info.storage, "opfs", "storage after relaunch");
    assertEq((await call(page, { model: "Note", kind: "count" })).data, { count: 2 }, "after relaunch");
  }],

  ["a worker terminated in the middle of a transaction leaves the last commit, intact", async () => {
    const origin = await serveStatic(undefined, pages);
    const ctx = await launch(tempDir("p"));
    let page = await openPage(ctx, origin);
    // A big transaction, timed once on another database; then, on fresh
    // databases, the tab is closed part way through it (the worker dies with
    // it) until one attempt catches it inside (a hot journal left behind).
    const big = (tag) => ({ model: "Note", kind: "create_many", payload: { data: Array.from({ length: 20000 }, (_, i) => ({ title: tag + i, body: "x".repeat(200) })) } });
    const ms = await page.evaluate(async ([req, schema]) => {
      const { openDatabase } = await import("/cstack.js");
      const other = await openDatabase({ name: "calibrate", schema });
      const t0 = performance.now();
      await other.call(req);
      const t = performance.now() - t0;
      await other.close();
      return t;
    }, [big("c"), NOTES_SCHEMA]);
    console.error(`a 20k-row create_many took ${Math.round(ms)} ms`);
    for (const [attempt, frac] of [0.6, 0.4, 0.8, 0.3, 0.9].entries()) {
      const name = "kill" + attempt;
      await open(page, name);
      await call(page, { model: "Note", kind: "create_many", payload: { data: Array.from({ length: 500 }, (_, i) => ({ title: "base " + i })) } });
      await page.evaluate((req) => { window.db.call(req); }, big("lost "));
      await new Promise((r) => setTimeout(r, ms * frac));
      await page.close();
      page = await openPage(ctx, origin);
      const journal = await page.evaluate(async (name) => {
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("cstack");
        return (await (await dir.getFileHandle(name + ".db-journal")).getFile()).size;
      }, name);
      await open(page, name);
      const n = (await call(page, { model: "Note", kind: "count" })).data.count;
      const lost = (await call(page, { model: "Note", kind: "count", payload: { where: { title: { startsWith: "lost" } } } })).data.count;
      assert((n === 500 && lost === 0) || (n === 20500 && lost === 20000), `all or nothing: ${n} rows, ${lost} of the big transaction`);
      console.error(`attempt ${attempt} (closed at ${frac * 100}%): journal ${journal} bytes, ${n} rows after reopening`);
      if (journal > 0) {
        assertEq(n, 500, "the interrupted transaction rolled back");
        assertEq((await call(page, { model: "Note", kind: "find_many", payload: { where: { title: "base 499" } } })).data.length, 1, "the committed rows are there");
        return;
      }
    }
    throw new Error("no attempt closed the tab inside the transaction");
  }],

  ["two tabs of one profile both read and write one database", async () => {
    const origin = await serveStatic(undefined, pages);
    const ctx = await launch(tempDir("p"));
    const a = await openPage(ctx, origin), b = await openPage(ctx, origin);
    const ia = await open(a), ib = await open(b);
    assertEq([ia.role, ib.role], ["owner", "proxy"], "roles");
    await Promise.all([
      call(a, { model: "Note", kind: "create_many", payload: { data: Array.from({ length: 50 }, (_, i) => ({ title: "a" + i })) } }),
      call(b, { model: "Note", kind: "create_many", payload: { data: Array.from({ length: 50 }, (_, i) => ({ title: "b" + i })) } }),
    ]);
    for (let i = 0; i < 20; i++) {
      const r = await call(i % 2 ? a : b, { model: "Note", kind: "create", payload: { data: { title: "x" + i } } });
      assertEq(r.status, "ok", "interleaved create " + JSON.stringify(r));
    }
    assertEq((await call(b, { model: "Note", kind: "count" })).data.count, 120, "count seen by b");
    // A write in one tab reaches the other tab's watch, both ways.
    await watch(b, "b", { model: "Note", kind: "count", payload: { where: { title: "from a" } } });
    await watch(a, "a", { model: "Note", kind: "count", payload: { where: { title: "from b" } } });
    await waitSeen(b, "b", (r) => r.data && r.data.count === 0, "count 0 in b");
    await call(a, { model: "Note", kind: "create", payload: { data: { title: "from a" } } });
    await waitSeen(b, "b", (r) => r.data.count === 1, "a's write in b");
    await call(b, { model: "Note", kind: "create", payload: { data: { title: "from b" } } });
    await waitSeen(a, "a", (r) => r.data.count === 1, "b's write in a");
    // The owner's tab closes: b's worker takes the files over.
    await a.close();
    let info;
    for (let i = 0; i < 50; i++) { info = await b.evaluate(() => window.db.info()); if (info.role === "owner") break; await new Promise((r) => setTimeout(r, 100)); }
    assertEq(info.role, "owner", "b took over");
    assertEq((await call(b, { model: "Note", kind: "count" })).data.count, 122, "count after takeover");
    // b's watch moved with the files.
    await call(b, { model: "Note", kind: "create", payload: { data: { title: "from a" } } });
    await waitSeen(b, "b", (r) => r.data.count === 2, "the watch after takeover");
  }],
]);
