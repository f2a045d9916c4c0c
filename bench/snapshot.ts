/**
 * How the PushContext reaches workers, measured side by side in one run (issue #3, item 4):
 *   clone — the data travels with every task (postMessage's structured clone), the baseline;
 *   json  — written once per push as JSON into a SharedArrayBuffer, each worker parses it once per version;
 *   flat  — the endpoints part as a flatbuffer in a SharedArrayBuffer, read in place and lazily per service.
 * The workload is an endpoint-only push in a Sidecar-isolated mesh: many scope groups, each generating the
 * ClusterLoadAssignments of its namespace's services. Prints hdr-histogram percentiles per push and ratios, and
 * appends them to bench/RESULTS.md (unless --no-write).
 *
 *   node dist/bench/snapshot.js [--services 1000] [--namespaces 50] [--endpoints 10] [--pushes 15] [--workers 2]
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { LatencyHistogram } from '../src/load/histogram.js';
import type { PushContextData } from '../src/model/push-context.js';
import type { Endpoint, Service } from '../src/model/service.js';
import type { ProxyScope } from '../src/model/scope.js';
import { encodeSnapshot, type EndpointsFormat } from '../src/model/snapshot-codec.js';
import { FlatEndpointsEncoder } from '../src/model/snapshot-flat.js';
import { ENDPOINT_TYPE } from '../src/proto/type-urls.js';
import { contentHash } from '../src/config/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SERVICES = arg('services', 1000), NAMESPACES = arg('namespaces', 50), ENDPOINTS = arg('endpoints', 10);
const PUSHES = arg('pushes', 15), WORKERS = arg('workers', 2);

function mesh(version: string, jitter: number): PushContextData {
  const services: Service[] = [];
  const endpoints: Record<string, Endpoint[]> = {};
  const endpointVersions: Record<string, string> = {};
  for (let i = 0; i < SERVICES; i++) {
    const ns = `ns-${i % NAMESPACES}`;
    const hostname = `svc-${i}.${ns}.svc.cluster.local`;
    services.push({ hostname, name: `svc-${i}`, namespace: ns, address: `10.96.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'HTTP' }], selector: { app: `svc-${i}` }, exportTo: ['*'], resolution: 'EDS', meshExternal: false, version: `s${i}` });
    endpoints[hostname] = Array.from({ length: ENDPOINTS }, (_, j) => ({
      address: `10.${(i >> 8) & 255}.${i & 255}.${j + (i === 0 ? jitter : 0)}`, port: 8080, servicePortName: 'http',
      labels: { app: `svc-${i}`, version: 'v1', 'pod-template-hash': 'abcdef1234' }, locality: { region: 'r1', zone: `z${j % 3}`, subzone: '' },
      healthy: true, serviceAccount: `sa-${i}`, namespace: ns, workloadName: `svc-${i}-${j}`, clusterId: 'Kubernetes',
    }));
    endpointVersions[hostname] = contentHash(endpoints[hostname]);
  }
  return {
    version, mesh: { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' },
    services, endpoints, endpointVersions, virtualServices: [], destinationRules: [], gateways: [], sidecars: [],
    peerAuthentications: [], authorizationPolicies: [], requestAuthentications: [], workloads: [],
  } as PushContextData;
}

const scopeOf = (ns: string): ProxyScope =>
  ({ type: 'sidecar', generator: 'envoy', namespace: ns, interception: 'REDIRECT', inbound: [] }) as unknown as ProxyScope;

/**
 * cold: one task per namespace (its scope group) generating all of that namespace's ClusterLoadAssignments (a
 * first push, or caching off). incremental: one service's endpoints changed; with the resource cache, that one
 * ClusterLoadAssignment is the only miss, generated once for every proxy that sees it.
 */
function tasks(data: PushContextData, scenario: 'cold' | 'incremental'): Array<{ scope: ProxyScope; names: string[] }> {
  if (scenario === 'incremental') return [{ scope: scopeOf('ns-0'), names: [`outbound|8080||${data.services[0]!.hostname}`] }];
  return Array.from({ length: NAMESPACES }, (_, n) => ({
    scope: scopeOf(`ns-${n}`),
    names: data.services.filter((s) => s.namespace === `ns-${n}`).map((s) => `outbound|8080||${s.hostname}`),
  }));
}

