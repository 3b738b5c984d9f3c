// The web demo (docs/web.md): a notes list kept by a live query, add, edit
// and delete, a sync status and an offline badge.  In development mode
// (`scripts/web-demo.sh`) the page reads its token from dev-config.json;
// `?user=bob` picks the second development user.
import { openDatabase } from "./cstack.js";

const $ = (id) => document.getElementById(id);

async function credentials() {
  const user = new URLSearchParams(location.search).get("user") || "alice";
  try {
    const res = await fetch("dev-config.json", { cache: "no-store" });
    if (res.ok) {
      const cfg = await res.json();
      if (cfg.users && cfg.users[user]) return { name: user, ...cfg.users[user] };
    }
  } catch (e) { /* no development config: sign in by hand */ }
  const saved = JSON.parse(localStorage.getItem("cstack-demo-signin") || "null");
  if (saved) return saved;
  $("signin").hidden = false;
  return new Promise((resolve) => {
    $("signin").onsubmit = (ev) => {
      ev.preventDefault();
      const c = { name: "me", id: $("uid").value.trim(), token: $("token").value.trim() };
      localStorage.setItem("cstack-demo-signin", JSON.stringify(c));
      $("signin").hidden = true;
      resolve(c);
    };
  });
}

function showStatus(s) {
  const badge = $("sync");
  badge.className = "badge";
  if (s.uploading || s.downloading) { badge.textContent = s.downloading && s.downloadTotal ? `syncing ${s.downloaded}/${s.downloadTotal}` : "syncing"; badge.classList.add("syncing"); }
  else if (s.connected) { badge.textContent = "synced" + (s.lastSyncedAt ? " " + new Date(s.lastSyncedAt).toLocaleTimeString() : ""); badge.classList.add("connected"); }
  else badge.textContent = s.connecting ? "connecting" : "not connected";
  badge.title = s.lastError || "";
  $("offline").hidden = s.connected && navigator.onLine;
}

function render(db, res) {
  const ul = $("notes");
  if (res.status !== "ok") { $("error").hidden = false; $("error").textContent = res.message; return; }
  ul.replaceChildren(...res.data.map((n) => {
    const li = document.createElement("li");
    li.dataset.id = n.id;
    const text = document.createElement("div");
    text.className = "text";
    text.innerHTML = `<div class="title"></div><div class="body"></div>`;
    text.querySelector(".title").textContent = n.title;
    text.querySelector(".body").textContent = n.body || "";
    const edit = document.createElement("button");
    edit.textContent = "Edit";
    edit.onclick = async () => {
      const title = prompt("Title", n.title);
      if (title) await report(db.call({ model: "Note", kind: "update", payload: { where: { id: n.id }, data: { title } } }));
    };
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "delete";
    del.onclick = () => report(db.call({ model: "Note", kind: "delete", payload: { where: { id: n.id } } }));
    li.append(text, edit, del);
    return li;
  }));
}

async function report(promise) {
  const res = await promise;
  $("error").hidden = res.status === "ok";
  if (res.status !== "ok") $("error").textContent = `${res.code}: ${res.message}`;
  return res;
}

async function main() {
  const me = await credentials();
  $("user").textContent = me.name;
  const schema = await (await fetch("notes.cstack")).text();
  const db = await openDatabase({ name: "notes-" + me.id, schema });
  window.cstackDemo = db;
  const info = await db.info();
  $("storage").textContent = info.storage === "memory"
    ? "This browser has no OPFS sync access handles: notes are kept in memory only."
    : `Stored in this browser (${info.storage === "opfs" ? "OPFS" : "another tab's worker"}).`;
  $("app").hidden = false;
  db.onStatus(showStatus);
  addEventListener("online", () => showStatus(db.status()));
  addEventListener("offline", () => showStatus(db.status()));
  db.watch({ model: "Note", kind: "find_many", payload: { orderBy: [{ field: "createdAt", direction: "desc" }] } }, (r) => render(db, r));
  $("add").onsubmit = async (ev) => {
    ev.preventDefault();
    const res = await report(db.call({ model: "Note", kind: "create", payload: { data: { ownerId: me.id, title: $("title").value, body: $("body").value || null } } }));
    if (res.status === "ok") { $("title").value = ""; $("body").value = ""; }
  };
  await db.connect({ server: location.origin, token: me.token });
}

main().catch((e) => { $("error").hidden = false; $("error").textContent = String(e.message || e); $("app").hidden = false; });
