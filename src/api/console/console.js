// agent-store ops console. Plain DOM, no framework, no build step: served from the binary as it is.
// Every piece of data comes from /v1 or /metrics with the operator's token (kept in sessionStorage, asked
// for when the server answers 401). Text from the server is only ever set as textContent, never as HTML.
"use strict";

const TOKEN_KEY = "agent-store-token";
const PAGE = 50;                 // messages per page in the session view
const SAMPLE_MS = 2000;          // metrics scrape period
const WINDOW = 150;              // samples kept: 5 minutes
const TOP_MS = 5000;
const HEALTH_MS = 10000;
const FAR = Number.MAX_SAFE_INTEGER;

const state = {
  projects: new Map(),           // projectId -> {projectId, sessionId, status, health, costUsd}
  session: null,                 // {id, oldest, newest, loading}
  approvals: "unknown",          // "unknown" | "unavailable" | "ok"
  stream: null,
  samples: [],
  last: null,
  needToken: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

// ---- HTTP ----------------------------------------------------------------------------------------

class Unauthorized extends Error {}
class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function request(method, path, body) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) { askForToken(t ? "The server refused this token." : null); throw new Unauthorized(); }
  return res;
}

async function getJson(path) {
  const res = await request("GET", path);
  if (!res.ok) {
    let message = res.statusText;
    try { message = (await res.json()).error || message; } catch (_) { /* not JSON */ }
    throw new HttpError(res.status, message);
  }
  return res.json();
}

// ---- token ---------------------------------------------------------------------------------------

function askForToken(error) {
  state.needToken = true;
  $("token-panel").hidden = false;
  const e = $("token-error");
  e.hidden = !error;
  e.textContent = error || "";
  $("projects-empty").textContent = "Enter the token to see the projects.";
  $("approvals-state").textContent = "Enter the token to see the approvals.";
  $("token").focus();
  closeStream();
}

function tokenEntered(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  $("token-panel").hidden = true;
  state.needToken = false;
  start();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  closeStream();
  location.reload();
}

// ---- projects ------------------------------------------------------------------------------------

function project(id) {
  let p = state.projects.get(id);
  if (!p) {
    p = { projectId: id, sessionId: null, status: null, health: null, costUsd: null };
    state.projects.set(id, p);
  }
  return p;
}

async function loadProjects() {
  const list = await getJson("/v1/projects");
  for (const summary of list) {
    const p = project(summary.projectId);
    p.sessionId = summary.sessionId ?? null;
    p.status = summary.status ?? null;
    p.health = summary.health;
  }
  renderProjects();
  // Spend: the session body carries costUsd; read it without messages for the projects on screen.
  await Promise.all(sorted().slice(0, 50).filter((p) => p.sessionId && p.costUsd === null)
    .map((p) => loadSpend(p)));
  renderProjects();
}

async function loadSpend(p) {
  try {
    const s = await getJson(`/v1/sessions/${encodeURIComponent(p.sessionId)}?afterSeq=${FAR}&limit=1`);
    p.costUsd = s.costUsd;
  } catch (e) { if (e instanceof Unauthorized) throw e; }
}

function attention(p) { return p.health ? p.health.attentionScore : 0; }

function sorted() {
  return [...state.projects.values()].sort((a, b) =>
    attention(b) - attention(a) || a.projectId.localeCompare(b.projectId));
}

function renderProjects() {
  const body = $("projects").tBodies[0];
  const rows = sorted().map((p) => {
    const h = p.health || {};
    const row = el("tr", { "data-project": p.projectId, class: state.session && state.session.project === p.projectId ? "selected" : "" },
      el("td", {}, p.projectId),
      el("td", {}, el("span", { class: "pill", "data-state": p.status || "none" }, p.status || "—")),
      el("td", {}, h.activityState || "—", h.activeTool ? el("small", {}, " " + h.activeTool) : ""),
      el("td", { class: "num" }, String(attention(p)), h.attentionReason ? el("small", {}, " " + h.attentionReason) : ""),
      el("td", { class: "num" }, p.costUsd == null ? "—" : "$" + Number(p.costUsd).toFixed(4)),
      el("td", { class: "num" }, h.burnRatePerHour ? "$" + Number(h.burnRatePerHour).toFixed(2) : "—"));
    row.addEventListener("click", () => openSession(p.projectId));
    return row;
  });
  body.replaceChildren(...rows);
  const empty = $("projects-empty");
  empty.hidden = rows.length > 0;
  if (!state.needToken) empty.textContent = "No projects yet.";
}

// Health changes come in bursts: read the totals once a burst is over.
let aggregatesTimer = null;
function aggregatesSoon() {
  if (aggregatesTimer) return;
  aggregatesTimer = setTimeout(() => { aggregatesTimer = null; loadAggregates().catch(report); }, 1000);
}

