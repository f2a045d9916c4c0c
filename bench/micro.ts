/**
 * Micro-benchmarks (benchmark.js): each generator (cluster, endpoint, listener, route: buildResource + encodeAny,
 * what a worker does on a cache miss) and response framing — a DiscoveryResponse concatenated from cached entries
 * (frameDiscoveryResponse), the same framed at serialization into a reused buffer (PendingResponse, what the ADS
 * streams do), against encoding one with protobufjs, from pre-encoded Anys and from resource objects (what a server
 * without a byte cache would do) — and the registry rebuild of an endpoint-only push at 1,000 and 10,000 services.
 * Prints ops/s and ratios.
 *
 *   npm run bench:micro            (node dist/bench/micro.js [--filter WORD] [--no-write]; appends to bench/RESULTS.md)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Benchmark from 'benchmark';
import { pino } from 'pino';
import { PushEngine } from '../src/push/push-engine.js';
import { createGenerationPool } from '../src/push/generation-pool.js';
import { parseProxy } from '../src/model/proxy.js';
import { scopeFor } from '../src/model/scope.js';
import { encodeAny, encodeMessage, messageType, type ProtoObject } from '../src/proto/encode.js';
import { PendingResponse, frameDiscoveryResponse, resourceEntry, serializeResponse } from '../src/proto/discovery.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, shortType } from '../src/proto/type-urls.js';
import { buildResource, planResources } from '../workers/networking/generator.js';
import { generateMesh, defaultMeshSpec } from '../src/load/mesh-gen.js';
import { makeIdentity } from '../src/load/node-identity.js';
import { buildRegistryData } from '../src/model/build-push-context.js';
import type { MeshSettings } from '../src/model/push-context.js';
import { loadStore } from './common.js';

const loadAtStart = os.loadavg();
const { values: args } = parseArgs({ options: { filter: { type: 'string' }, 'no-write': { type: 'boolean', default: false } } });


// A mesh shaped like the bench scenarios: 1,000 services in 50 namespaces, 10 endpoints each, no isolation (so one
// proxy's CDS is the large, 1,000-cluster response).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-micro-'));
const mesh = generateMesh({ ...defaultMeshSpec(), services: 1000, namespaces: 50, endpoints: 10, vsEvery: 10 }, dir);
const store = loadStore(dir);
fs.rmSync(dir, { recursive: true, force: true });
const pool = createGenerationPool(0);
const engine = new PushEngine({
  store, pool, clusterId: 'Kubernetes', log: pino({ level: 'silent' }), pushConcurrency: 10,
  mesh: { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' },
});
const ctx = engine.rebuild();
const id = makeIdentity(0, {
  namespaces: mesh.namespaceNames, appsByNamespace: new Map([[mesh.namespaceNames[0]!, [mesh.services_[0]!.name]]]), proxyless: false,
  istioVersion: '1.29.0', clusterId: 'Kubernetes', interceptionMode: 'REDIRECT', domainSuffix: 'cluster.local',
});
const scope = scopeFor(parseProxy(id.nodeId, id.metadata), ctx);

function firstName(typeUrl: string, pick: (n: string) => boolean): string {
  const n = planResources(ctx, scope, typeUrl).map((p) => p.name).find(pick);
  if (!n) throw new Error(`no ${shortType(typeUrl)} resource to benchmark`);
  return n;
}
const clusterName = firstName(CLUSTER_TYPE, (n) => n.startsWith('outbound|'));
const subjects: Array<[string, string, string]> = [
  ['cluster', CLUSTER_TYPE, clusterName],
  ['endpoint (10 endpoints)', ENDPOINT_TYPE, firstName(ENDPOINT_TYPE, (n) => n === clusterName)],
  ['listener', LISTENER_TYPE, firstName(LISTENER_TYPE, (n) => n.startsWith('0.0.0.0_'))],
  ['route (1,000 virtual hosts)', ROUTE_TYPE, firstName(ROUTE_TYPE, () => true)],
];

// A full CDS response for this proxy: every cluster's Any bytes, cached entries and resource objects.
const cdsNames = planResources(ctx, scope, CLUSTER_TYPE).map((p) => p.name);
const cdsObjects = cdsNames.map((n) => buildResource(ctx, scope, CLUSTER_TYPE, n)!).filter(Boolean) as Array<ProtoObject & { '@type': string }>;
const cdsAnys = cdsObjects.map((o) => encodeAny(o));
const cdsEntries = cdsAnys.map((a) => resourceEntry(a));
const anyType = messageType('google.protobuf.Any');
const preDecodedAnys = cdsAnys.map((a) => anyType.decode(a));
const Response = messageType('envoy.service.discovery.v3.DiscoveryResponse');
const framedBytes = frameDiscoveryResponse('v1', cdsEntries, CLUSTER_TYPE, 'n1').length;

interface Result { name: string; hz: number; rme: number }
const results: Result[] = [];

function run(suite: Benchmark.Suite): void {
  suite.on('cycle', (e: Benchmark.Event) => {
    const b = e.target as unknown as Benchmark;
    results.push({ name: b.name!, hz: b.hz!, rme: b.stats!.rme });
    process.stdout.write(`${String(b)}\n`);
  }).run({ async: false });
}

const gen = new Benchmark.Suite('generators');
for (const [label, typeUrl, name] of subjects) {
  if (args.filter && !label.includes(args.filter)) continue;
  gen.add(`${label}: buildResource + encodeAny`, () => {
    const obj = buildResource(ctx, scope, typeUrl, name) as ProtoObject & { '@type': string };
    encodeAny(obj);
  });
}
if (gen.length > 0) run(gen);

if (!args.filter || 'framing'.includes(args.filter)) {
  const framing = new Benchmark.Suite('framing');
  framing
    .add(`frame CDS response from ${cdsEntries.length} cached entries (frameDiscoveryResponse)`, () => {
      frameDiscoveryResponse('v1', cdsEntries, CLUSTER_TYPE, 'n1');
    })
    .add('frame the same response at serialization into the reused buffer (PendingResponse, as the ADS stream does)', () => {
      serializeResponse(new PendingResponse('v1', cdsEntries, CLUSTER_TYPE, 'n1'));
    })
    .add('encode the same response with protobufjs from pre-encoded Anys', () => {
      Response.encode(Response.fromObject({ version_info: 'v1', resources: preDecodedAnys, type_url: CLUSTER_TYPE, nonce: 'n1' })).finish();
    })
    .add('encode the same response with protobufjs from resource objects (no byte cache)', () => {
      encodeMessage(Response, { version_info: 'v1', resources: cdsObjects, type_url: CLUSTER_TYPE, nonce: 'n1' });
    });
  run(framing);
}

if (!args.filter || 'registry'.includes(args.filter)) {
  // What an endpoint-only push rebuilds (the registry part of the context), after one EndpointSlice changed.
  const registry = new Benchmark.Suite('registry');
  const meshSettings: MeshSettings = { rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local' };
  for (const n of [1000, 10000]) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-micro-reg-'));
    generateMesh({ ...defaultMeshSpec(), services: n, namespaces: n / 20, endpoints: 5, vsEvery: 10 }, d);
    const s = loadStore(d);
    fs.rmSync(d, { recursive: true, force: true });
    const slices = s.list('EndpointSlice');
    buildRegistryData(s, meshSettings, 'Kubernetes');
    let i = 0;
    registry.add(`registry rebuilt after one EndpointSlice change (${n.toLocaleString('en')} services)`, () => {
      const c = slices[(i++ * 37) % slices.length]!;
      const r = structuredClone(c.resource) as unknown as { endpoints: Array<{ addresses: string[] }> };
      r.endpoints[0]!.addresses = [`240.0.${(i >> 8) % 250}.${i % 250}`];
      s.upsert(r as unknown as typeof c.resource, c.source);
      buildRegistryData(s, meshSettings, 'Kubernetes');
    });
  }
  run(registry);
}

await pool.close();

const hz = (prefix: string): number => results.find((r) => r.name.startsWith(prefix))?.hz ?? 0;
const lines = [
  '',
  `machine: ${os.availableParallelism()} cores, Node ${process.version}; proxy ${id.nodeId}; CDS response ${cdsEntries.length} clusters, ${(framedBytes / 1024).toFixed(0)} KiB`,
  '| benchmark | ops/s | ± | µs/op |',
  '|---|---|---|---|',
  ...results.map((r) => `| ${r.name} | ${r.hz.toFixed(r.hz < 100 ? 1 : 0)} | ${r.rme.toFixed(1)}% | ${(1e6 / r.hz).toFixed(1)} |`),
];
const frame = hz('frame CDS');
if (frame > 0) {
  lines.push('', `framing from cached entries vs protobufjs from pre-encoded Anys: ${(frame / hz('encode the same response with protobufjs from pre-encoded')).toFixed(1)}× faster`,
    `framing from cached entries vs protobufjs from resource objects: ${(frame / hz('encode the same response with protobufjs from resource objects')).toFixed(1)}× faster`,
    `framing into the reused buffer vs into a fresh one: ${(hz('frame the same response at serialization') / frame).toFixed(1)}× faster`);
}
const reg1k = hz('registry rebuilt after one EndpointSlice change (1,000');
if (reg1k > 0) lines.push(`registry rebuild, 10,000 vs 1,000 services: ${(reg1k / hz('registry rebuilt after one EndpointSlice change (10,000')).toFixed(1)}× the time`);
process.stdout.write(`${lines.join('\n')}\n`);
if (!args['no-write'] && !args.filter) {
  const md = path.join(path.dirname(new URL(import.meta.url).pathname), '../../bench/RESULTS.md');
  const head = `\n## micro-benchmarks — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n\nCommand: \`npm run bench:micro\` (\`node dist/bench/micro.js\`), ` +
    `load average at start ${loadAtStart.map((x) => x.toFixed(2)).join(' ')} on a machine shared with other engineers: compare ratios.\n`;
  fs.appendFileSync(md, `${head}${lines.join('\n')}\n`);
}
