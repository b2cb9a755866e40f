/**
 * Builds the runes variant of the store: agent-store.ts with the seed's `$state` put back, its types
 * stripped by Bun's transpiler, then compiled by the Svelte 5 compiler (`compileModule`, client output), so
 * `sessions` is the deep reactive proxy the desktop app runs. Writes build/agent-store.svelte.js, which
 * `driver.ts --runes svelte` loads instead of the plain-object file.
 *
 *   (cd benches/original && npm ci && bun compile.ts)
 */
import { compileModule, VERSION } from 'svelte/compiler';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PLAIN = 'let sessions: Record<string, AgentSession> = {};';
const RUNE = 'let sessions = $state<Record<string, AgentSession>>({});';

const here = import.meta.dir;
let source = readFileSync(join(here, 'agent-store.ts'), 'utf8');
if (!source.includes(PLAIN)) throw new Error(`agent-store.ts no longer declares \`${PLAIN}\``);
source = source.replace(PLAIN, RUNE);
const js = new Bun.Transpiler({ loader: 'ts', trimUnusedImports: false }).transformSync(source);
const out = compileModule(js, { filename: 'agent-store.svelte.js', generate: 'client', dev: false });
mkdirSync(join(here, 'build'), { recursive: true });
// The compiled module imports './rpc.ts' and './health-store.ts' from build/: point them one level up.
const code = out.js.code.replaceAll("'./rpc.ts'", "'../rpc.ts'").replaceAll("'./health-store.ts'", "'../health-store.ts'")
  .replaceAll('"./rpc.ts"', '"../rpc.ts"').replaceAll('"./health-store.ts"', '"../health-store.ts"');
writeFileSync(join(here, 'build', 'agent-store.svelte.js'), `// Compiled by svelte ${VERSION} from agent-store.ts with its $state rune (compile.ts).\n${code}`);
console.error(`build/agent-store.svelte.js written (svelte ${VERSION})`);
