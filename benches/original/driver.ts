/**
 * The Rust `agent-store loadtest --in-process` workload, run against the original store (the seed,
 * reconstructed in agent-store.ts) on Bun with bun:sqlite. It prints the loadtest's summary and writes a
 * report in the loadtest's JSON shape (`--report`), so `compare.ts` can put the two side by side.
 *
 *   bun benches/original/driver.ts --projects 1000 --messages 100 --batch 10 --sizes small --report o.json
 *
 * Phases, as in src/loadtest: start one session per project (`startAgent`, 64 at a time); stream every
 * project's messages as `agent.message` events cut and ordered exactly as the Rust run cuts them, one
 * request at a time (each request's events delivered to the store's listeners, then a turn of the event
 * loop, as separate RPC messages would arrive); finish every session (`agent.status` done, then
 * `agent.cost`); wait until every message and every final session row is committed in SQLite; check that
 * every message is stored exactly once; restart (a fresh process) and time `loadLastSession`.
 */
import { parseArgs } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openBackend, type Mode } from './backend.ts';
import { Content, Layout, messageIndex, type Sizes } from './content.ts';
import { connect, deliver, appRpc, type Backend } from './rpc.ts';
import { percentiles, Timeline } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    projects: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '100' },
    batch: { type: 'string', default: '100' },
    'per-event': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    sizes: { type: 'string', default: 'realistic' },
    rpc: { type: 'string', default: 'worker' },
    synchronous: { type: 'string', default: 'normal' },
    runes: { type: 'string', default: 'plain' },
    'data-dir': { type: 'string' },
    report: { type: 'string' },
    quiet: { type: 'boolean', default: false },
    'no-restart': { type: 'boolean', default: false },
  },
  strict: true,
});

function fail(field: string, message: string): never {
  console.error(`--${field}: ${message}`);
  process.exit(2);
}

function count(field: 'projects' | 'messages' | 'batch' | 'per-event' | 'concurrency'): number {
  const n = Number(args[field]);
  if (!Number.isInteger(n) || n < 1) fail(field, 'must be a whole number, at least 1');
  return n;
}

const projects = count('projects');
const messages = count('messages');
const batch = count('batch');
const concurrency = count('concurrency');
const sizes = args.sizes as Sizes;
if (sizes !== 'small' && sizes !== 'realistic') fail('sizes', 'must be small or realistic');
const mode = args.rpc as Mode;
if (mode !== 'worker' && mode !== 'inline') fail('rpc', 'must be worker or inline');
const synchronous = (args.synchronous ?? '').toUpperCase();
if (synchronous !== 'NORMAL' && synchronous !== 'FULL') fail('synchronous', 'must be normal or full');
const runes = args.runes ?? '';
if (runes !== 'plain' && runes !== 'svelte') fail('runes', 'must be plain or svelte');
const store: typeof import('./agent-store.ts') = await import(storeModule(runes));
const layout = new Layout(projects, messages, count('per-event'), batch);
const quiet = args.quiet;
const note = (s: string) => {
  if (!quiet) console.error(s);
};

// Failures the store only logs (its persistence `.catch`es) still count as errors.
let errors = 0;
let lastError: string | null = null;
const consoleError = console.error;
console.error = (...parts: unknown[]) => {
  if (typeof parts[0] === 'string' && parts[0].startsWith('[')) {
    errors++;
    lastError = parts.map(String).join(' ');
  }
  consoleError(...parts);
};

const ownDir = !args['data-dir'];
const dataDir = args['data-dir'] ?? mkdtempSync(join(tmpdir(), 'original-store-'));
const dbPath = join(dataDir, 'agent-store.sqlite');
const opened = await openBackend(mode, dbPath, { synchronous: synchronous as 'NORMAL' | 'FULL' });

