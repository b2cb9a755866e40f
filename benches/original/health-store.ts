/**
 * Stand-in for the desktop app's `health-store.svelte.ts`, which the seed imports but which is not part of
 * it. It keeps what the four functions the seed calls are named for (per-project status, last activity,
 * tool in use, token and cost snapshot) in plain objects, so each call costs a map lookup and a few
 * stores, about what the real module's rune updates cost without a UI attached.
 */

interface ProjectHealth {
  status: 'idle' | 'running' | 'done' | 'error';
  lastActivity: number;
  activeTool?: string;
  toolsDone: number;
  tokens: number;
  costUsd: number;
}

const health = new Map<string, ProjectHealth>();

function entry(projectId: string): ProjectHealth {
  let h = health.get(projectId);
  if (!h) {
    h = { status: 'idle', lastActivity: 0, toolsDone: 0, tokens: 0, costUsd: 0 };
    health.set(projectId, h);
  }
  return h;
}

export function recordActivity(projectId: string, toolName?: string): void {
  const h = entry(projectId);
  h.lastActivity = Date.now();
  if (toolName) h.activeTool = toolName;
}

export function recordToolDone(projectId: string): void {
  const h = entry(projectId);
  h.lastActivity = Date.now();
  h.activeTool = undefined;
  h.toolsDone++;
}

export function recordTokenSnapshot(projectId: string, tokens: number, costUsd: number): void {
  const h = entry(projectId);
  h.tokens = tokens;
  h.costUsd = costUsd;
}

export function setProjectStatus(projectId: string, status: ProjectHealth['status']): void {
  entry(projectId).status = status;
}
