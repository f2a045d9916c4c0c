/**
 * istiod side by side (issue #3): the same mesh, the same simulated proxies and the same churn against istiod
 * (`pilot-discovery discovery`, Kubernetes mode) and `meshpilot serve --kubeconfig`, one after the other, both
 * reading one real kube-apiserver + etcd (test/helpers/kube-apiserver.ts). The mesh from `meshpilot load gen-mesh
 * --format kube` (Namespaces, Services, EndpointSlices, Sidecars, VirtualServices) is applied with kubectl
 * (server-side, in chunks); churn goes through the API server too (`meshpilot load --churn-kubeconfig`): a change's
 * time is when the API server accepted it. Appends a section (tables, bytes per proxy by type, SVG) to
 * bench/RESULTS.md.
 *
 *   scripts/install-istiod.sh        # pilot-discovery and Istio's CRDs (module cache), kube-apiserver + etcd
 *   node dist/bench/istiod.js [--proxies 100,1000] [--services 50] [--namespaces 10] [--endpoints 5] [--no-isolation]
 *       [--churn endpoints=1,vs=0.5] [--duration 10s] [--delta] [--servers istiod,meshpilot] [--no-write]
 *   node dist/bench/istiod.js --diff OUTDIR [--extra DIR] [--services 6] [--namespaces 2]
 *       config diff instead of load: what each server sends proxy 0 (CDS, EDS, LDS, RDS, nested Anys decoded) as
 *       OUTDIR/istiod.json and OUTDIR/meshpilot.json, and the differences, resource by resource, in OUTDIR/diff.md;
 *       --extra applies the YAML files of DIR on top of the generated mesh; --gateway asks as an ingress gateway
 *       (router, istio-system, label istio=ingressgateway) instead of proxy 0.
 * PILOT_DISCOVERY and ISTIO_CRDS override where pilot-discovery and crd-all.gen.yaml are found; MESHPILOT_NODE_ARGS
 * adds node flags to the meshpilot server (e.g. --cpu-prof --cpu-prof-dir=DIR).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import * as grpc from '@grpc/grpc-js';
import type { LoadReport } from '../src/load/run-load.js';
import { readManifest } from '../src/load/mesh-gen.js';
import { makeIdentity } from '../src/load/node-identity.js';
import { jsonToStruct, messageType, toJson, type ProtoObject } from '../src/proto/encode.js';
import { startRealApiServer, realApiServerMissing, type RealApiServer } from '../test/helpers/kube-apiserver.js';
import { freePort } from '../test/helpers/ports.js';
import { lineChart, type Series } from './plot.js';
import { f1, lat, MAIN, reach, ROOT, runHarness, stop, waitReady } from './common.js';

const RESULTS_DIR = path.join(ROOT, 'bench/results');
const RESULTS_MD = path.join(ROOT, 'bench/RESULTS.md');
const ISTIO_VERSION = process.env.ISTIO_VERSION ?? 'v0.0.0-20260827124520-eed52ebb66ad';

const { values: args } = parseArgs({
  options: {
    proxies: { type: 'string', default: '100' },
    services: { type: 'string', default: '50' },
    namespaces: { type: 'string', default: '10' },
    endpoints: { type: 'string', default: '5' },
    'vs-every': { type: 'string', default: '10' },
    'no-isolation': { type: 'boolean', default: false },
    delta: { type: 'boolean', default: false },
    churn: { type: 'string', default: 'endpoints=1,vs=0.5' },
    duration: { type: 'string', default: '10s' },
    'event-timeout': { type: 'string', default: '15s' },
    servers: { type: 'string', default: 'istiod,meshpilot' },
    'no-write': { type: 'boolean', default: false },
    diff: { type: 'string' },
    gateway: { type: 'boolean', default: false },
    extra: { type: 'string' },
  },
});
const proxyCounts = args.proxies!.split(',').map(Number);
const servers = args.servers!.split(',') as Array<'istiod' | 'meshpilot'>;
for (const s of servers) if (s !== 'istiod' && s !== 'meshpilot') throw new Error(`--servers: unknown server ${s} (istiod, meshpilot)`);
if (proxyCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--proxies: comma-separated positive integers');

function log(s: string): void { process.stderr.write(`[istiod-bench] ${s}\n`); }

function goPath(what: 'GOPATH' | 'GOMODCACHE'): string | undefined {
  const r = spawnSync('go', ['env', what], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** pilot-discovery and the CRD file, or why they are missing (scripts/install-istiod.sh installs both). */