// What is committed: every message row and every final session row, counted as their saves answer.
let storedRows = 0;
let doneRows = 0;
const sampled = new Map<string, number>(); // session id → sampled project index
const ackedAt = new Map<number, Float64Array>(); // sampled project → ack time per chunk (0: not yet)
const committedChunks = new Map<number, number>();
const persistLag: number[] = [];

function committed(sessionId: string, rows: Array<{ msgId: string }>): void {
  const p = sampled.get(sessionId);
  if (p === undefined) return;
  const acks = ackedAt.get(p)!;
  let through = -1;
  for (const r of rows) through = Math.max(through, messageIndex(r.msgId) ?? -1);
  const now = performance.now();
  let next = committedChunks.get(p) ?? 0;
  while (next < layout.chunks() && layout.chunkRange(next)[1] - 1 <= through && acks[next] > 0) {
    persistLag.push(now - acks[next]);
    next++;
  }
  committedChunks.set(p, next);
}

const instrumented: Backend = (method, params: any) => {
  const answer = opened.backend(method, params);
  if (method === 'session.messages.save') {
    return answer.then((r) => {
      storedRows += params.messages.length;
      committed(params.messages[0]?.sessionId, params.messages);
      return r;
    });
  }
  if (method === 'session.save' && params.status === 'done') {
    return answer.then((r) => {
      doneRows++;
      return r;
    });
  }
  return answer;
};
connect(instrumented);

const content = new Content(sizes, projects, messages);
const tag = Date.now().toString(16);
const projectIds = Array.from({ length: projects }, (_, p) => `lt-${tag}-${p}`);
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

// Setup: one session per project, `concurrency` starts in flight.
note(`setup: starting ${projects} sessions`);
const setupStarted = performance.now();
const sessions: string[] = new Array(projects);
{
  let nextProject = 0;
  const worker = async () => {
    while (nextProject < projects) {
      const p = nextProject++;
      const result = await store.startAgent(projectIds[p], 'synthetic', `load test of ${projectIds[p]}`);
      if (!result.ok) throw new Error(`starting a session for ${projectIds[p]}: ${result.error}`);
      sessions[p] = store.getSession(projectIds[p])!.sessionId;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, projects) }, worker));
}
const setupS = (performance.now() - setupStarted) / 1000;
note(`${projects} sessions started in ${setupS.toFixed(2)}s`);
const step = Math.max(1, Math.floor(projects / 32));
for (let p = 0; p < projects && sampled.size < 32; p += step) {
  sampled.set(sessions[p], p);
  ackedAt.set(p, new Float64Array(layout.chunks()));
}

// Stream: one request at a time, each a turn of the event loop.
note(`stream: ${layout.projects * layout.messages} messages`);
let sent = 0;
let acked = 0;
let requests = 0;
const latency: number[] = [];
const timeline = new Timeline();
const streamStarted = performance.now();
// getrusage of the whole process: the store, its SQLite worker thread and the generator.
const cpuStarted = process.cpuUsage();
for (const [chunk, first, end] of layout.requests()) {
  const [lo, hi] = layout.chunkRange(chunk);
  const timestamp = Date.now();
  const t0 = performance.now();
  for (let p = first; p < end; p++) {
    const raws = [];
    for (let i = lo; i < hi; i++) raws.push(content.raw(p, i, timestamp));
    deliver('agent.message', { sessionId: sessions[p], messages: raws });
  }
  const t1 = performance.now();
  const n = (end - first) * (hi - lo);
  sent += n;
  acked += n;
  requests++;
  latency.push(t1 - t0);
  for (let p = first; p < end; p++) {
    const acks = ackedAt.get(p);
    if (acks) acks[chunk] = t1;
  }
  timeline.record(t1 - t0, n, (t1 - streamStarted) / 1000, errors);
  await turn();
}
const streamS = (performance.now() - streamStarted) / 1000;
const cpu = process.cpuUsage(cpuStarted);
const cpuStreamS = (cpu.user + cpu.system) / 1e6;
timeline.close(streamS, errors);
note(`${acked} messages acknowledged in ${streamS.toFixed(2)}s`);

