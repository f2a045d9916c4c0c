/**
 * Generation throughput by pool size, with nothing else on the machine (no load harness, no connections): the
 * question the end-to-end workers scenarios cannot answer on two cores shared with the harness — does generation
 * get faster as threads are added when cores are free?
 *
 * The work is a cold push of a Sidecar-isolated mesh: every namespace's sidecar asks for its CDS, EDS, LDS and RDS
 * at once after the resource cache was emptied and a new PushContext built, so every scope group generates its own
 * resources. Variants, side by side in one run:
 *   inline   — `--workers 0`, everything on the main thread;
 *   pool N   — every batch posted to the pool (inlineMax 0): N threads, the main thread only dispatches;
 *   adaptive — the server's default rule with 1 thread (spare cores, batch cost, generation load).
 * Threads are started and warmed before timing; the variants take turns, one push each per round; each run builds
 * a new PushContext, so the main thread encodes and workers decode a new snapshot, as after a full push. Prints hdr-histogram percentiles of the push time and ratios to inline,
 * and appends them to bench/RESULTS.md (unless --no-write).
 *
 *   node dist/bench/pool.js [--services 2000] [--namespaces 40] [--runs 7] [--no-write]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { PushEngine } from '../src/push/push-engine.js';
import { createGenerationPool } from '../src/push/generation-pool.js';
import { parseProxy } from '../src/model/proxy.js';
import { generateMesh, defaultMeshSpec } from '../src/load/mesh-gen.js';
import { LatencyHistogram } from '../src/load/histogram.js';
import { PUSH_ORDER } from '../src/proto/type-urls.js';
import { loadStore } from './common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SERVICES = arg('services', 2000), NAMESPACES = arg('namespaces', 40), RUNS = arg('runs', 7);
const MESH = { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-pool-'));
const mesh = generateMesh({ ...defaultMeshSpec(), services: SERVICES, namespaces: NAMESPACES, endpoints: 5, vsEvery: 10, sidecarIsolation: true }, dir);
const store = loadStore(dir);
fs.rmSync(dir, { recursive: true, force: true });
const proxies = mesh.namespaceNames.map((ns, i) => parseProxy(`sidecar~10.200.${i >> 8}.${i & 255}~bench-0.${ns}~${ns}.svc.cluster.local`,
  { NAMESPACE: ns, LABELS: { app: 'bench' } }));

/**
 * One cold push on a running engine: the resource cache emptied and a new context built (as a mesh-wide change
 * would leave them), then every namespace's four types at once. The engine (and its snapshot encoder, which
 * reuses unchanged services' endpoint buffers) lives across runs, as a server's does.
 */
async function coldPush(engine: PushEngine): Promise<{ ms: number; resources: number }> {
  engine.cache.clear();
  engine.rebuild();
  const t0 = performance.now();
  const out = await Promise.all(proxies.flatMap((p) => PUSH_ORDER.map((t) => engine.compute(p, t, undefined))));
  const ms = performance.now() - t0;
  return { ms, resources: out.reduce((n, r) => n + r.entries.length, 0) };
}

interface Variant { name: string; workers: number; inlineMax?: number }
const variants: Variant[] = [
  { name: 'inline (--workers 0)', workers: 0 },
  { name: 'pool 1', workers: 1, inlineMax: 0 },
  { name: 'pool 2', workers: 2, inlineMax: 0 },
  { name: 'pool 4', workers: 4, inlineMax: 0 },
  { name: 'adaptive, 1 thread (the default)', workers: 1 },
];
// Variants take turns, one push each per round (the order rotating every round), so none is favoured by running
// later with a warmer JIT or a quieter machine: run one after another, the last variant measured ~15% faster than
// the first while running the same inline code.
const setups = variants.map((v) => {
  const pool = createGenerationPool(v.workers);
  const engine = new PushEngine({ store, pool, inlineMax: v.inlineMax, clusterId: 'Kubernetes', log: pino({ level: 'silent' }), pushConcurrency: 10, mesh: MESH });
  return { v, pool, engine, h: new LatencyHistogram(), resources: 0 };
});
// Start and warm every thread (and the main thread's JIT) with untimed pushes.
for (const s of setups) for (let i = 0; i < Math.max(2, s.v.workers); i++) await coldPush(s.engine);
for (let r = 0; r < RUNS; r++) {
  for (let k = 0; k < setups.length; k++) {
    const s = setups[(r + k) % setups.length]!;
    const { ms, resources: n } = await coldPush(s.engine);
    s.h.recordMs(ms);
    s.resources = n;
    process.stderr.write(`pool bench: round ${r + 1}/${RUNS}: ${s.v.name}: ${ms.toFixed(1)} ms\n`);
  }
}
const results = setups.map((s) => ({ v: s.v, h: s.h, resources: s.resources, threads: s.pool.running ?? s.pool.threads }));
for (const s of setups) await s.pool.close();

const base = results[0]!.h.summary().p50;
let section = `\n## Generation pool scaling (issue #3, workers) — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n\n` +
  `\`node dist/bench/pool.js --services ${SERVICES} --namespaces ${NAMESPACES} --runs ${RUNS}\` — ${os.availableParallelism()} cores, ` +
  `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.\n\n` +
  `A cold push of a ${SERVICES}-service mesh in ${NAMESPACES} Sidecar-isolated namespaces: each namespace's sidecar asks for CDS, EDS, LDS ` +
  `and RDS at once after the engine's resource cache was emptied and a new context built (the snapshot encoder lives across runs, as in a server), ${results[0]!.resources.toLocaleString('en')} resources; nothing else runs ` +
  `(no harness, no connections); the variants take turns, one push each per round. "pool N": every batch posted to N threads; "adaptive": the server's default rule.\n\n` +
  '| variant | threads running | push p50 ms | p90 | max | p50 vs inline |\n|---|---|---|---|---|---|\n';
for (const { v, h, threads } of results) {
  const s = h.summary();
  section += `| ${v.name} | ${threads} | ${s.p50} | ${s.p90} | ${s.max} | ${(s.p50 / base).toFixed(2)}× |\n`;
}
process.stdout.write(section);
if (!process.argv.includes('--no-write')) fs.appendFileSync(path.join(here, '../../bench/RESULTS.md'), section);
