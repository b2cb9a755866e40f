/**
 * Puts loadtest reports side by side as issue 16's table does: for each content size, agent-store's
 * ingest and end-to-end persistence against each variant of the original store, as ratios, and the peak
 * memory of each. Several rounds of the same configuration are reduced to their median.
 *
 *   bun benches/original/compare.ts DIR      # DIR holds rust-<sizes>-<round>.json, optionally
 *                                            # rust-nolive-<sizes>-<round>.json (no live subscriber), and
 *                                            # original-<runes>-<sizes>-<round>.json (run.sh writes them)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Report {
  settings: { projects: number; messages_per_project: number; batch: number; sizes: string };
  messages_per_s: number;
  stream_s: number;
  finish_s: number;
  rss_peak_bytes: number | null;
  cores_busy?: number | null;
  loss_check: { passed: boolean };
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: bun compare.ts DIR');
  process.exit(2);
}

const groups = new Map<string, Report[]>();
for (const name of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
  const m = name.match(/^(rust|rust-nolive|original-\w+)-(small|realistic)-\w+\.json$/);
  if (!m) continue;
  const report = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Report;
  if (!report.loss_check.passed) console.error(`${name}: its loss check FAILED; left out`);
  else groups.set(`${m[1]} ${m[2]}`, [...(groups.get(`${m[1]} ${m[2]}`) ?? []), report]);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const figures = (rs: Report[]) => ({
  ingest: median(rs.map((r) => r.messages_per_s)),
  persisted_s: median(rs.map((r) => r.stream_s + r.finish_s)),
  peak_mib: median(rs.map((r) => (r.rss_peak_bytes ?? NaN) / 1048576)),
  cores: median(rs.map((r) => r.cores_busy ?? NaN)),
  runs: rs.length,
});

const k = (n: number) => `${(n / 1000).toFixed(0)}k/s`;
console.log('| content | agent-store: live subscriber | original | runs (agent-store, original) | ingest: agent-store, original, ratio | all persisted: agent-store, original, × sooner | peak memory: agent-store vs original | cores busy while ingesting: agent-store, original |');
console.log('|---|---|---|---|---|---|---|---|');
for (const sizes of ['small', 'realistic']) {
  for (const [ours, live] of [['rust', 'one'], ['rust-nolive', 'none (as the original)']]) {
    const rust = groups.get(`${ours} ${sizes}`);
    if (!rust) continue;
    const a = figures(rust);
    for (const [key, reports] of groups) {
      const [variant, s] = key.split(' ');
      if (s !== sizes || variant.startsWith('rust')) continue;
      const o = figures(reports);
      console.log(
        `| ${sizes} | ${live} | ${variant.replace('original-', '')} | ${a.runs}, ${o.runs} | ` +
          `${k(a.ingest)}, ${k(o.ingest)}, ${(a.ingest / o.ingest).toFixed(1)}× | ` +
          `${a.persisted_s.toFixed(2)} s, ${o.persisted_s.toFixed(2)} s, ${(o.persisted_s / a.persisted_s).toFixed(1)}× | ` +
          `${a.peak_mib.toFixed(0)} vs ${o.peak_mib.toFixed(0)} MiB (${(a.peak_mib / o.peak_mib).toFixed(2)}) | ` +
          `${a.cores.toFixed(2)}, ${o.cores.toFixed(2)} |`,
      );
    }
  }
}