function istioPaths(): { bin: string; crds: string } {
  const gopath = goPath('GOPATH') ?? path.join(os.homedir(), 'go');
  const bin = process.env.PILOT_DISCOVERY ?? path.join(gopath, 'bin', 'pilot-discovery');
  const crds = process.env.ISTIO_CRDS ?? path.join(goPath('GOMODCACHE') ?? path.join(gopath, 'pkg/mod'), `istio.io/istio@${ISTIO_VERSION}`, 'manifests/charts/base/files/crd-all.gen.yaml');
  for (const f of [bin, crds]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: run scripts/install-istiod.sh`);
  return { bin, crds };
}

/**
 * Every object of the generated mesh, Namespaces first. Services lose their generated clusterIP: the API server
 * allocates one (the first generated address, 10.96.0.1, is the `kubernetes` Service's in its range); the harness
 * never uses cluster IPs.
 */
function meshObjects(dir: string): Array<Record<string, any>> {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) files.push(p);
    }
  };
  walk(dir);
  const objs: Array<Record<string, any>> = [];
  for (const f of files) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(f, 'utf8'))) {
      const o = doc.toJSON() as Record<string, any> | null;
      if (!o) continue;
      if (o.kind === 'Service') delete o.spec.clusterIP;
      objs.push(o);
    }
  }
  const rank = (o: Record<string, any>): number => (o.kind === 'Namespace' ? 0 : o.kind === 'Service' ? 1 : 2);
  return objs.sort((a, b) => rank(a) - rank(b));
}

/** `kubectl apply --server-side` in chunks of 250 objects, 3 kubectl processes at a time (Namespaces first). */
async function applyMesh(api: RealApiServer, objs: Array<Record<string, any>>): Promise<number> {
  const t0 = performance.now();
  const apply = (list: Array<Record<string, any>>): Promise<string> =>
    api.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: list }));
  const found = objs.findIndex((o) => o.kind !== 'Namespace');
  const nsEnd = found < 0 ? objs.length : found;
  if (nsEnd > 0) await apply(objs.slice(0, nsEnd));
  const rest = objs.slice(nsEnd);
  const chunks: Array<Array<Record<string, any>>> = [];
  for (let i = 0; i < rest.length; i += 250) chunks.push(rest.slice(i, i + 250));
  let next = 0;
  await Promise.all(Array.from({ length: 3 }, async () => { while (next < chunks.length) await apply(chunks[next++]!); }));
  return performance.now() - t0;
}

interface Started { child: ChildProcess; xds: string; readyMs: number; cmd: string; logFile: string }

/** Both servers: default debounce (100 ms) and push throttle; the new-connection rate limit off (as the isolation scenario). */
async function startServer(kind: 'istiod' | 'meshpilot', api: RealApiServer, bin: string, work: string): Promise<Started> {
  const [xdsPort, httpPort, monPort, httpsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const logFile = path.join(work, `${kind}.log`);
  const out = fs.openSync(logFile, 'w');
  if (kind === 'istiod') {
    // ENABLE_CA_SERVER=false: no cluster CA (plaintext xDS on --grpcAddr needs none); --secureGRPCAddr "" turns the
    // TLS xDS port off; PILOT_MAX_REQUESTS_PER_SECOND: istiod's limit on new streams per second.
    const env = { POD_NAMESPACE: 'istio-system', POD_NAME: 'istiod-bench', ENABLE_CA_SERVER: 'false', PILOT_MAX_REQUESTS_PER_SECOND: '1000000' };
    const argv = ['discovery', '--kubeconfig', api.kubeconfigPath, '--grpcAddr', `127.0.0.1:${xdsPort}`, '--httpAddr', `127.0.0.1:${httpPort}`,
      '--monitoringAddr', `127.0.0.1:${monPort}`, '--httpsAddr', `127.0.0.1:${httpsPort}`, '--secureGRPCAddr', '', '--ctrlz_port', '0',
      '--log_output_level', 'default:warn'];
    const child = spawn(bin, argv, { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
    const readyMs = await waitReady(`http://127.0.0.1:${httpPort}/ready`, child, 120_000, logFile);
    return { child, xds: `127.0.0.1:${xdsPort}`, readyMs, logFile,
      cmd: `${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} pilot-discovery ${argv.map((a) => (a === '' ? '""' : a)).join(' ')}` };
  }
  const argv = ['serve', '--kubeconfig', api.kubeconfigPath, '--xds-port', String(xdsPort), '--secure-xds-port', '-1',
    '--monitoring-port', String(monPort), '--max-requests-per-second', '0', '--log-level', 'warn'];
  // MESHPILOT_NODE_ARGS: extra node flags for the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.MESHPILOT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, MAIN, ...argv], { stdio: ['ignore', out, out], env: { ...process.env, POD_NAMESPACE: 'istio-system' } });
  const readyMs = await waitReady(`http://127.0.0.1:${monPort}/ready`, child, 120_000, logFile);
  return { child, xds: `127.0.0.1:${xdsPort}`, readyMs, logFile, cmd: `POD_NAMESPACE=istio-system meshpilot ${argv.join(' ')}` };
}

