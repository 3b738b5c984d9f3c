// Sync through `cstack serve` between browser profiles, in Chromium.
import { run, serveStatic, startServer, setOffline, launch, openPage, tempDir, BLANK, assertEq } from "./harness.mjs";

const SCHEMA = `
auth User { id Uuid }
model Note {
  id      Uuid   @id @default(uuid())
  ownerId Uuid
  title   String
  @@allow('all', ownerId == auth().id)
}
`;
const ALICE = "11111111-1111-4111-8111-111111111111";
const BOB = "22222222-2222-4222-8222-222222222222";

async function device(origin, token) {
  const ctx = await launch(tempDir("p"));
  const page = await openPage(ctx, origin);
  await page.evaluate(async ([schema, token]) => {
    const { openDatabase } = await import("/cstack.js");
    window.db = await openDatabase({ name: "notes", schema });
    window.statuses = [];
    window.db.onStatus((s) => window.statuses.push(s));
    window.rows = null;
    window.db.watch({ model: "Note", kind: "find_many", payload: { orderBy: [{ field: "title" }] } }, (r) => { window.rows = r; });
    await window.db.connect({ server: location.origin, token });
  }, [SCHEMA, token]);
  return page;
}

const create = (page, ownerId, title) => page.evaluate(([ownerId, title]) =>
  window.db.call({ model: "Note", kind: "create", payload: { data: { ownerId, title } } }), [ownerId, title]);

async function waitTitles(page, want, what) {
  let got;
  for (let i = 0; i < 200; i++) {
    got = await page.evaluate(() => window.rows && window.rows.status === "ok" ? window.rows.data.map((r) => r.title) : null);
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const st = await page.evaluate(() => window.db.status());
  throw new Error(`${what}: live query shows ${JSON.stringify(got)}, expected ${JSON.stringify(want)}; status ${JSON.stringify(st)}`);
}

await run([
  ["two profiles of one user sync through the server, offline edits arrive after reconnecting, and another user's rows never appear", async () => {
    const srv = await startServer(SCHEMA);
    const origin = await serveStatic(undefined, { "/blank.html": BLANK }, srv.origin);
    const a1 = await device(origin, srv.token(ALICE));
    const a2 = await device(origin, srv.token(ALICE));
    const b = await device(origin, srv.token(BOB));
    assertEq((await create(a1, ALICE, "from a1")).status, "ok", "create in a1");
    await waitTitles(a2, ["from a1"], "a1's write in a2's live query");
    assertEq((await create(b, BOB, "bob's")).status, "ok", "create in b");
    await waitTitles(b, ["bob's"], "b sees only its own");
    const st = await a2.evaluate(() => window.db.status());
    assertEq([st.connected, st.lastError], [true, null], "a2's status");
    // Offline: a2 edits; a1 gets it once a2 is back.
    setOffline(true);
    await a2.evaluate(() => window.db.call({ model: "Note", kind: "update_many", payload: { where: { title: "from a1" }, data: { title: "edited offline" } } }));
    await a2.evaluate(() => window.db.call({ model: "Note", kind: "create", payload: { data: { ownerId: "11111111-1111-4111-8111-111111111111", title: "made offline" } } }));
    await waitTitles(a2, ["edited offline", "made offline"], "a2's own edits while offline");
    await new Promise((r) => setTimeout(r, 500));
    const off = await a2.evaluate(() => window.db.status());
    assertEq(off.connected, false, "a2 knows it is offline");
    setOffline(false);
    await waitTitles(a1, ["edited offline", "made offline"], "a2's offline edits in a1 after reconnecting");
    await waitTitles(a2, ["edited offline", "made offline"], "a2 after reconnecting");
    await waitTitles(b, ["bob's"], "b still sees only its own rows");
    // Bob's row never reached Alice's devices.
    assertEq((await a1.evaluate(() => window.db.call({ model: "Note", kind: "count", payload: { where: { title: "bob's" } } }))).data.count, 0, "bob's row in a1");
  }],
]);
