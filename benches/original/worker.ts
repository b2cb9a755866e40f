/**
 * The desktop app's Bun process, reduced to what the store asks of it: a thread of its own that owns the
 * SQLite database and answers RPC requests posted to it (`{ id, method, params }` → `{ id, result }` or
 * `{ id, error }`). Messages cross the thread boundary by structured clone, as RPC payloads cross the
 * webview/Bun boundary by serialisation in the app.
 */
import { openPersistence, type PersistenceOptions } from './persistence.ts';

declare const self: Worker;

let handlers: ReturnType<typeof openPersistence>['handlers'] | null = null;
let close: (() => void) | null = null;

self.onmessage = (event: MessageEvent) => {
  const msg = event.data;
  if (msg.init) {
    const opened = openPersistence(msg.init.path as string, msg.init.options as PersistenceOptions);
    handlers = opened.handlers;
    close = opened.close;
    self.postMessage({ ready: true });
    return;
  }
  if (msg.close) {
    close?.();
    self.postMessage({ closed: true });
    return;
  }
  const { id, method, params } = msg;
  try {
    const handler = handlers?.[method];
    if (!handler) throw new Error(`unknown rpc method ${method}`);
    self.postMessage({ id, result: handler(params) });
  } catch (err) {
    self.postMessage({ id, error: String(err) });
  }
};
