// wasmfc console: live refresh, ticking durations, local times, dialogs,
// copy buttons and the task id check. Pages work without it.


// Times: the viewer's zone on the page, UTC in the tooltip (set by the server).
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  }
}

function formatDuration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(3)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${String(Math.floor((ms % 60000) / 1000)).padStart(2, "0")} s`;
  return `${Math.floor(ms / 3600000)} h ${String(Math.floor((ms % 3600000) / 60000)).padStart(2, "0")} min`;
}

setInterval(() => {
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = formatDuration(Math.max(0, Date.now() - Number(el.dataset.since)));
  }
}, 1000);

// Live views: re-read this page and swap in its [data-live] parts, at most
// every 250 ms, when the feed says something changed (or on a timer for
// [data-poll] parts).
let refreshing = false, again = false, lastRefresh = 0;
function paused() {
  const toggle = document.getElementById("live-toggle");
  return toggle && !toggle.checked;
}
async function refresh() {
  if (paused()) return;
  if (refreshing) { again = true; return; }
  const wait = lastRefresh + 250 - Date.now();
  if (wait > 0) { refreshing = true; setTimeout(() => { refreshing = false; refresh(); }, wait); return; }
  refreshing = true;
  lastRefresh = Date.now();
  try {
    const resp = await fetch(location.href, { headers: { "X-Console-Refresh": "1" } });
    if (resp.ok) {
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      for (const el of document.querySelectorAll("[data-live][id]")) {
        const fresh = doc.getElementById(el.id);
        if (fresh && fresh.innerHTML !== el.innerHTML) {
          el.replaceWith(fresh);
          localTimes(fresh);
          wire(fresh);
        }
      }
    }
  } catch (e) { console.warn("refresh failed", e); }
  refreshing = false;
  if (again) { again = false; refresh(); }
}

// The feed opens after the load event: a stream opened before it keeps
// Chromium's page "loading" for as long as the stream lasts.
function openFeeds() {
  for (const el of document.querySelectorAll("[data-feed]")) {
    const source = new EventSource(el.dataset.feed);
    source.addEventListener("task", refresh);
    source.addEventListener("resync", refresh);
    source.onerror = () => setTimeout(refresh, 1000);
  }
  // What changed between rendering and the feed's start.
  if (document.querySelector("[data-feed]")) refresh();
}
if (document.readyState === "complete") openFeeds();
else window.addEventListener("load", openFeeds, { once: true });
for (const el of document.querySelectorAll("[data-poll]")) {
  setInterval(refresh, Number(el.dataset.poll) || 1000);
}
document.getElementById("live-toggle")?.addEventListener("change", refresh);

// Dialogs, copy buttons, the id rule.
function wire(root) {
  for (const b of root.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(b.dataset.copy); b.textContent = "Copied"; }
      catch { window.prompt("Copy this:", b.dataset.copy); }
    });
  }
}
for (const b of document.querySelectorAll("[data-open]")) {
  b.addEventListener("click", () => document.getElementById(b.dataset.open)?.showModal());
}
for (const b of document.querySelectorAll("dialog [data-close]")) {
  b.addEventListener("click", () => b.closest("dialog").close());
}

const ID_RULE = /^[A-Za-z_][A-Za-z0-9_-]{0,127}$/;
const idInput = document.querySelector("[data-id-check]");
if (idInput) {
  const problem = document.getElementById("id-problem");
  const custom = document.getElementById("id-custom");
  const check = () => {
    const v = idInput.value;
    let msg = "";
    if (custom.checked || v) {
      if (v && !ID_RULE.test(v)) {
        msg = v.length > 128 ? "At most 128 characters." : /^[A-Za-z_]/.test(v)
          ? "Only letters, digits, _ and - are allowed." : "Start with a letter or _.";
      }
      if (!v && custom.checked) msg = "Enter the id, or choose Automatic.";
    }
    problem.textContent = msg;
    idInput.setCustomValidity(msg);
  };
  idInput.addEventListener("input", () => { if (idInput.value) custom.checked = true; check(); });
  for (const r of document.querySelectorAll('input[name="id_mode"]')) r.addEventListener("change", check);
}

// Time filters are read in the viewer's zone.
for (const tz of document.querySelectorAll("[data-tz]")) tz.value = String(new Date().getTimezoneOffset());

localTimes(document);
wire(document);