async function loadAggregates() {
  const a = await getJson("/v1/health/aggregates");
  $("aggregates").textContent =
    `running ${a.running} · idle ${a.idle} · stalled ${a.stalled} · burn $${Number(a.totalBurnRatePerHour).toFixed(2)}/h`;
}

// ---- approvals -----------------------------------------------------------------------------------

async function loadApprovals() {
  const res = await request("GET", "/v1/approvals");
  const line = $("approvals-state");
  if (res.status === 404 || res.status === 405) {
    // The agent-control API is not part of this server (yet): say so instead of showing an empty list.
    state.approvals = "unavailable";
    line.dataset.state = "unavailable";
    line.textContent = "Approvals are not available: this server has no approvals API.";
    $("approvals").replaceChildren();
    return;
  }
  if (!res.ok) throw new HttpError(res.status, "approvals");
  const list = await res.json();
  state.approvals = "ok";
  line.dataset.state = list.length ? "pending" : "none";
  line.textContent = list.length ? `${list.length} waiting` : "Nothing waiting for an answer.";
  $("approvals").replaceChildren(...list.map(approvalItem));
}

function approvalItem(a) {
  const answer = async (decision) => {
    const path = `/v1/sessions/${encodeURIComponent(a.sessionId)}/approvals/${encodeURIComponent(a.requestId)}`;
    const res = await request("POST", path, { decision });
    if (!res.ok) note("warning", `${a.projectId}: ${decision} failed (${res.status})`);
    loadApprovals().catch(report);
  };
  const input = typeof a.input === "string" ? a.input : JSON.stringify(a.input);
  return el("li", { "data-request": a.requestId },
    el("strong", {}, a.projectId), " ", el("code", {}, a.toolName || "tool"),
    el("pre", {}, (input || "").slice(0, 400)),
    el("button", { type: "button", class: "allow", onclick: () => answer("allow") }, "Allow"),
    el("button", { type: "button", class: "deny", onclick: () => answer("deny") }, "Deny"));
}

// ---- session view --------------------------------------------------------------------------------

async function openSession(projectId) {
  const p = project(projectId);
  if (!p.sessionId) return;
  const box = $("messages");
  box.replaceChildren();
  state.session = { id: p.sessionId, project: projectId, oldest: null, newest: 0, loading: false };
  $("session-title").textContent = `${projectId} · ${p.sessionId}`;
  renderProjects();
  const head = await getJson(`/v1/sessions/${encodeURIComponent(p.sessionId)}?afterSeq=${FAR}&limit=1`);
  const last = head.lastSeqId ?? head.messageCount ?? 0;
  const after = Math.max(0, last - PAGE);
  const page = await getJson(`/v1/sessions/${encodeURIComponent(p.sessionId)}?afterSeq=${after}&limit=${PAGE}`);
  if (!state.session || state.session.id !== p.sessionId) return;
  state.session.oldest = after + 1;
  appendMessages(page.messages);
  box.scrollTop = box.scrollHeight;
}

function messageNode(m) {
  const content = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
  return el("div", { class: "message", "data-role": m.role, "data-seq": String(m.seqId) },
    el("span", { class: "seq" }, "#" + m.seqId),
    el("span", { class: "role" }, m.role + (m.toolName ? " " + m.toolName : "")),
    el("span", { class: "content" }, (content || "").slice(0, 4000)));
}

function appendMessages(messages) {
  const s = state.session;
  const box = $("messages");
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const m of messages) {
    if (m.seqId <= s.newest) continue;
    box.append(messageNode(m));
    s.newest = m.seqId;
  }
  if (stick) box.scrollTop = box.scrollHeight;
}

async function olderPage() {
  const s = state.session;
  if (!s || s.loading || s.oldest === null || s.oldest <= 1) return;
  if ($("messages").scrollTop > 40) return;
  s.loading = true;
  try {
    const limit = Math.min(PAGE, s.oldest - 1);
    const after = s.oldest - 1 - limit;
    const page = await getJson(`/v1/sessions/${encodeURIComponent(s.id)}?afterSeq=${after}&limit=${limit}`);
    if (state.session !== s) return;
    const box = $("messages");
    const before = box.scrollHeight;
    const older = page.messages.filter((m) => m.seqId < s.oldest);
    box.prepend(...older.map(messageNode));
    box.scrollTop += box.scrollHeight - before;
    s.oldest = after + 1;
  } finally {
    s.loading = false;
  }
}

// ---- live stream ---------------------------------------------------------------------------------

