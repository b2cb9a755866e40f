/** Percentiles and the once-a-second timeline, in the shapes of src/loadtest/stats.rs (milliseconds). */

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  samples: number;
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0, samples: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1], samples: sorted.length };
}

export interface TimelinePoint {
  t_s: number;
  messages_per_s: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  errors: number;
}

/** What each second of the stream did: messages acknowledged and request latency. */
export class Timeline {
  points: TimelinePoint[] = [];
  private since = 0;
  private messages = 0;
  private latency: number[] = [];

  record(latencyMs: number, messages: number, tS: number, errors: number): void {
    this.latency.push(latencyMs);
    this.messages += messages;
    if (tS - this.since >= 1) this.tick(tS, errors);
  }

  /** The last sliver of the stream, unless it is too short to mean a rate (as stats.rs decides). */
  close(tS: number, errors: number): void {
    if (tS - this.since >= 0.25 || this.points.length === 0) this.tick(tS, errors);
  }

  private tick(tS: number, errors: number): void {
    const p = percentiles(this.latency);
    this.points.push({
      t_s: tS,
      messages_per_s: this.messages / Math.max(tS - this.since, 1e-9),
      p50_ms: p.p50,
      p90_ms: p.p90,
      p99_ms: p.p99,
      errors,
    });
    this.since = tS;
    this.messages = 0;
    this.latency = [];
  }
}