/** One resource as a server sent it to one proxy. */
interface ResourceSize { type: string; name: string; bytes: number; chains?: number }

const ENVOY = 'type.googleapis.com/envoy.config.';
const XDS_TYPES: Record<string, string> = {
  CDS: 'cluster.v3.Cluster', EDS: 'endpoint.v3.ClusterLoadAssignment', LDS: 'listener.v3.Listener', RDS: 'route.v3.RouteConfiguration',
};
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/**
 * What a server sends one proxy (the harness's proxy 0, same node identity): one raw SotW ADS stream, CDS → EDS for
 * its EDS clusters, LDS → RDS for the route names its HTTP connection managers use; every resource's encoded size.
 */
async function inspectProxy(target: string, meshDir: string, capture?: Map<string, ProtoObject>, gateway = false): Promise<ResourceSize[]> {
  const mesh = readManifest(meshDir)!;
  const apps = new Map<string, string[]>();
  for (const s of mesh.services_) (apps.get(s.namespace) ?? apps.set(s.namespace, []).get(s.namespace)!).push(s.name);
  const id = gateway
    ? { nodeId: `router~10.255.0.1~istio-ingressgateway-0.istio-system~istio-system.svc.${mesh.domainSuffix}`, metadata: {
      NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway', app: 'istio-ingressgateway' }, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes',
      POD_NAME: 'istio-ingressgateway-0', WORKLOAD_NAME: 'istio-ingressgateway' } as Record<string, unknown> }
    : makeIdentity(0, { namespaces: mesh.namespaceNames, appsByNamespace: apps, proxyless: false, istioVersion: '1.29.0', clusterId: 'Kubernetes', interceptionMode: 'REDIRECT', domainSuffix: mesh.domainSuffix });
  const REQ = messageType('envoy.service.discovery.v3.DiscoveryRequest');
  const RES = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  const Ctor = grpc.makeGenericClientConstructor({ ads: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', requestStream: true, responseStream: true,
    requestSerialize: (o: object) => Buffer.from(REQ.encode(REQ.fromObject(o)).finish()), requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => RES.decode(b) as unknown as { type_url: string; version_info: string; nonce: string; resources: Array<{ value: Uint8Array }> },
  } }, 'Ads');
  const client = new Ctor(target, grpc.credentials.createInsecure());
  const stream = (client as any).ads() as grpc.ClientDuplexStream<object, { type_url: string; version_info: string; nonce: string; resources: Array<{ value: Uint8Array }> }>;
  const out = new Map<string, ResourceSize[]>();
  const typeOf = (url: string): string => Object.entries(XDS_TYPES).find(([, t]) => ENVOY + t === url)?.[0] ?? url;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspect ${target}: no complete CDS/EDS/LDS/RDS in 15 s (have ${[...out.keys()].join(',')})`)), 15_000);
      const names: Record<string, string[]> = { CDS: [], LDS: [], EDS: [], RDS: [] };
      stream.on('error', (e) => { clearTimeout(timer); reject(e); });
      stream.on('data', (r: { type_url: string; version_info: string; nonce: string; resources: Array<{ value: Uint8Array }> }) => {
        try { onResponse(r); } catch (e) { clearTimeout(timer); reject(e); }
      });
      const onResponse = (r: { type_url: string; version_info: string; nonce: string; resources: Array<{ value: Uint8Array }> }): void => {
        const type = typeOf(r.type_url);
        const M = messageType(`envoy.config.${XDS_TYPES[type]}`);
        const decoded = r.resources.map((a: { value: Uint8Array }) => ({ a, m: M.decode(a.value) as any }));
        out.set(type, decoded.map(({ a, m }) => ({ type, name: m.name || m.cluster_name, bytes: a.value.length, chains: type === 'LDS' ? (m.filter_chains ?? []).length : undefined })));
        if (capture) for (const { m } of decoded) capture.set(`${type} ${m.name || m.cluster_name}`, toJson(M, m));
        stream.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[type] });
        if (type === 'CDS' && !out.has('LDS')) {
          names.EDS = decoded.filter(({ m }) => m.eds_cluster_config || m.type === 3).map(({ m }) => m.eds_cluster_config?.service_name || m.name);
          stream.write({ type_url: ENVOY + XDS_TYPES.EDS, resource_names: names.EDS });
          stream.write({ type_url: ENVOY + XDS_TYPES.LDS });
        }
        if (type === 'LDS' && !out.has('RDS')) {
          const routes = new Set<string>();
          for (const { m } of decoded) for (const fc of m.filter_chains ?? []) for (const f of fc.filters ?? []) {
            if (f.typed_config?.type_url?.endsWith(HCM)) { const h = messageType(HCM).decode(f.typed_config.value) as any; if (h.rds?.route_config_name) routes.add(h.rds.route_config_name); }
          }
          names.RDS = [...routes].sort();
          stream.write({ type_url: ENVOY + XDS_TYPES.RDS, resource_names: names.RDS });
        }
        if (['CDS', 'EDS', 'LDS', 'RDS'].every((t) => out.has(t) || (t === 'EDS' && names.EDS.length === 0 && out.has('CDS')) || (t === 'RDS' && out.has('LDS') && names.RDS.length === 0))) { clearTimeout(timer); resolve(); }
      };
      stream.write({ node: { id: id.nodeId, metadata: jsonToStruct(id.metadata) }, type_url: ENVOY + XDS_TYPES.CDS });
    });
  } finally {
    stream.cancel();
    client.close();
  }
  return [...out.values()].flat();
}

/** Per type and resource-name shape (services folded into svc-*): count and bytes each server sends one proxy. */
function inspectTable(sizes: Partial<Record<'istiod' | 'meshpilot', ResourceSize[]>>): string[] {
  const shape = (n: string): string => n.replace(/svc-\d+/g, 'svc-*').replace(/ns-\d+/g, 'ns-*').replace(/\|/g, '\\|');
  const rows = new Map<string, Record<string, { n: number; bytes: number; chains: number }>>();
  for (const [server, list] of Object.entries(sizes)) {
    for (const r of list ?? []) {
      const k = `${r.type} ${shape(r.name)}`;
      const row = rows.get(k) ?? rows.set(k, {}).get(k)!;
      const c = (row[server] ??= { n: 0, bytes: 0, chains: 0 });
      c.n++; c.bytes += r.bytes; c.chains += r.chains ?? 0;
    }
  }
  const cell = (c: { n: number; bytes: number; chains: number } | undefined): string => (c ? `${c.n > 1 ? `${c.n} × ` : ''}${Math.round(c.bytes / c.n)}${c.chains ? ` (${c.chains / c.n} filter chains)` : ''}` : '–');
  const total = (server: string): number => (sizes[server as 'istiod'] ?? []).reduce((a, r) => a + r.bytes, 0);
  return [
    '| resource (one proxy) | istiod bytes | meshpilot bytes |', '|---|---|---|',
    ...[...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, row]) => `| ${k} | ${cell(row.istiod)} | ${cell(row.meshpilot)} |`),
    `| **total** | ${total('istiod')} | ${total('meshpilot')} |`,
  ];
}

interface RunResult { server: 'istiod' | 'meshpilot'; proxies: number; report: LoadReport; readyMs: number; loadavg: number[]; serverCmd: string; loadCmd: string }

const kb = (b: number): string => f1(b / 1024);
const shortType = (t: string): string => ({ Cluster: 'CDS', ClusterLoadAssignment: 'EDS', Listener: 'LDS', RouteConfiguration: 'RDS' } as Record<string, string>)[t.split('.').pop()!] ?? t.split('.').pop()!;

function mainTable(runs: RunResult[]): string[] {
  const rows = [
    '| server | proxies | load avg at start | ready after start s | connect storm s (per-proxy p50 / p99 ms) | EDS change p50 / p99 / max ms | reached | VS change p50 / p99 / max ms | reached | server CPU s connect / churn | server RSS MB before / after connect / peak | RSS growth / proxy KiB | responses connect / churn | MB connect / churn |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { server, proxies, report: r, readyMs, loadavg } of runs) {
    const s = r.server;
    rows.push(`| ${server} | ${r.connect.ready}/${proxies} | ${loadavg.map((x) => x.toFixed(1)).join(' ')} | ${(readyMs / 1000).toFixed(1)} | ` +
      `${r.connect.allReady ? '' : '> '}${(r.connect.stormMs / 1000).toFixed(2)} (${f1(r.connect.perProxy.p50)} / ${f1(r.connect.perProxy.p99)}) | ` +
      `${lat(r, 'endpoints')} | ${reach(r, 'endpoints')} | ${lat(r, 'vs')} | ${reach(r, 'vs')} | ` +
      `${s ? `${(s.cpuMs.connect / 1000).toFixed(2)} / ${(s.cpuMs.churn / 1000).toFixed(2)}` : '–'} | ${s ? `${s.rssMB.before} / ${s.rssMB.afterConnect} / ${s.rssMB.peak}` : '–'} | ${s ? s.rssPerProxyKB : '–'} | ` +
      `${r.traffic.responses - r.traffic.churnPhase.responses} / ${r.traffic.churnPhase.responses} | ${f1((r.traffic.bytes - r.traffic.churnPhase.bytes) / 2 ** 20)} / ${(r.traffic.churnPhase.bytes / 2 ** 20).toFixed(2)} |`);
  }
  return rows;
}

/** What each server sends a proxy: per type, bytes per proxy at connect and per proxy-update of a change. */
function bytesTable(runs: RunResult[]): string[] {
  const types = [...new Set(runs.flatMap((r) => Object.keys(r.report.traffic.byType)))].sort();
  const rows = [
    `| server | proxies | KiB per proxy at connect (${types.map(shortType).join(' / ')}) | responses per proxy at connect | churn phase: KiB per proxy-update (EDS+VS reached) | churn phase KiB by type (${types.map(shortType).join(' / ')}) |`,
    '|---|---|---|---|---|---|',
  ];
  for (const { server, proxies, report: r } of runs) {
    const n = Math.max(1, r.connect.readyAtEnd);
    const connectBy = types.map((t) => (r.traffic.byType[t]?.bytes ?? 0) - (r.traffic.churnPhase.byType[t]?.bytes ?? 0));
    const updates = (r.churn.byKind.endpoints?.reached ?? 0) + (r.churn.byKind.vs?.reached ?? 0);
    rows.push(`| ${server} | ${proxies} | ${kb(connectBy.reduce((a, b) => a + b, 0) / n)} (${connectBy.map((b) => kb(b / n)).join(' / ')}) | ` +
      `${f1((r.traffic.responses - r.traffic.churnPhase.responses) / n)} | ${updates > 0 ? kb(r.traffic.churnPhase.bytes / updates) : '–'} | ` +
      `${types.map((t) => kb(r.traffic.churnPhase.byType[t]?.bytes ?? 0)).join(' / ')} |`);
  }
  return rows;
}

function ratioTable(runs: RunResult[]): string[] {
  const rows = ['| proxies | connect storm | EDS p99 | VS p99 | server CPU connect | server CPU churn | RSS after connect | bytes per proxy at connect |', '|---|---|---|---|---|---|---|---|'];
  const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  for (const n of proxyCounts) {
    const m = runs.find((r) => r.proxies === n && r.server === 'meshpilot')?.report;
    const i = runs.find((r) => r.proxies === n && r.server === 'istiod')?.report;
    if (!m || !i) continue;
    const perProxy = (r: LoadReport): number => (r.traffic.bytes - r.traffic.churnPhase.bytes) / Math.max(1, r.connect.readyAtEnd);
    rows.push(`| ${n} | ${ratio(m.connect.stormMs, i.connect.stormMs)} | ${ratio(m.churn.byKind.endpoints?.latency.p99 ?? 0, i.churn.byKind.endpoints?.latency.p99 ?? 0)} | ` +
      `${ratio(m.churn.byKind.vs?.latency.p99 ?? 0, i.churn.byKind.vs?.latency.p99 ?? 0)} | ${ratio(m.server?.cpuMs.connect ?? 0, i.server?.cpuMs.connect ?? 0)} | ` +
      `${ratio(m.server?.cpuMs.churn ?? 0, i.server?.cpuMs.churn ?? 0)} | ${ratio(m.server?.rssMB.afterConnect ?? 0, i.server?.rssMB.afterConnect ?? 0)} | ${ratio(perProxy(m), perProxy(i))} |`);
  }
  return rows;
}

/** Paths where two decoded resources differ (arrays of named objects matched by name), at most `limit`. */
function differences(a: unknown, b: unknown, at: string, out: string[], limit = 60): void {
  if (out.length >= limit) return;
  // An absent scalar and its proto3 default (0, false, "") are the same: Go's marshaling omits defaults,
  // protobufjs writes what it is given. An absent message is not the same as an empty one (a Percent of 0 or a
  // BoolValue false set explicitly overrides Envoy's default), so messages are compared by presence.
  const zero = (v: unknown): boolean => v === undefined || v === 0 || v === '0' || v === false || v === '';
  if (zero(a) && zero(b)) return;
  const show = (v: unknown): string => { const t = JSON.stringify(v); return t === undefined ? 'absent' : t.length > 160 ? `${t.slice(0, 157)}...` : t; };
  if (Array.isArray(a) && Array.isArray(b)) {
    // Matched by name when every item has a name and no name repeats (two rbac filters, one DENY and one ALLOW,
    // share theirs: those lists are compared by position).
    const named = (l: unknown[]): boolean => l.length > 0 && l.every((x) => typeof x === 'object' && x !== null && typeof (x as any).name === 'string') &&
      new Set(l.map((x: any) => x.name)).size === l.length;
    if (named(a) && named(b)) {
      const bn = new Map(b.map((x: any) => [x.name, x]));
      const an = new Set(a.map((x: any) => x.name));
      for (const x of a as any[]) {
        if (!bn.has(x.name)) out.push(`${at}[${x.name}]: only istiod`);
        else differences(x, bn.get(x.name), `${at}[${x.name}]`, out, limit);
      }
      for (const x of b as any[]) if (!an.has(x.name)) out.push(`${at}[${x.name}]: only meshpilot`);
      const order = (l: any[]): string => l.filter((x) => an.has(x.name) && bn.has(x.name)).map((x) => x.name).join(',');
      if (order(a) !== order(b)) out.push(`${at}: same names, another order`);
      return;
    }
    if (a.length !== b.length) { out.push(`${at}: ${a.length} vs ${b.length} items: istiod ${show(a)} meshpilot ${show(b)}`); return; }
    a.forEach((x, i) => differences(x, b[i], `${at}[${i}]`, out, limit));
    return;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) differences((a as any)[k], (b as any)[k], `${at}.${k}`, out, limit);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${at}: istiod ${show(a)} meshpilot ${show(b)}`);
}

