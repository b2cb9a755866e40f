/**
 * Connects the store's `appRpc` to the SQLite persistence: in a worker thread (`worker`, the default: the
 * desktop app answers these requests in its Bun process, beside the webview running the store) or on the
 * store's own thread (`inline`: no second core, no copy across the boundary).
 */
import { openPersistence, type PersistenceOptions } from './persistence.ts';
import type { Backend } from './rpc.ts';

export type Mode = 'worker' | 'inline';

export interface Opened {
  backend: Backend;
  close: () => Promise<void>;
}

export async function openBackend(mode: Mode, path: string, options: PersistenceOptions): Promise<Opened> {
  if (mode === 'inline') {
    const { handlers, close } = openPersistence(path, options);
    return {
      backend: async (method, params) => {
        const handler = handlers[method];
        if (!handler) throw new Error(`unknown rpc method ${method}`);
        return handler(params);
      },
      close: async () => close(),
    };
  }
  const worker = new Worker(new URL('./worker.ts', import.meta.url).href);
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let onControl: ((msg: any) => void) | null = null;
  worker.onmessage = (event: MessageEvent) => {
    const msg = event.data;
    if (msg.id === undefined) {
      onControl?.(msg);
      return;
    }
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(msg.error));
    else p.resolve(msg.result);
  };
  const control = (msg: any) =>
    new Promise<any>((resolve) => {
      onControl = resolve;
      worker.postMessage(msg);
    });
  await control({ init: { path, options } });
  return {
    backend: (method, params) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, method, params });
      }),
    close: async () => {
      await control({ close: true });
      worker.terminate();
    },
  };
}
