/**
 * The Bun-process side of the seed's RPC calls: sessions, their messages and settings in SQLite through
 * `bun:sqlite`, the way the desktop app keeps them (one database file, WAL journal, prepared statements,
 * one transaction per `session.messages.save`).
 *
 * The handlers answer what the seed reads back: `session.load` the project's newest session,
 * `session.messages.load` a session's messages in seqId order. `agent.start` / `stop` / `prompt` answer
 * `ok` without spawning anything: the benchmark's events come from the driver, as the Rust loadtest's come
 * from its synthetic provider.
 */
import { Database } from 'bun:sqlite';

export interface PersistenceOptions {
  /** SQLite `synchronous`: NORMAL (the usual WAL setting: no fsync per commit) or FULL (fsync per commit). */
  synchronous: 'NORMAL' | 'FULL';
}

interface SessionRow {
  project_id: string;
  session_id: string;
  provider: string;
  status: string;
  cost_usd: number;
  input_tokens: number;
  output_tokens: number;
  model: string;
  error: string | null;
  created_at: number;
  updated_at: number;
}

interface MessageRow {
  session_id: string;
  msg_id: string;
  role: string;
  content: string;
  tool_name: string | null;
  tool_input: string | null;
  timestamp: number;
  seq_id: number;
}

export type Handlers = Record<string, (params: any) => unknown>;

export function openPersistence(path: string, opts: PersistenceOptions): { handlers: Handlers; close: () => void } {
  const db = new Database(path, { create: true });
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(`PRAGMA synchronous = ${opts.synchronous}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS agent_sessions (
      session_id TEXT PRIMARY KEY,
      project_id TEXT NOT NULL,
      provider TEXT NOT NULL,
      status TEXT NOT NULL,
      cost_usd REAL NOT NULL DEFAULT 0,
      input_tokens INTEGER NOT NULL DEFAULT 0,
      output_tokens INTEGER NOT NULL DEFAULT 0,
      model TEXT NOT NULL DEFAULT '',
      error TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS agent_sessions_project ON agent_sessions (project_id, updated_at);
    CREATE TABLE IF NOT EXISTS agent_messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      session_id TEXT NOT NULL,
      msg_id TEXT NOT NULL,
      role TEXT NOT NULL,
      content TEXT NOT NULL,
      tool_name TEXT,
      tool_input TEXT,
      timestamp INTEGER NOT NULL,
      seq_id INTEGER NOT NULL DEFAULT 0,
      UNIQUE (session_id, msg_id)
    );
    CREATE INDEX IF NOT EXISTS agent_messages_session ON agent_messages (session_id, seq_id);
  `);

  const upsertSession = db.prepare(`
    INSERT INTO agent_sessions (session_id, project_id, provider, status, cost_usd, input_tokens,
      output_tokens, model, error, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (session_id) DO UPDATE SET project_id = excluded.project_id, provider = excluded.provider,
      status = excluded.status, cost_usd = excluded.cost_usd, input_tokens = excluded.input_tokens,
      output_tokens = excluded.output_tokens, model = excluded.model, error = excluded.error,
      updated_at = excluded.updated_at`);
  const insertMessage = db.prepare(`
    INSERT OR IGNORE INTO agent_messages (session_id, msg_id, role, content, tool_name, tool_input,
      timestamp, seq_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const saveMessages = db.transaction((messages: any[]) => {
    for (const m of messages) {
      insertMessage.run(m.sessionId, m.msgId, m.role, m.content, m.toolName ?? null, m.toolInput ?? null,
        m.timestamp, m.seqId ?? 0);
    }
  });
  const lastSession = db.prepare<SessionRow, [string]>(
    'SELECT * FROM agent_sessions WHERE project_id = ? ORDER BY updated_at DESC LIMIT 1');
  const sessionMessages = db.prepare<MessageRow, [string]>(
    'SELECT * FROM agent_messages WHERE session_id = ? ORDER BY seq_id, id');
  const allSettings = db.prepare<{ key: string; value: string }, []>('SELECT key, value FROM settings');

  const handlers: Handlers = {
    'settings.getAll': () => {
      const settings: Record<string, string> = {};
      for (const row of allSettings.all()) settings[row.key] = row.value;
      return { settings };
    },
    'agent.start': () => ({ ok: true }),
    'agent.stop': () => ({ ok: true }),
    'agent.prompt': () => ({ ok: true }),
    'session.save': (s: any) => {
      upsertSession.run(s.sessionId, s.projectId, s.provider, s.status, s.costUsd, s.inputTokens,
        s.outputTokens, s.model, s.error ?? null, s.createdAt, s.updatedAt);
      return { ok: true };
    },
    'session.messages.save': (p: { messages: any[] }) => {
      saveMessages(p.messages);
      return { ok: true };
    },
    'session.load': (p: { projectId: string }) => {
      const r = lastSession.get(p.projectId);
      if (!r) return { session: null };
      return {
        session: {
          sessionId: r.session_id,
          projectId: r.project_id,
          provider: r.provider,
          status: r.status,
          costUsd: r.cost_usd,
          inputTokens: r.input_tokens,
          outputTokens: r.output_tokens,
          model: r.model,
          error: r.error ?? undefined,
          createdAt: r.created_at,
          updatedAt: r.updated_at,
        },
      };
    },
    'session.messages.load': (p: { sessionId: string }) => ({
      messages: sessionMessages.all(p.sessionId).map((m) => ({
        msgId: m.msg_id,
        role: m.role,
        content: m.content,
        toolName: m.tool_name ?? undefined,
        toolInput: m.tool_input ?? undefined,
        timestamp: m.timestamp,
        seqId: m.seq_id,
      })),
    }),
  };
  return { handlers, close: () => db.close() };
}