// Finish: status done and cost for every project, then wait for every row to be committed.
const finishStarted = performance.now();
for (const [first, end] of layout.projectGroups()) {
  for (let p = first; p < end; p++) {
    const tokens = messages * 400;
    deliver('agent.status', { sessionId: sessions[p], status: 'done' });
    deliver('agent.cost', {
      sessionId: sessions[p],
      costUsd: messages * 0.0021,
      inputTokens: tokens,
      outputTokens: Math.floor(tokens / 4),
    });
  }
  requests++;
  await turn();
}
const expectedRows = projects * (messages + 1); // each session's prompt is a stored message too
const giveUp = performance.now() + 600_000;
while (storedRows < expectedRows || doneRows < projects) {
  if (performance.now() > giveUp) {
    errors++;
    lastError = `gave up waiting: ${storedRows} of ${expectedRows} message rows, ${doneRows} of ${projects} sessions committed`;
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 5));
}
const finishS = (performance.now() - finishStarted) / 1000;
const memory = procMemory();
note(`finished and persisted in ${finishS.toFixed(2)}s`);

// Loss check: read every session back through the store's own RPC, as loadLastSession would.
const loss = {
  passed: true,
  sessions_checked: 0,
  expected: 0,
  stored: 0,
  missing: 0,
  duplicated: 0,
  unexpected: 0,
  unreadable: 0,
  examples: [] as string[],
};
for (let p = 0; p < projects; p++) {
  loss.sessions_checked++;
  loss.expected += messages;
  let rows: Array<{ msgId: string }>;
  try {
    rows = (await appRpc.request['session.messages.load']({ sessionId: sessions[p] })).messages;
  } catch (err) {
    loss.unreadable++;
    loss.missing += messages;
    if (loss.examples.length < 5) loss.examples.push(`${sessions[p]}: unreadable: ${err}`);
    continue;
  }
  const seen = new Uint32Array(messages);
  for (const r of rows) {
    const i = messageIndex(r.msgId);
    if (i === null) continue;
    if (i >= messages) loss.unexpected++;
    else seen[i]++;
    loss.stored++;
  }
  let missing = 0;
  for (let i = 0; i < messages; i++) {
    if (seen[i] === 0) missing++;
    if (seen[i] > 1) loss.duplicated += seen[i] - 1;
  }
  loss.missing += missing;
  if (missing > 0 && loss.examples.length < 5) loss.examples.push(`${sessions[p]}: ${missing} missing`);
}
loss.passed = loss.missing === 0 && loss.duplicated === 0 && loss.unexpected === 0 && loss.unreadable === 0;

store.cancelTimersForBenchmark();
await opened.close();

// Restart: a fresh process opens the database and restores the first project's session.
let restart = null;
if (!args['no-restart']) {
  const child = Bun.spawnSync([process.execPath, join(import.meta.dir, 'restart.ts'), dbPath, projectIds[0], mode,
    synchronous, runes]);
  if (child.exitCode === 0) restart = JSON.parse(child.stdout.toString());
  else {
    errors++;
    lastError = `restart: ${child.stderr.toString().trim()}`;
  }
}
if (ownDir) rmSync(dataDir, { recursive: true, force: true });

