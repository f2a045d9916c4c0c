/**
 * Sidecar scopes on random meshes against a reference written straight from istiod's rules (pilot/pkg/model/
 * sidecar.go, virtualservice.go SelectVirtualServices; see sidecar-scope.ts's header). No Sidecar, or one without any
 * egress, is one listener `*\/*`. Each egress listener imports the services exported to the proxy's namespace
 * that an egress host `NAMESPACE/DNSNAME` matches in their own namespace, and the VirtualServices bound to `mesh`
 * and exported there that an egress host matches in the VirtualService's namespace (two-way wildcard matching);
 * the scope adds those VirtualServices' destinations (HTTP rules for the proxy's namespace, tcp routes; clusters
 * only: listeners and routes are built for each listener's own services). The implementation indexes services,
 * VirtualServices and egress hosts so that a 10,000-service mesh does not match every host against every service
 * per namespace; this test holds it to the plain scan, including exportTo (`~` too), gateways, ServiceEntry
 * hostnames in several namespaces and on Kubernetes Services' hostnames (one service per hostname per scope:
 * referenceChoice), creation timestamps, wildcard hosts, `~`, and port-specific egress listeners.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportedTo, hostMatches, type ConfigEntry, type PushContext } from '../../src/model/push-context.js';
import type { Service } from '../../src/model/service.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { scopeIncludes, sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { ctxOf } from '../helpers/context.js';
import { rng } from '../helpers/rng.js';


const NS = ['n0', 'n1', 'n2', 'n3', 'n4', 'istio-system'];
const fqdn = (name: string, ns: string): string => `${name}.${ns}.svc.cluster.local`;

interface Mesh { docs: Record<string, string>; sidecars: Map<string, any> }

function randomMesh(r: () => number): Mesh {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const exportTo = (): string[] | undefined => {
    const x = r();
    if (x < 0.6) return undefined;
    if (x < 0.7) return ['.'];
    if (x < 0.8) return ['*'];
    return [...new Set([pick(NS), pick(NS)])];
  };
  const docs: Record<string, string> = {};
  const names: Array<[string, string]> = [];
  let i = 0;
  for (const ns of NS) {
    const n = 1 + Math.floor(r() * 6);
    for (let k = 0; k < n; k++) {
      const name = `s${i++}`;
      names.push([name, ns]);
      const ex = exportTo();
      // Ports 80, 9080 or both: a port-specific egress listener (9080) imports some services, trimmed to its port.
      const y = r();
      const ports = y < 0.6 ? '{name: http, port: 80}' : y < 0.8 ? '{name: http-web, port: 9080}' : '{name: http, port: 80}, {name: http-web, port: 9080}';
      docs[`${ns}-${name}.yaml`] = `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
${ex ? `  annotations: {networking.istio.io/exportTo: "${ex.join(',')}"}\n` : ''}spec:
  clusterIP: 10.0.${i}.1
  ports: [${ports}]
`;
    }
  }
  // ServiceEntries: the same external hostname in several namespaces, with and without exportTo and creation
  // timestamps, and ones naming a Kubernetes Service's hostname (in its namespace, where the Service wins, or in
  // another one, where both are services of that hostname).
  for (const [k, ns] of [['a', pick(NS)], ['b', pick(NS)], ['c', pick(NS)], ['d', pick(NS)], ['e', pick(NS)]] as const) {
    const x = r();
    const host = x < 0.45 ? 'api.example.com' : x < 0.7 ? fqdn(...pick(names)) : `${k}.example.com`;
    const ex = exportTo();
    const created = r() < 0.5 ? `  creationTimestamp: "2026-01-0${1 + Math.floor(r() * 3)}T00:00:00Z"\n` : '';
    docs[`se-${k}.yaml`] = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se-${k}
  namespace: ${ns}
${created}spec:
  hosts: [${host}]
${ex ? `  exportTo: ${JSON.stringify(ex)}\n` : ''}  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
`;
  }
  const someHost = (): string => {
    const x = r();
    const [name, ns] = pick(names);
    if (x < 0.4) return fqdn(name, ns);
    if (x < 0.55) return name; // short name, qualified with the VirtualService's namespace
    if (x < 0.65) return `*.${ns}.svc.cluster.local`;
    if (x < 0.8) return pick(['api.example.com', 'a.example.com', 'b.example.com', '*.example.com', 'bookinfo.com']);
    return fqdn(`nosuch${Math.floor(r() * 3)}`, ns);
  };
  const vsCount = Math.floor(r() * 10);
  for (let k = 0; k < vsCount; k++) {
    const ns = pick(NS);
    const hosts = [...new Set([someHost(), ...(r() < 0.3 ? [someHost()] : [])])];
    const dests = Array.from({ length: 1 + Math.floor(r() * 2) }, () => { const [n, sns] = pick(names); return r() < 0.8 ? fqdn(n, sns) : n; });
    const x = r();
    // exportTo, with `~` hiding the VirtualService even where it also names namespaces.
    const ex = x < 0.1 ? ['~', pick(NS)] : exportTo();
    const gw = r();
    const gateways = gw < 0.1 ? '  gateways: [istio-system/gw]\n' : gw < 0.2 ? '  gateways: [mesh, istio-system/gw]\n' : '';
    const created = r() < 0.4 ? `  creationTimestamp: "2026-02-0${1 + Math.floor(r() * 3)}T00:00:00Z"\n` : '';
    // Some rules only for proxies in some namespaces (sourceNamespace), some tcp routes to another service.
    const sourceNs = r() < 0.2 ? `    match: ${JSON.stringify(Array.from({ length: 1 + Math.floor(r() * 2) }, () => (r() < 0.8 ? { sourceNamespace: pick(NS) } : { uri: { prefix: '/x' } })))}\n` : '';
    const [tn, tns] = pick(names);
    const tcp = r() < 0.2 ? `  tcp: [{route: [{destination: {host: ${fqdn(tn, tns)}}}]}]\n` : '';
    docs[`vs-${k}.yaml`] = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-${k}
  namespace: ${ns}
${created}spec:
  hosts: ${JSON.stringify(hosts)}
${gateways}${ex ? `  exportTo: ${JSON.stringify(ex)}\n` : ''}  http:
  - route: ${JSON.stringify(dests.map((d) => {
    // A destination port, sometimes: the scope imports only the ports routed to (one the service lacks: nothing).
    const z = r();
    const port = z < 0.25 ? { port: { number: 80 } } : z < 0.4 ? { port: { number: 9080 } } : z < 0.45 ? { port: { number: 7000 } } : {};
    return { destination: { host: d, ...port }, ...(dests.length > 1 ? { weight: 50 } : {}) };
  }))}
${sourceNs}${tcp}`;
  }
  const egressHost = (): string => {
    const x = r();
    const ns = r() < 0.15 ? '*' : r() < 0.3 ? '.' : r() < 0.35 ? '~' : pick(NS);
    const [name, sns] = pick(names);
    const host = x < 0.5 ? '*' : x < 0.65 ? fqdn(name, sns) : x < 0.75 ? `*.${sns}.svc.cluster.local` : x < 0.85 ? '*.example.com' : pick(['api.example.com', 'x.example.com']);
    // Not of the form namespace/dnsName (no `/`, or two): ignored, as istiod does.
    const y = r();
    return y < 0.04 ? host : y < 0.06 ? `${ns}/${ns}/${host}` : `${ns}/${host}`;
  };
  const sidecars = new Map<string, any>();
  for (const ns of NS) {
    const x = r();
    if (x < 0.15) continue; // no Sidecar: everything exported here
    let spec: any;
    if (x < 0.2) spec = { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }; // no egress: everything exported here
    else if (x < 0.23) spec = { egress: [], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }; // empty egress: the same
    else {
      const catchAll = { hosts: Array.from({ length: 1 + Math.floor(r() * 3) }, egressHost) };
      spec = { egress: r() < 0.25 ? [{ port: { number: 9080, protocol: 'HTTP', name: 'http' }, hosts: [egressHost(), egressHost()] }, ...(r() < 0.7 ? [catchAll] : [])] : [catchAll] };
    }
    sidecars.set(ns, spec);
    docs[`sidecar-${ns}.yaml`] = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ${ns}}
spec: ${JSON.stringify(spec)}
`;
  }
  return { docs, sidecars };
}

interface EgressHost { namespace: string; host: string }
function parseHosts(hosts: string[], ns: string): EgressHost[] {
  return hosts.filter((h) => h.split('/').length === 2).map((h) => {
    const [n, host] = h.split('/') as [string, string];
    return { namespace: n === '.' ? ns : n, host };
  });
}
const admits = (egress: EgressHost[], ns: string, host: string): boolean =>
  egress.some((e) => e.namespace !== '~' && (e.namespace === '*' || e.namespace === ns) && hostMatches(e.host, host));

/** istio host.Name.Matches: equal, or a wildcard covering the other, either way round. */
function overlap(a: string, b: string): boolean {
  if (a === b) return true;
  const covers = (w: string, h: string): boolean => w.startsWith('*') && (h.startsWith('*') ? h.slice(1) : h).endsWith(w.slice(1));
  return covers(a, b) || covers(b, a);
}

