/**
 * The original store as an oracle for tests/original_parity.rs: reads a JSON array of raw messages on
 * stdin, delivers each as its own `agent.message` event to one running session of the reconstructed store
 * (agent-store.ts), and prints a JSON array with, for each, the message the store appended, `null` when it
 * appended none, or `{ "threw": "..." }` when the store's listener threw.
 *
 *   echo '[{"id":"a","type":"text","content":{"text":"hi"},"timestamp":1}]' | bun benches/original/convert-oracle.ts
 */
import { openBackend } from './backend.ts';
import { connect, deliver } from './rpc.ts';
import * as store from './agent-store.ts';

const opened = await openBackend('inline', ':memory:', { synchronous: 'NORMAL' });
connect(opened.backend);
const started = await store.startAgent('parity', 'claude', 'parity');
if (!started.ok) throw new Error(`startAgent: ${started.error}`);
const session = store.getSession('parity')!;

const raws = JSON.parse(await Bun.stdin.text()) as unknown[];
const out: unknown[] = [];
for (const raw of raws) {
  const before = session.messages.length;
  try {
    deliver('agent.message', { sessionId: session.sessionId, messages: [raw] });
  } catch (err) {
    out.push({ threw: String(err) });
    continue;
  }
  const appended = session.messages.length > before ? session.messages[session.messages.length - 1] : null;
  out.push(appended);
}
// Written in full before the exit below (a pipe takes 64 KiB at a time).
await Bun.write(Bun.stdout, JSON.stringify(out));
store.cancelTimersForBenchmark();
await opened.close();
process.exit(0);