const report = {
  settings: {
    mode: `original-bun (${runes} state, ${mode} sqlite, synchronous ${synchronous.toLowerCase()})`,
    target: null,
    projects,
    messages_per_project: messages,
    batch,
    per_event: layout.perEvent,
    concurrency: 1,
    rate: 0,
    duration_s: null,
    durable: false,
    sizes,
    live: false,
  },
  sent,
  acked,
  stored: loss.stored,
  requests,
  errors,
  retries: 0,
  ignored: 0,
  bytes_sent: 0,
  setup_s: setupS,
  stream_s: streamS,
  finish_s: finishS,
  messages_per_s: acked / Math.max(streamS, 1e-9),
  stored_per_s: acked / Math.max(streamS + finishS, 1e-9),
  latency_ms: percentiles(latency),
  e2e_ms: percentiles([]),
  e2e_lagged: 0,
  persist_lag_ms: percentiles(persistLag),
  persist_lag_method:
    'each sampled project\'s (up to 32) chunks: from the end of their delivery to the answer of the ' +
    'session.messages.save that holds their last message',
  cpu_stream_s: cpuStreamS,
  cores_busy: cpuStreamS / Math.max(streamS, 1e-9),
  cpu_source: 'user + system time of this Bun process (store, worker thread with SQLite, and the generator)',
  rss_peak_bytes: memory.peak,
  rss_source: 'VmHWM of this Bun process (store, worker thread with SQLite, and the generator)',
  rss_end_bytes: memory.end,
  restart,
  loss_check: loss,
  last_error: lastError,
  timeline: timeline.points,
  original: { bun: Bun.version, runes, rpc: mode, sqlite_synchronous: synchronous.toLowerCase() },
};
if (args.report) writeFileSync(args.report, JSON.stringify(report, null, 2) + '\n');
if (!quiet) console.error(summary(report));
process.exit(loss.passed && errors === 0 ? 0 : 1);

/** The store as reconstructed (`plain`), or compiled with its `$state` rune by compile.ts (`svelte`). */
function storeModule(runes: string): string {
  if (runes === 'plain') return './agent-store.ts';
  const built = join(import.meta.dir, 'build', 'agent-store.svelte.js');
  if (!existsSync(built)) {
    console.error(`--runes svelte: ${built} is missing; run \`npm ci && bun compile.ts\` in ${import.meta.dir}`);
    process.exit(2);
  }
  return built;
}

function procMemory(): { peak: number | null; end: number | null } {
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return { peak: null, end: null };
  }
  const field = (name: string) => {
    const line = status.split('\n').find((l) => l.startsWith(name + ':'));
    return line ? Number.parseInt(line.slice(name.length + 1), 10) * 1024 : null;
  };
  return { peak: field('VmHWM'), end: field('VmRSS') };
}

function summary(r: typeof report): string {
  const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 1048576).toFixed(1)} MiB`);
  const l = r.latency_ms;
  let s = `${r.settings.projects} projects × ${r.settings.messages_per_project} messages (${r.settings.mode}): ` +
    `${r.acked} acked of ${r.sent} sent in ${r.stream_s.toFixed(2)}s → ${r.messages_per_s.toFixed(0)} messages/s ` +
    `(${r.requests} requests, ${r.errors} errors)\n` +
    `request latency ms: p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p99 ${l.p99.toFixed(2)}  max ${l.max.toFixed(2)}\n` +
    `persist lag ms:     p50 ${r.persist_lag_ms.p50.toFixed(2)}  p99 ${r.persist_lag_ms.p99.toFixed(2)}  (${r.persist_lag_ms.samples} samples)\n` +
    `finishing and persisting every session: ${r.finish_s.toFixed(2)}s (${r.stored_per_s.toFixed(0)} messages/s stored, end to end)\n` +
    `memory: peak ${mib(r.rss_peak_bytes)}, after the run ${mib(r.rss_end_bytes)}\n`;
  if (r.restart) {
    s += `restart: ready in ${r.restart.ready_ms.toFixed(1)} ms; first session (${r.restart.session_messages} messages) ` +
      `restored in ${r.restart.restore_ms.toFixed(1)} ms, read back in ${r.restart.read_ms.toFixed(1)} ms\n`;
  }
  const c = r.loss_check;
  s += `loss check: ${c.passed ? 'passed' : 'FAILED'} — ${c.sessions_checked} sessions, ${c.expected} expected, ` +
    `${c.stored} stored, ${c.missing} missing, ${c.duplicated} duplicated, ${c.unexpected} unexpected`;
  for (const e of c.examples) s += `\n  ${e}`;
  if (r.last_error) s += `\nlast error: ${r.last_error}`;
  return s;
}