function writeDiff(dir: string, got: Partial<Record<'istiod' | 'meshpilot', Map<string, ProtoObject>>>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [k, m] of Object.entries(got)) fs.writeFileSync(path.join(dir, `${k}.json`), JSON.stringify(Object.fromEntries([...m!].sort(([x], [y]) => x.localeCompare(y))), null, 2));
  const a = got.istiod ?? new Map(), b = got.meshpilot ?? new Map();
  const lines = [`# istiod vs meshpilot: what proxy 0 gets (${new Date().toISOString()})`, ''];
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  lines.push(`Only istiod: ${keys.filter((k) => !b.has(k)).join(', ') || 'none'}`, '', `Only meshpilot: ${keys.filter((k) => !a.has(k)).join(', ') || 'none'}`, '');
  for (const k of keys.filter((x) => a.has(x) && b.has(x))) {
    const out: string[] = [];
    differences(a.get(k), b.get(k), '', out);
    if (out.length > 0) lines.push(`## ${k}`, '', ...out.map((l) => `- ${l}`), '');
  }
  fs.writeFileSync(path.join(dir, 'diff.md'), lines.join('\n'));
  log(`wrote ${path.join(dir, 'diff.md')}`);
}

async function main(): Promise<void> {
  const missing = realApiServerMissing();
  if (missing) throw new Error(`no real API server: ${missing}`);
  const { bin, crds } = istioPaths();
  const t0 = Date.now();
  const load0 = os.loadavg();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-bench-istiod-'));
  const meshDir = path.join(work, 'mesh');
  const isolation = !args['no-isolation'];
  const gen = spawnSync(process.execPath, [MAIN, 'load', 'gen-mesh', '--out', meshDir, '--services', args.services!, '--namespaces', args.namespaces!,
    '--endpoints', args.endpoints!, '--vs-every', args['vs-every']!, '--format', 'kube', ...(isolation ? ['--sidecar-isolation'] : [])], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`gen-mesh failed: ${gen.stderr}`);
  log(gen.stderr.trim());
  const runs: RunResult[] = [];
  const inspected: Partial<Record<'istiod' | 'meshpilot', ResourceSize[]>> = {};
  let applyMs = 0;
  let objects = 0;
  let api: RealApiServer | undefined;
  try {
    api = await startRealApiServer();
    await api.kubectl(['apply', '--server-side', '-f', crds]);
    await api.kubectl(['create', 'namespace', 'istio-system']);
    await api.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    const objs = meshObjects(meshDir);
    objects = objs.length;
    applyMs = await applyMesh(api, objs);
    log(`applied ${objs.length} objects in ${(applyMs / 1000).toFixed(1)} s`);
    if (args.diff) {
      if (args.extra) await applyMesh(api, meshObjects(args.extra));
      const got: Partial<Record<'istiod' | 'meshpilot', Map<string, ProtoObject>>> = {};
      for (const kind of servers) {
        const srv = await startServer(kind, api, bin, work);
        try {
          // Let the server see every object (istiod's informers sync before /ready, meshpilot's too; a margin for pushes).
          await new Promise((r) => setTimeout(r, 2000));
          got[kind] = new Map();
          await inspectProxy(srv.xds, meshDir, got[kind], args.gateway);
        } finally {
          await stop(srv.child, 15_000);
        }
      }
      writeDiff(args.diff, got);
      return;
    }
    for (const n of proxyCounts) {
      for (const kind of servers) {
        const loadavg = os.loadavg();
        log(`${kind}: starting (load average ${loadavg.map((x) => x.toFixed(2)).join(' ')})`);
        const srv = await startServer(kind, api, bin, work);
        try {
          log(`${kind}: ready in ${(srv.readyMs / 1000).toFixed(1)} s; ${n} proxies`);
          if (!inspected[kind]) inspected[kind] = await inspectProxy(srv.xds, meshDir);
          const hargs = ['--target', srv.xds, '--proxies', String(n), '--mesh', meshDir, '--churn', args.churn!, '--duration', args.duration!,
            '--churn-kubeconfig', api.kubeconfigPath, '--event-timeout', args['event-timeout']!, '--server-pid', String(srv.child.pid), '--quiet', ...(args.delta ? ['--delta'] : [])];
          const report = await runHarness(hargs, path.join(work, `load-${kind}-${n}.json`));
          runs.push({ server: kind, proxies: n, report, readyMs: srv.readyMs, loadavg, serverCmd: srv.cmd, loadCmd: `meshpilot load ${hargs.join(' ')}` });
        } finally {
          await stop(srv.child, 15_000);
          fs.copyFileSync(srv.logFile, path.join(work, `${kind}-${n}.log`));
        }
      }
    }
  } catch (e) {
    log(`failed; logs kept in ${work}`);
    throw e;
  } finally {
    await api?.stop();
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const base = `istiod-${stamp}`;
  const write = !args['no-write'];
  if (write) fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const plots: string[] = [];
  for (const n of proxyCounts) {
    const series: Series[] = [];
    for (const r of runs.filter((x) => x.proxies === n)) {
      for (const k of ['endpoints', 'vs'] as const) {
        const b = r.report.churn.byKind[k];
        if (b && b.percentiles.length > 0) series.push({ name: `${r.server} ${k === 'vs' ? 'VS' : 'EDS'}`, points: b.percentiles });
      }
    }
    if (series.length === 0) continue;
    const f = `${base}-${n}-convergence.svg`;
    if (write) fs.writeFileSync(path.join(RESULTS_DIR, f), lineChart({ title: `istiod vs meshpilot, ${n} proxies: convergence`, xLabel: 'ms from the API server accepting the change to the proxy\'s ACK', yLabel: 'percentile of proxy updates', series }));
    plots.push(f);
  }
  if (proxyCounts.length > 1) {
    // Scaling: each server's storm, and its change p99s, against the number of proxies.
    const pts = (server: string, f: (r: LoadReport) => number): Array<[number, number]> =>
      runs.filter((r) => r.server === server).map((r) => [r.proxies, f(r.report)]);
    const charts: Array<[string, string, Series[]]> = [
      ['storm', 'connect storm to all ACKed, ms', servers.map((sv) => ({ name: `${sv} storm`, points: pts(sv, (r) => r.connect.stormMs) }))],
      ['p99', 'p99 convergence after a change, ms', servers.flatMap((sv) => [
        { name: `${sv} EDS p99`, points: pts(sv, (r) => r.churn.byKind.endpoints?.latency.p99 ?? 0) },
        { name: `${sv} VS p99`, points: pts(sv, (r) => r.churn.byKind.vs?.latency.p99 ?? 0) },
      ])],
    ];
    for (const [name, yLabel, series] of charts) {
      const f = `${base}-scaling-${name}.svg`;
      if (write) fs.writeFileSync(path.join(RESULTS_DIR, f), lineChart({ title: `istiod vs meshpilot: ${name} by proxies`, xLabel: 'proxies', yLabel, series }));
      plots.push(f);
    }
  }
  if (write) fs.writeFileSync(path.join(RESULTS_DIR, `${base}.json`), `${JSON.stringify({ args, runs }, null, 1)}\n`);

  const argv = process.argv.slice(2).join(' ');
  const md = [
    '', `## istiod side by side — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, '',
    `Command: \`node dist/bench/istiod.js${argv ? ` ${argv}` : ''}\` (${Math.round((Date.now() - t0) / 1000)} s)  `,
    `Machine: ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, Node ${process.version}; load average at start ${load0.map((x) => x.toFixed(2)).join(' ')} ` +
      '(per run below) — shared with other engineers\' builds and tests: compare ratios within this run, not absolute times.  ',
    `istiod: pilot-discovery ${ISTIO_VERSION} (Istio master, Kubernetes registry). Both servers read one real kube-apiserver v1.31 + etcd on loopback, one after the other ` +
      `(istiod first at each size), each with its own fresh start; default debounce (100 ms) and push throttle; no limit on new streams per second.  `,
    `Mesh: \`meshpilot load gen-mesh --format kube --services ${args.services} --namespaces ${args.namespaces} --endpoints ${args.endpoints} --vs-every ${args['vs-every']}${isolation ? ' --sidecar-isolation' : ''}\` ` +
      `— ${objects} objects applied with \`kubectl apply --server-side\` (chunks of 250, 3 at a time) in ${(applyMs / 1000).toFixed(1)} s. ` +
      `Churn \`${args.churn}\` for ${args.duration} through the API server (server-side apply; a change's time is the apply's response), ` +
      `convergence to each affected proxy's ACK of the first response carrying the change. ${args.delta ? 'Delta xDS' : 'SotW'}, one HTTP/2 connection per proxy.`,
    '',
    ...mainTable(runs),
    '',
    'What each server sends (bytes as received by the harness, gRPC payloads):',
    '',
    ...bytesTable(runs),
    '',
    'One proxy\'s configuration from each server (the harness\'s proxy 0, same node metadata; encoded resource bytes, each server fresh before the load run):',
    '',
    ...inspectTable(inspected),
    '',
    'meshpilot / istiod (below 1× = meshpilot lower):',
    '',
    ...ratioTable(runs),
    '',
    ...[...new Set(runs.map((r) => r.server))].map((s) => {
      const r = runs.find((x) => x.server === s)!;
      return `- ${s}: \`${r.serverCmd.replace(/\/tmp\/[^\s]+/g, 'KUBECONFIG').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT').replace(/(--(?:xds|monitoring)-port) \d+/g, '$1 PORT')}\``;
    }),
    `- harness: \`${runs[0]?.loadCmd.replace(/\/tmp\/[^\s]*kubeconfig/g, 'KUBECONFIG').replace(/\/tmp\/[^\s]+/g, 'DIR').replace(/--server-pid \d+/, '--server-pid PID').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT').replace(/--proxies \d+/, '--proxies N')}\``,
  ];
  const errs = runs.flatMap((r) => r.report.errors.map((e) => `${r.server} ${r.proxies}: ${e}`));
  if (errs.length > 0) md.push('', 'Errors seen:', ...errs.slice(0, 6).map((e) => `- ${e}`));
  md.push('', ...plots.map((p) => `![${p}](results/${p})`), `Raw reports: [results/${base}.json](results/${base}.json)`, '');
  process.stdout.write(md.join('\n'));
  if (write) fs.appendFileSync(RESULTS_MD, md.join('\n'));
  fs.rmSync(work, { recursive: true, force: true });
}

await main();
