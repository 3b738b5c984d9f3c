// Shared by the browser tests (tests/web/*.test.mjs): a static server for
// build/web on loopback, Debian's Chromium through playwright-core with
// persistent profiles (plain launch() keeps OPFS in memory), and cleanup
// that runs on failure too.  A browser that cannot start fails the test.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
const require = createRequire(path.join(repo, "web/package.json"));
const { chromium } = require("playwright-core");

export const webDir = process.env.CSTACK_WEB_DIR || path.join(repo, "build/web");
const MIME = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".css": "text/css", ".cstack": "text/plain", ".json": "application/json" };

const cleanups = [];
export function onCleanup(fn) { cleanups.push(fn); }
export async function cleanup() {
  while (cleanups.length) { try { await cleanups.pop()(); } catch (e) { console.error("cleanup:", e); } }
}

// Serves `dir` (default build/web) plus `extra` {path: text}, and relays
// /v1/* to `api` (a cstack serve origin) so that the page sees one origin;
// resolves to its origin.  The relay's `offline` flag refuses every request.
export const relay = { offline: false, sockets: new Set() };
export async function serveStatic(dir = webDir, extra = {}, api = null) {
  if (!fs.existsSync(path.join(dir, "cstack.js"))) throw new Error(`${dir}/cstack.js is missing: run make web`);
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (api && p.startsWith("/v1/")) {
      if (relay.offline) { req.socket.destroy(); return; }
      const up = http.request(api + req.url, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      relay.sockets.add(res);
      res.on("close", () => relay.sockets.delete(res));
      req.pipe(up);
      return;
    }
    const x = extra[p];
    if (x && x.file) { res.writeHead(200, { "content-type": MIME[path.extname(x.file)] || "application/octet-stream" }); fs.createReadStream(x.file).pipe(res); return; }
    if (x !== undefined) { res.writeHead(200, { "content-type": "text/html" }); res.end(x); return; }
    const file = path.join(dir, path.normalize(p === "/" ? "/index.html" : p));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": MIME[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  onCleanup(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${server.address().port}`;
}

export function tempDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `cstack-web-${tag}-`));
  onCleanup(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

// A Chromium with a persistent profile in `profileDir`.
export async function launch(profileDir) {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!fs.existsSync(executablePath)) throw new Error(`Chromium not found at ${executablePath}: run scripts/install-web-deps.sh`);
  const ctx = await chromium.launchPersistentContext(profileDir, {
    executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu"], timeout: 60000,
  });
  onCleanup(() => ctx.close().catch(() => {}));
  return ctx;
}

// A page of `ctx` at `origin`, with its console errors forwarded to stderr.
export async function openPage(ctx, origin, pathname = "/blank.html") {
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") console.error(`[page ${m.type()}]`, m.text()); });
  page.on("pageerror", (e) => console.error("[page error]", e.message));
  await page.goto(origin + pathname);
  return page;
}

// Cuts the relay (every open stream too) or restores it.
export function setOffline(off) {
  relay.offline = off;
  if (off) for (const r of relay.sockets) r.destroy();
}

// Starts `cstack serve` for `schemaText` on a free loopback port; resolves
// to {origin, token(sub)}.  Stopped at cleanup.
export async function startServer(schemaText, secret = "web-test-secret", extraArgs = []) {
  const { spawn, execFileSync } = await import("node:child_process");
  const cli = process.env.CSTACK_CLI || path.join(repo, "build/cstack");
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run make build`);
  const dir = tempDir("srv");
  fs.writeFileSync(path.join(dir, "app.cstack"), schemaText);
  const child = spawn(cli, ["serve", "--schema", path.join(dir, "app.cstack"), "--db", path.join(dir, "server.db"),
    "--port", "0", "--jwt-secret", secret, ...extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
  onCleanup(() => new Promise((r) => { if (child.exitCode !== null) return r(); child.on("exit", r); child.kill("SIGTERM"); setTimeout(() => child.kill("SIGKILL"), 5000); }));
  let errText = "";
  child.stderr.on("data", (d) => { errText = (errText + d).slice(-4000); });
  const origin = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("cstack serve did not start: " + errText)), 15000);
    child.stdout.on("data", (d) => { out += d; const m = /listening on (http:\/\/[^ ]+)/.exec(out); if (m) { clearTimeout(t); resolve(m[1]); } });
    child.on("exit", (code) => reject(new Error(`cstack serve exited ${code}: ${errText}`)));
  });
  const token = (sub) => execFileSync(cli, ["token", "--secret", secret, "--sub", sub]).toString().trim();
  return { origin, token };
}

export const BLANK = "<!doctype html><meta charset=utf-8><title>cstack test</title><body></body>";

export const NOTES_SCHEMA = `
model Note {
  id    Uuid    @id @default(uuid())
  title String
  body  String?
  n     Int     @default(0)
}
`;

// Runs the named async tests in order; prints "N passed, N failed" and sets the exit code.
export async function run(tests) {
  let passed = 0, failed = 0;
  const deadline = setTimeout(() => { console.error("timeout: the browser tests took over 5 minutes"); cleanup().finally(() => process.exit(1)); }, 300000);
  for (const [name, fn] of tests) {
    const t0 = Date.now();
    try { await fn(); passed++; console.error(`ok   ${name} (${Date.now() - t0} ms)`); }
    catch (e) { failed++; console.error(`FAIL ${name}: ${e && e.stack || e}`); }
    finally { await cleanup(); }
  }
  clearTimeout(deadline);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

export function assert(cond, msg) { if (!cond) throw new Error("assertion failed: " + msg); }
export function assertEq(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`assertion failed: ${msg}: got ${ja}, expected ${jb}`);
}
