/**
 * Stand-in for the desktop app's `rpc.ts`: the webview side of the RPC channel to the Bun process.
 *
 * `appRpc.request[method](params)` sends a request and answers a promise of the reply, as the seed calls
 * it; `appRpc.addMessageListener(name, fn)` registers for messages the Bun process pushes. Who answers the
 * requests is set with `connect` (see `backend.ts`: SQLite in a worker thread, as the desktop app's Bun
 * process, or on the same thread); the driver pushes the sidecar's events with `deliver`.
 */

export type Backend = (method: string, params: unknown) => Promise<any>;
type Listener = (payload: any) => void;

let backend: Backend | null = null;
const listeners = new Map<string, Listener[]>();

export function connect(b: Backend): void {
  backend = b;
}

/** Pushes one message from the Bun side to every listener registered for it, as the channel would. */
export function deliver(name: string, payload: unknown): void {
  const fns = listeners.get(name);
  if (!fns) return;
  for (const fn of fns) fn(payload);
}

export const appRpc = {
  request: new Proxy({} as Record<string, (params: any) => Promise<any>>, {
    get: (_target, method: string) => (params: unknown) => {
      if (!backend) return Promise.reject(new Error(`rpc: no backend connected for ${method}`));
      return backend(method, params);
    },
  }),
  addMessageListener(name: string, fn: Listener): void {
    const fns = listeners.get(name);
    if (fns) fns.push(fn);
    else listeners.set(name, [fn]);
  },
};
