/**
 * The messages the Rust loadtest sends (src/loadtest/content.rs and plan.rs), rebuilt byte for byte: the
 * same ten-message turn (thinking, tool calls and results, one text), the same prose generator and sizes,
 * the same hash choosing a size per project and turn, and the same cutting into events and requests
 * (round by round: every project's chunk 0, then every project's chunk 1, ...).
 */

export type Sizes = 'small' | 'realistic';

export const ID_PREFIX = 'lt-';

const TURN = ['thinking', 'tool_call', 'tool_result', 'tool_call', 'tool_result', 'text', 'tool_call',
  'tool_result', 'tool_call', 'tool_result'] as const;
type Kind = (typeof TURN)[number];

const M64 = (1n << 64n) - 1n;

/** `prose` of content.rs: about `len` ASCII bytes; `i` wraps as a u64. */
function prose(len: number, seed: number): string {
  const WORDS = ['the', 'store', 'session', 'message', 'actor', 'persists', 'batch', 'project', 'agent',
    'reads', 'file', 'writes', 'test', 'passes', 'because', 'change'];
  let s = '';
  let i = BigInt(seed);
  while (s.length < len) {
    s += WORDS[Number(i % 16n)];
    i = (i * 31n + 7n) & M64;
    s += i % 13n === 0n ? '\n' : ' ';
  }
  return s.slice(0, len);
}

/** A template: a function making a fresh content object per message (as a parse would), and its size. */
interface Template {
  kind: Kind;
  make: () => unknown;
  jsonLength: number;
}

function template(kind: Kind, value: any): Template {
  const jsonLength = JSON.stringify(value).length;
  if (kind === 'tool_call') {
    return { kind, jsonLength, make: () => ({ name: value.name, input: { ...value.input } }) };
  }
  if (kind === 'tool_result') return { kind, jsonLength, make: () => ({ output: value.output }) };
  return { kind, jsonLength, make: () => ({ text: value.text }) };
}

export class Content {
  private sets: Record<Kind, Template[]>;
  /** `(h >> 33)` of content.rs's hash, per project and turn, computed before the clock starts. */
  private choice: Uint32Array;
  private turns: number;

  constructor(sizes: Sizes, projects: number, messages: number) {
    const [text, thinking, output, edit] = sizes === 'realistic'
      ? [[120, 600, 1700, 4000], [300, 1300, 4000], [300, 2000, 8600, 8600, 16000], 400]
      : [[80], [120], [150], 60];
    const texts = (kind: Kind, lens: number[]) => lens.map((n, i) => template(kind, { text: prose(n, i) }));
    const half = Math.floor((edit as number) / 2);
    this.sets = {
      text: texts('text', text as number[]),
      thinking: texts('thinking', thinking as number[]),
      tool_call: [
        template('tool_call', { name: 'Bash', input: { command: 'cargo test --all-targets -- --nocapture' } }),
        template('tool_call', { name: 'Read', input: { file_path: '/work/project/src/actors/session.rs' } }),
        template('tool_call', { name: 'Edit', input: {
          file_path: '/work/project/src/storage/store.rs',
          old_string: prose(half, 3),
          new_string: prose(half, 5),
        } }),
        template('tool_call', { name: 'Grep', input: { pattern: 'fn apply', path: '/work/project/src' } }),
      ],
      tool_result: (output as number[]).map((n, i) => template('tool_result', { output: prose(n, 11 + i) })),
    };
    this.turns = Math.ceil(messages / TURN.length);
    this.choice = new Uint32Array(projects * this.turns);
    for (let p = 0; p < projects; p++) {
      const hp = (BigInt(p) * 0x9E3779B97F4A7C15n) & M64;
      for (let t = 0; t < this.turns; t++) {
        const h = (((hp + BigInt(t)) & M64) * 0xBF58476D1CE4E5B9n) & M64;
        this.choice[p * this.turns + t] = Number(h >> 33n);
      }
    }
  }

  private template(project: number, index: number): Template {
    const set = this.sets[TURN[index % TURN.length]];
    const turn = Math.floor(index / TURN.length);
    return set[this.choice[project * this.turns + turn] % set.length];
  }

  /** Raw message `index` of `project`, in the sidecar's shape. */
  raw(project: number, index: number, timestamp: number) {
    const t = this.template(project, index);
    return { id: ID_PREFIX + index, type: t.kind, content: t.make(), timestamp };
  }

  contentLength(project: number, index: number): number {
    return this.template(project, index).jsonLength;
  }
}

/** The message index a generated id carries, or null for any other message (the prompt, say). */
export function messageIndex(id: string): number | null {
  if (!id.startsWith(ID_PREFIX)) return null;
  const n = Number(id.slice(ID_PREFIX.length));
  return Number.isInteger(n) ? n : null;
}

/** `Layout` of plan.rs. */
export class Layout {
  readonly perEvent: number;
  readonly eventsPerRequest: number;

  constructor(readonly projects: number, readonly messages: number, perEvent: number, batch: number) {
    projects = Math.max(projects, 1);
    batch = Math.max(batch, 1);
    this.perEvent = Math.max(Math.min(Math.max(perEvent, Math.ceil(batch / projects)), batch, Math.max(messages, 1)), 1);
    this.eventsPerRequest = Math.max(Math.floor(batch / this.perEvent), 1);
  }

  chunks(): number {
    return Math.ceil(this.messages / this.perEvent);
  }

  chunkRange(chunk: number): [number, number] {
    const start = chunk * this.perEvent;
    return [start, Math.min(start + this.perEvent, this.messages)];
  }

  /** Every request of the run, round by round: `[chunk, firstProject, endProject)`. */
  *requests(): Generator<[number, number, number]> {
    const step = this.eventsPerRequest;
    for (let chunk = 0; chunk < this.chunks(); chunk++) {
      for (let start = 0; start < this.projects; start += step) {
        yield [chunk, start, Math.min(start + step, this.projects)];
      }
    }
  }

  *projectGroups(): Generator<[number, number]> {
    const step = this.eventsPerRequest;
    for (let start = 0; start < this.projects; start += step) {
      yield [start, Math.min(start + step, this.projects)];
    }
  }
}
