/**
 * The restart half of the benchmark, run by driver.ts in a fresh process: open the database, then restore
 * the first project's session with the store's own `loadLastSession` (which reads its messages back), and
 * read its messages once more alone. Prints `{ ready_ms, restore_ms, read_ms, session_messages }`, the
 * loadtest report's `restart` object.
 *
 *   bun restart.ts <database> <projectId> <worker|inline> <NORMAL|FULL> <plain|svelte>
 */
const started = performance.now();
const [dbPath, projectId, mode, synchronous, runes] = process.argv.slice(2);
const { openBackend } = await import('./backend.ts');
const { connect, appRpc } = await import('./rpc.ts');
const store: typeof import('./agent-store.ts') = await import(
  runes === 'svelte' ? './build/agent-store.svelte.js' : './agent-store.ts'
);
const opened = await openBackend(mode as 'worker' | 'inline', dbPath, {
  synchronous: synchronous as 'NORMAL' | 'FULL',
});
connect(opened.backend);
const ready = performance.now();
if (!(await store.loadLastSession(projectId))) {
  console.error(`loadLastSession(${projectId}) restored nothing`);
  process.exit(1);
}
const restored = performance.now();
const sessionId = store.getSession(projectId)!.sessionId;
const { messages } = await appRpc.request['session.messages.load']({ sessionId });
const read = performance.now();
console.log(JSON.stringify({
  ready_ms: ready - started,
  restore_ms: restored - ready,
  read_ms: read - restored,
  session_messages: messages.length,
}));
store.cancelTimersForBenchmark();
await opened.close();
process.exit(0);
