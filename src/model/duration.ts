/** Go-style durations ("100ms", "1.5s", "1h2m"), as istiod's flags, env vars and Istio CRDs accept them. */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

export function parseDurationMs(input: string): number {
  const s = input.trim();
  if (s === '0') return 0;
  if (/^\d+$/.test(s)) throw new Error(`duration "${input}": missing unit (e.g. 100ms, 10s)`);
  let total = 0;
  PART.lastIndex = 0;
  let consumed = 0;
  while (consumed < s.length) {
    PART.lastIndex = consumed;
    const m = PART.exec(s);
    if (!m) throw new Error(`duration "${input}": invalid (expected e.g. 100ms, 1.5s, 1h2m)`);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed = PART.lastIndex;
  }
  if (s.length === 0) throw new Error('duration is empty');
  return total;
}

/** A flag value: Go-style duration, or a bare number meaning milliseconds. */
export function parseDurationFlag(input: string): number {
  if (/^\d+(\.\d+)?$/.test(input.trim())) return Number(input);
  return parseDurationMs(input);
}