function streamState(name) {
  const pill = $("stream-state");
  pill.dataset.state = name;
  pill.textContent = "live: " + name;
}

function closeStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
  streamState("off");
}

async function openStream() {
  closeStream();
  // An EventSource cannot send the token: trade it for a single-use ticket first.
  const res = await request("POST", "/v1/events/ticket", {});
  if (!res.ok) throw new HttpError(res.status, "ticket");
  const { ticket } = await res.json();
  const source = new EventSource("/v1/events?ticket=" + encodeURIComponent(ticket));
  state.stream = source;
  streamState("connecting");
  source.onopen = () => streamState("on");
  source.onerror = () => {
    if (state.stream !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      // The ticket is spent (or the server went away): take a new one and read the state again.
      streamState("reconnecting");
      setTimeout(() => { if (state.stream === source && !state.needToken) start(); }, 2000);
    } else {
      streamState("reconnecting");
    }
  };
  const on = (name, handler) => source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
  on("session.messages", (d) => {
    if (state.session && state.session.id === d.sessionId) appendMessages(d.messages);
  });
  on("session.status", (d) => {
    const p = project(d.projectId);
    if (p.sessionId !== d.sessionId) { p.sessionId = d.sessionId; p.costUsd = 0; }
    p.status = d.status;
    renderProjects();
  });
  on("session.cost", (d) => {
    const p = project(d.projectId);
    if (p.sessionId === d.sessionId) p.costUsd = d.costUsd;
    renderProjects();
  });
  on("project.health", (h) => {
    const p = project(h.projectId);
    p.health = h;
    if (h.sessionId && p.sessionId !== h.sessionId) p.sessionId = h.sessionId;
    renderProjects();
    aggregatesSoon();
  });
  on("notification", (n) => note(n.variant, n.message));
  on("lagged", () => loadProjects().catch(report));
  on("reset", () => loadProjects().catch(report));
  for (const name of ["session.approval", "session.approval.resolved"]) {
    on(name, () => loadApprovals().catch(report));
  }
  on("budget.exceeded", (b) => note("warning", `${b.projectId}: budget exceeded ($${b.spentUsd} of $${b.limitUsd}, ${b.period})`));
}

function note(variant, message) {
  const log = $("log");
  log.prepend(el("li", { "data-variant": variant || "info" },
    el("time", {}, new Date().toLocaleTimeString()), " ", message));
  while (log.children.length > 50) log.lastChild.remove();
}

function report(e) {
  if (e instanceof Unauthorized) return;
  note("error", String(e.message || e));
}

// ---- metrics -------------------------------------------------------------------------------------

// Prometheus text: `name{labels} value` lines; comments skipped. Returns name -> [{labels, value}].
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (metrics, name, filter) => (metrics.get(name) || [])
  .filter((s) => !filter || filter(s.labels)).reduce((a, s) => a + s.value, 0);

const ACTORS = ["supervisor", "project", "session", "broadcaster", "persister"];

function reading(metrics) {
  const r = {
    t: Date.now(),
    ingested: sum(metrics, "agent_store_events_ingested_total"),
    messages: sum(metrics, "agent_store_agent_messages_total"),
    handlingSum: sum(metrics, "agent_store_message_handling_seconds_sum"),
    handlingCount: sum(metrics, "agent_store_message_handling_seconds_count"),
    lagSum: sum(metrics, "agent_store_persist_lag_seconds_sum"),
    lagCount: sum(metrics, "agent_store_persist_lag_seconds_count"),
    commits: sum(metrics, "agent_store_commits_total"),
    persisted: sum(metrics, "agent_store_persisted_messages_total"),
    queue: sum(metrics, "agent_store_persist_queue_jobs"),
    memory: sum(metrics, "process_resident_memory_bytes"),
    depth: {},
  };
  for (const a of ACTORS) r.depth[a] = sum(metrics, "agent_store_mailbox_depth", (l) => l.actor === a);
  return r;
}

// One chart point per scrape, from the difference with the previous scrape.
function point(prev, r) {
  const dt = Math.max(0.001, (r.t - prev.t) / 1000);
  const per = (a, b) => (b > 0 ? a / b : 0);
  return {
    t: r.t,
    ingest: (r.ingested - prev.ingested) / dt,
    messages: (r.messages - prev.messages) / dt,
    handlingMs: 1000 * per(r.handlingSum - prev.handlingSum, r.handlingCount - prev.handlingCount),
    lagMs: 1000 * per(r.lagSum - prev.lagSum, r.lagCount - prev.lagCount),
    commitSize: per(r.persisted - prev.persisted, r.commits - prev.commits),
    queue: r.queue,
    memoryMiB: r.memory / 1048576,
    ...Object.fromEntries(ACTORS.map((a) => ["depth_" + a, r.depth[a]])),
  };
}

