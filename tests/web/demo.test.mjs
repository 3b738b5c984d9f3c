// The web demo served by `cstack serve --web`: signs in by itself from
// dev-config.json, adds, edits and deletes notes through its UI, shows its
// sync status, and a second profile of the same user sees the notes.  Keeps
// a screenshot (build/web-demo.png).
import fs from "node:fs";
import path from "node:path";
import { run, startServer, launch, openPage, tempDir, webDir, assert, assertEq } from "./harness.mjs";

const ALICE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

await run([
  ["the demo, served by cstack serve --web, adds, edits and deletes notes and syncs them to another profile", async () => {
    // A copy of build/web with its own dev-config.json, as scripts/web-demo.sh writes it.
    const dir = tempDir("web");
    fs.cpSync(webDir, dir, { recursive: true });
    const schema = fs.readFileSync(path.join(webDir, "notes.cstack"), "utf8");
    const srv = await startServer(schema, "demo-secret", ["--web", dir]);
    fs.writeFileSync(path.join(dir, "dev-config.json"), JSON.stringify({ users: { alice: { id: ALICE, token: srv.token(ALICE) } } }));
    const wasm = await fetch(srv.origin + "/cstack-wasm.wasm");
    assertEq([wasm.status, wasm.headers.get("content-type")], [200, "application/wasm"], "the wasm's MIME type");
    assertEq((await fetch(srv.origin + "/../app.cstack")).status, 404, "nothing above the folder");

    const p1 = await openPage(await launch(tempDir("p")), srv.origin, "/");
    await p1.waitForSelector("#sync.connected", { timeout: 20000 });
    await p1.fill("#title", "Buy milk");
    await p1.fill("#body", "two litres");
    await p1.click("#add button");
    await p1.waitForSelector("#notes li .title:text('Buy milk')");
    await p1.fill("#title", "Call Bob");
    await p1.click("#add button");
    await p1.waitForFunction(() => document.querySelectorAll("#notes li").length === 2);
    // Edit (the prompt answers) and delete through the buttons.
    p1.once("dialog", (d) => d.accept("Call Bob today"));
    await p1.click("#notes li:has-text('Call Bob') button:text('Edit')");
    await p1.waitForSelector("#notes li .title:text('Call Bob today')");
    await p1.fill("#title", "Scratch");
    await p1.click("#add button");
    await p1.waitForFunction(() => document.querySelectorAll("#notes li").length === 3);
    await p1.click("#notes li:has-text('Scratch') button.delete");
    await p1.waitForFunction(() => document.querySelectorAll("#notes li").length === 2);
    assert(await p1.isHidden("#offline"), "no offline badge while connected");
    assert(await p1.isHidden("#signin"), "signed in without a form (dev-config.json)");

    const p2 = await openPage(await launch(tempDir("p")), srv.origin, "/");
    await p2.waitForFunction(() => [...document.querySelectorAll("#notes .title")].map((e) => e.textContent).sort().join("|") === "Buy milk|Call Bob today", null, { timeout: 20000 });
    const shot = path.join(webDir, "..", "web-demo.png");
    await p1.screenshot({ path: shot });
    console.error(`screenshot: ${shot}`);
  }],
]);