async function run(mode: 'clone' | EndpointsFormat, scenario: 'cold' | 'incremental'): Promise<{ push: LatencyHistogram; encode: LatencyHistogram; bytes: number }> {
  const filename = mode === 'clone' ? path.join(here, 'snapshot-clone-worker.js') : path.join(here, '../workers/generate.js');
  const pool = new Piscina({ filename, minThreads: WORKERS, maxThreads: WORKERS, idleTimeout: Infinity });
  const push = new LatencyHistogram(), encode = new LatencyHistogram();
  let bytes = 0;
  let prev: ReturnType<typeof encodeSnapshot> | undefined;
  const flat = new FlatEndpointsEncoder(); // kept across pushes, as the push engine keeps it
  try {
    for (let p = 0; p <= PUSHES; p++) {
      const data = mesh(`v${p}`, p);
      const t0 = performance.now();
      const snap = mode === 'clone' ? undefined : encodeSnapshot(data, 'config-1', prev, mode, flat);
      const t1 = performance.now();
      prev = snap;
      await Promise.all(tasks(data, scenario).map((t) => pool.run(mode === 'clone'
        ? { data, scope: t.scope, typeUrl: ENDPOINT_TYPE, names: t.names }
        : { snapshot: snap, scope: t.scope, typeUrl: ENDPOINT_TYPE, names: t.names })));
      const t2 = performance.now();
      if (p === 0) continue; // warm-up: worker start, proto loading, JIT
      encode.recordMs(t1 - t0);
      push.recordMs(t2 - t0);
      bytes = snap ? snap.endpoints.length + snap.config.length : Buffer.byteLength(JSON.stringify(data));
    }
  } finally {
    await pool.destroy();
  }
  return { push, encode, bytes };
}

const cmd = `node dist/bench/snapshot.js --services ${SERVICES} --namespaces ${NAMESPACES} --endpoints ${ENDPOINTS} --pushes ${PUSHES} --workers ${WORKERS}`;
let section = `\n## Snapshot transfer to workers (issue #3 item 4)\n\n\`${cmd}\` — ${new Date().toISOString()}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; machine shared with other work (compare ratios).\n\nA ${SERVICES}-service, ${NAMESPACES}-namespace mesh (${SERVICES * ENDPOINTS} endpoints), ${WORKERS}-thread pool, ${PUSHES} pushes after a warm-up each. "push" = main-thread encode + every worker task to completion. *cold*: ${NAMESPACES} scope groups each generate their namespace's ClusterLoadAssignments. *incremental*: one service's endpoints change; with the resource cache that one assignment is the only generation task.\n`;
for (const scenario of ['cold', 'incremental'] as const) {
  const results: Record<string, Awaited<ReturnType<typeof run>>> = {};
  for (const mode of ['clone', 'json', 'flat'] as const) {
    process.stderr.write(`snapshot bench: ${scenario} ${mode}…\n`);
    results[mode] = await run(mode, scenario);
  }
  const base = results.clone!.push.summary();
  section += `\n**${scenario}**\n\n| transfer | push p50 ms | push p99 ms | max | encode p50 ms | snapshot bytes | p50 vs clone |\n|---|---|---|---|---|---|---|\n`;
  for (const [m, r] of Object.entries(results)) {
    const s = r.push.summary(), e = r.encode.summary();
    section += `| ${m} | ${s.p50} | ${s.p99} | ${s.max} | ${e.p50} | ${r.bytes.toLocaleString('en')} | ${(s.p50 / base.p50).toFixed(2)}× |\n`;
  }
}
process.stdout.write(section);
// --no-write: print only, as the other benchmarks.
if (!process.argv.includes('--no-write')) fs.appendFileSync(path.join(here, '../../bench/RESULTS.md'), section);