const CHARTS = [
  { title: "ingest /s", series: [["ingest", "events"], ["messages", "messages"]] },
  { title: "mailbox depth", series: ACTORS.map((a) => ["depth_" + a, a]) },
  { title: "handling time (mean ms)", series: [["handlingMs", "all actors"]] },
  { title: "persister lag (mean ms)", series: [["lagMs", "lag"]] },
  { title: "commit size (messages)", series: [["commitSize", "per commit"], ["queue", "queued jobs"]] },
  { title: "memory (RSS MiB)", series: [["memoryMiB", "rss"]] },
];

async function sampleMetrics() {
  const res = await request("GET", "/metrics");
  if (!res.ok) throw new HttpError(res.status, "metrics");
  const r = reading(parseMetrics(await res.text()));
  if (state.last) {
    state.samples.push(point(state.last, r));
    if (state.samples.length > WINDOW) state.samples.shift();
  }
  state.last = r;
  renderCharts();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function fmt(v) {
  if (v >= 1000) return (v / 1000).toFixed(1) + "k";
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toPrecision(2);
}

function chart(spec, samples) {
  const W = 300, H = 110, L = 34, B = 14;
  const figure = el("figure", { class: "chart" });
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": spec.title });
  const highest = Math.max(0, ...samples.flatMap((s) => spec.series.map(([k]) => s[k] || 0)));
  const max = highest > 0 ? highest * 1.1 : 1;
  const t0 = Date.now() - WINDOW * SAMPLE_MS;
  const x = (t) => L + (W - L - 2) * Math.max(0, (t - t0) / (WINDOW * SAMPLE_MS));
  const y = (v) => H - B - (H - B - 6) * (v / max);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - 2, y2: H - B, class: "axis" }));
  root.append(svg("line", { x1: L, y1: 4, x2: L, y2: H - B, class: "axis" }));
  const top = svg("text", { x: L - 3, y: 10, class: "tick", "text-anchor": "end" });
  top.textContent = fmt(max);
  const zero = svg("text", { x: L - 3, y: H - B, class: "tick", "text-anchor": "end" });
  zero.textContent = "0";
  const span = svg("text", { x: W - 2, y: H - 2, class: "tick", "text-anchor": "end" });
  span.textContent = "now";
  const start = svg("text", { x: L, y: H - 2, class: "tick" });
  start.textContent = "−5 min";
  root.append(top, zero, span, start);
  spec.series.forEach(([key], i) => {
    if (samples.length < 2) return;
    const d = samples.map((s, j) => `${j ? "L" : "M"}${x(s.t).toFixed(1)},${y(s[key] || 0).toFixed(1)}`).join("");
    root.append(svg("path", { d, class: "series s" + i }));
  });
  const last = samples[samples.length - 1] || {};
  const legend = el("figcaption", {}, el("strong", {}, spec.title),
    ...spec.series.map(([key, label], i) => el("span", { class: "key s" + i }, ` ${label} ${fmt(last[key] || 0)}`)));
  figure.append(root, legend);
  return figure;
}

function renderCharts() {
  $("charts").replaceChildren(...CHARTS.map((c) => chart(c, state.samples)));
}

async function loadTop() {
  const top = await getJson("/v1/debug/top?limit=10");
  $("top").tBodies[0].replaceChildren(...top.map((a) => el("tr", {},
    el("td", {}, a.actor),
    el("td", {}, a.sessionId || a.projectId),
    el("td", { class: "num" }, String(a.mailboxDepth)),
    el("td", { class: "num" }, String(a.messagesHandled)),
    el("td", { class: "num" }, fmt(a.memoryBytes / 1024) + " KiB"))));
}

// ---- start ---------------------------------------------------------------------------------------

const timers = [];
function every(ms, task) {
  timers.push(setInterval(() => { if (!state.needToken) task().catch(report); }, ms));
}

async function start() {
  timers.splice(0).forEach(clearInterval);
  $("forget-token").hidden = !token();
  try {
    await loadProjects();
    await Promise.all([loadApprovals(), loadAggregates(), loadTop(), sampleMetrics(), openStream()]);
    if (state.session) await openSession(state.session.project);
  } catch (e) {
    report(e);
    if (e instanceof Unauthorized) return;
  }
  every(SAMPLE_MS, sampleMetrics);
  every(TOP_MS, loadTop);
  every(HEALTH_MS, () => Promise.all([loadAggregates(), loadApprovals()]));
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", tokenEntered);
  $("forget-token").addEventListener("click", forgetToken);
  $("messages").addEventListener("scroll", () => olderPage().catch(report));
  renderCharts();
  start();
});