/**
 * The VirtualServices a listener imports, in order: bound to `mesh`, visible from `ns` (exportTo `*` or none: public;
 * with `~`: hidden; else `.`/own namespace private, others exported to those), a host matching the egress hosts
 * for the VirtualService's namespace or `*` (exact hosts by equality, wildcards either way round); private ones,
 * then exported-to ones, then public ones, each oldest first.
 */
function referenceVirtualServices(ctx: PushContext, ns: string, egress: EgressHost[]): ConfigEntry[] {
  const klass = (vs: ConfigEntry): number => {
    const ex: string[] = vs.spec.exportTo ?? [];
    if (ex.length === 0 || ex.includes('*')) return 2;
    if (ex.includes('~')) return -1;
    const to = ex.map((e) => (e === '.' ? vs.namespace : e));
    return !to.includes(ns) ? -1 : vs.namespace === ns ? 0 : 1;
  };
  const time = (c: ConfigEntry): number => (c.creationTime ? Date.parse(c.creationTime) : Infinity);
  const bound = (vs: ConfigEntry): boolean => !vs.spec.gateways?.length || vs.spec.gateways.includes('mesh');
  const matches = (vs: ConfigEntry): boolean => ((vs.spec.hosts ?? []) as string[]).map((h) => ctx.qualify(h, vs.namespace)).some((h) =>
    egress.some((e) => (e.namespace === '*' || e.namespace === vs.namespace) && (e.host === h || ((e.host.startsWith('*') || h.startsWith('*')) && overlap(e.host, h)))));
  return ctx.data.virtualServices.filter((vs) => bound(vs) && klass(vs) >= 0 && matches(vs)).sort((a, b) =>
    klass(a) - klass(b) || time(a) - time(b) || (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
}

/**
 * Where a VirtualService sends a proxy in `ns`, as [host qualified in its namespace, port (0: none given)]: its
 * HTTP rules' routes, except a rule with sourceNamespace matches none of which is `ns`; its tcp routes.
 */
const destinationsOf = (ctx: PushContext, vs: ConfigEntry, ns: string): Array<[string, number]> => [
  ...((vs.spec.http ?? []) as any[]).filter((http) => {
    const sns = ((http.match ?? []) as any[]).map((m) => m.sourceNamespace).filter(Boolean);
    return sns.length === 0 || sns.includes(ns);
  }).flatMap((http) => (http.route ?? []) as any[]),
  ...((vs.spec.tcp ?? []) as any[]).flatMap((t) => (t.route ?? []) as any[]),
].map((d) => [ctx.qualify(d.destination.host, vs.namespace), d.destination.port?.number ?? 0]);

/** An egress listener: its hosts, its port (then it imports only services with that port, only that port), its destinations' ports. */
interface Listener { hosts: EgressHost[]; port?: number; dests: Map<string, Set<number>> }
function listenerOf(ctx: PushContext, ns: string, spec: any): Listener {
  const hosts = parseHosts(spec.hosts, ns);
  const dests = new Map<string, Set<number>>();
  for (const vs of referenceVirtualServices(ctx, ns, hosts)) {
    for (const [h, p] of destinationsOf(ctx, vs, ns)) dests.set(h, new Set([...(dests.get(h) ?? []), p]));
  }
  return { hosts, port: spec.port?.number, dests };
}

type Ports = 'all' | Set<number>;
const hasPort = (s: Service, port: number): boolean => s.ports.some((p) => p.port === port);

/**
 * What a scope keeps of a hostname (istiod sidecar.go selectServices with unified scoping, serviceMatchingListenerPort,
 * serviceMatchingVirtualServicePorts, appendSidecarServices, collectImportedServices), for listeners in order: a
 * service and its ports. Candidates are the hostname's services visible from `ns` in servicesExportedToNamespace
 * order (private to `ns`, exported to it by name, public; oldest first, then namespace/name). Each listener adds, of
 * those its hosts import (with its port, for a listener with one), the one in `ns`, else the first Kubernetes
 * Service, else the first — with its port, or all ports; then, if one of its VirtualServices routes to the
 * hostname, the one in `ns` (even unseen), else the alphabetically first namespace that exports it to `ns` — with
 * the listener's port if it has one (nothing if the service lacks it), else the ports routed to (all for a
 * destination without a port; nothing if the service has none of them). The first service added stands, merging
 * the ports of its later additions, unless a later one is a Kubernetes Service and it is not.
 */
function referenceFold(ctx: PushContext, ns: string, host: string, listeners: Listener[]): { svc: Service; ports: Ports } | undefined {
  const all = ctx.services.filter((s) => s.hostname === host);
  const rank = (s: Service): number => (s.exportTo.length === 0 || s.exportTo.includes('*') ? 2
    : s.namespace === ns && s.exportTo.some((e) => e === '.' || e === ns) ? 0 : 1);
  const time = (s: Service): number => (s.creationTime ? Date.parse(s.creationTime) : Infinity);
  const candidates = all.filter((s) => exportedTo(s.exportTo, s.namespace, ns)).sort((a, b) =>
    rank(a) - rank(b) || time(a) - time(b) || (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const kube = (s: Service): boolean => s.registry === undefined;
  const choose = (xs: Service[]): Service | undefined => xs.find((s) => s.namespace === ns) ?? xs.find(kube) ?? xs[0];
  const destination = (): Service | undefined => all.find((s) => s.namespace === ns) ?? [...candidates].sort((a, b) => (a.namespace < b.namespace ? -1 : 1))[0];
  let c: { svc: Service; ports: Ports } | undefined;
  const take = (x: Service | undefined, ports: Ports | undefined): void => {
    if (!x || !ports) return;
    if (!c || (!kube(c.svc) && kube(x) && c.svc !== x)) c = { svc: x, ports };
    else if (c.svc === x) c.ports = c.ports === 'all' || ports === 'all' ? 'all' : new Set([...c.ports, ...ports]);
  };
  for (const l of listeners) {
    take(choose(candidates.filter((s) => admits(l.hosts, s.namespace, host) && (l.port === undefined || hasPort(s, l.port)))), l.port === undefined ? 'all' : new Set([l.port]));
    const routed = l.dests.get(host);
    if (!routed) continue;
    const d = destination();
    if (!d) continue;
    if (l.port !== undefined) take(d, hasPort(d, l.port) ? new Set([l.port]) : undefined);
    else if (routed.has(0)) take(d, 'all');
    else {
      const found = d.ports.filter((p) => routed.has(p.port)).map((p) => p.port);
      take(d, found.length ? new Set(found) : undefined);
    }
  }
  return c;
}

/**
 * The services listeners import together, one per hostname, with their ports, in registry order: every visible
 * service an egress host matches, and every destination's service (the one in `ns` even unseen); those unseen last.
 */
function referenceServices(ctx: PushContext, ns: string, listeners: Listener[]): Array<[Service, Ports]> {
  const visible = ctx.services.filter((s) => exportedTo(s.exportTo, s.namespace, ns));
  const hostnames = new Set<string>();
  for (const l of listeners) {
    for (const s of visible) if (admits(l.hosts, s.namespace, s.hostname)) hostnames.add(s.hostname);
    for (const h of l.dests.keys()) hostnames.add(h);
  }
  const out: Array<[Service, Ports]> = [];
  for (const s of visible) {
    if (!hostnames.has(s.hostname)) continue;
    const f = referenceFold(ctx, ns, s.hostname, listeners);
    if (f?.svc === s) out.push([s, f.ports]);
  }
  for (const l of listeners) {
    for (const h of l.dests.keys()) {
      const f = referenceFold(ctx, ns, h, listeners);
      if (f && !visible.includes(f.svc) && !out.some(([s]) => s === f.svc)) out.push([f.svc, f.ports]);
    }
  }
  return out;
}

const ids = (svcs: readonly Service[]): string[] => svcs.map((s) => `${s.namespace}/${s.hostname}:${s.ports.map((p) => p.port).join(',')}`);
const refIds = (svcs: ReadonlyArray<[Service, Ports]>): string[] =>
  svcs.map(([s, ports]) => `${s.namespace}/${s.hostname}:${s.ports.filter((p) => ports === 'all' || ports.has(p.port)).map((p) => p.port).join(',')}`);

test('sidecar scopes on 150 random meshes equal the plain scan of every service and VirtualService', () => {
  const r = rng(20261126);
  let imported = 0; let withPort = 0; let partial = 0; let shared = 0; let unseen = 0; let importedVs = 0; let destinationOnly = 0; let trimmed = 0;
  for (let m = 0; m < 150; m++) {
    const mesh = randomMesh(r);
    const ctx = ctxOf(mesh.docs);
    for (const ns of NS) {
      const scope = scopeFor(parseProxy(`sidecar~10.9.0.1~p-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: { app: 'p' } }), ctx);
      const visible = ctx.services.filter((s) => exportedTo(s.exportTo, s.namespace, ns));
      // The namespace's Sidecar, else the root namespace's (its `.` is the proxy's namespace, as istiod's).
      const spec = mesh.sidecars.get(ns) ?? mesh.sidecars.get('istio-system');
      // scopeIncludes answers without computing the scope when it can: ask it first, for every service.
      const includes = ctx.services.map((s) => scopeIncludes(ctx, scope, s));
      const sc = sidecarScope(ctx, scope);
      const where = `mesh ${m}, namespace ${ns}, Sidecar ${JSON.stringify(spec)}`;
      const specs: any[] = spec?.egress?.length ? spec.egress : [{ hosts: ['*/*'] }];
      const listeners = specs.map((l) => listenerOf(ctx, ns, l));
      const expected = referenceServices(ctx, ns, listeners);
      assert.deepEqual(ids(sc.services), refIds(expected), where);
      const ported = specs.map((l, i) => [l, listeners[i]!] as const).filter(([l]) => l.port);
      const catchAllAt = specs.findIndex((l) => !l.port);
      const catchAll = catchAllAt >= 0 ? listeners[catchAllAt]! : undefined;
      // A listener builds listeners and routes for its own services only: not its VirtualServices' destinations.
      const own = (l: Listener): Array<[Service, Ports]> => visible.flatMap((s): Array<[Service, Ports]> => {
        if (!admits(l.hosts, s.namespace, s.hostname)) return [];
        const f = referenceFold(ctx, ns, s.hostname, [{ hosts: l.hosts, port: l.port, dests: new Map() }]);
        return f?.svc === s ? [[s, f.ports]] : [];
      });
      assert.deepEqual(ids(sc.catchAllServices), catchAll ? refIds(own(catchAll)) : [], where);
      const vsIds = (l: readonly ConfigEntry[]): string[] => l.map((vs) => `${vs.namespace}/${vs.name}`);
      assert.deepEqual(vsIds(sc.catchAllVirtualServices), catchAll ? vsIds(referenceVirtualServices(ctx, ns, catchAll.hosts)) : [], `VirtualServices, ${where}`);
      assert.deepEqual(sc.egressListeners.map((l) => [ids(l.services), vsIds(l.virtualServices)]),
        ported.map(([, l]) => [refIds(own(l)), vsIds(referenceVirtualServices(ctx, ns, l.hosts))]), where);
      if (catchAll && sc.catchAllServices.length < sc.services.length) destinationOnly++;
      if (ported.length > 0) withPort++;
      if (expected.length > 0 && expected.length < visible.length) partial++;
      if (new Set(expected.map(([x]) => x.hostname)).size < ctx.services.filter((x) => expected.some(([e]) => e.hostname === x.hostname) && exportedTo(x.exportTo, x.namespace, ns)).length) shared++;
      if (expected.some(([x]) => !visible.includes(x))) unseen++;
      if (expected.some(([x, ports]) => ports !== 'all' && ports.size < x.ports.length)) trimmed++;
      importedVs += sc.catchAllVirtualServices.length;
      imported += expected.length;
      assert.deepEqual(includes, ctx.services.map((s) => expected.some(([x]) => x === s)), `scopeIncludes, ${where}`);
    }
  }
  // Not vacuous: scopes that import some but not all of what they see, and port-specific egress listeners.
  assert.ok(partial > 100, `partial scopes: ${partial}`);
  assert.ok(withPort > 20, `scopes with a port-specific egress listener: ${withPort}`);
  assert.ok(imported > 500, `imported services: ${imported}`);
  assert.ok(shared > 100, `scopes that took one of a hostname's several services: ${shared}`);
  assert.ok(importedVs > 500, `imported VirtualServices: ${importedVs}`);
  assert.ok(trimmed > 50, `scopes with a service trimmed to some of its ports: ${trimmed}`);
  assert.ok(destinationOnly > 50, `scopes with services the catch-all listener imports as destinations only: ${destinationOnly}`);
  assert.ok(unseen > 5, `scopes with a service of their namespace they do not see, imported as a destination: ${unseen}`);
});
