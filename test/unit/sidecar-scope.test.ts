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
      docs[`${ns}-${name}.yaml`] = `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
${ex ? `  annotations: {networking.istio.io/exportTo: "${ex.join(',')}"}\n` : ''}spec:
  clusterIP: 10.0.${i}.1
  ports: [{name: http, port: 80}]
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
  - route: ${JSON.stringify(dests.map((d) => ({ destination: { host: d }, ...(dests.length > 1 ? { weight: 50 } : {}) })))}
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
 * The hosts a VirtualService sends a proxy in `ns` to, qualified in its namespace: its HTTP rules' routes, except a
 * rule with sourceNamespace matches none of which is `ns`; its tcp routes.
 */
const destinationsOf = (ctx: PushContext, vs: ConfigEntry, ns: string): string[] => [
  ...((vs.spec.http ?? []) as any[]).filter((http) => {
    const sns = ((http.match ?? []) as any[]).map((m) => m.sourceNamespace).filter(Boolean);
    return sns.length === 0 || sns.includes(ns);
  }).flatMap((http) => ((http.route ?? []) as any[]).map((d) => ctx.qualify(d.destination.host, vs.namespace))),
  ...((vs.spec.tcp ?? []) as any[]).flatMap((t) => ((t.route ?? []) as any[]).map((d) => ctx.qualify(d.destination.host, vs.namespace))),
];

interface Listener { hosts: EgressHost[]; dests: Set<string> }
function listenerOf(ctx: PushContext, ns: string, hosts: EgressHost[]): Listener {
  return { hosts, dests: new Set(referenceVirtualServices(ctx, ns, hosts).flatMap((vs) => destinationsOf(ctx, vs, ns))) };
}

/**
 * The services listeners import together, one per hostname, in registry order: every visible service an egress
 * host matches, and every destination's service (the one in `ns` even unseen, else the first namespace
 * alphabetically that exports it to `ns`); those unseen last.
 */
function referenceServices(ctx: PushContext, ns: string, listeners: Listener[]): Service[] {
  const visible = ctx.services.filter((s) => exportedTo(s.exportTo, s.namespace, ns));
  const chosen = (host: string): Service | undefined => referenceChoice(ctx, ns, host, listeners);
  const hostnames = new Set<string>();
  for (const l of listeners) {
    for (const s of visible) if (admits(l.hosts, s.namespace, s.hostname)) hostnames.add(s.hostname);
    for (const h of l.dests) hostnames.add(h);
  }
  const seen = visible.filter((s) => hostnames.has(s.hostname) && chosen(s.hostname) === s);
  const unseen: Service[] = [];
  for (const l of listeners) {
    for (const h of l.dests) {
      const c = chosen(h);
      if (c && !visible.includes(c) && !unseen.includes(c)) unseen.push(c);
    }
  }
  return [...seen, ...unseen];
}

const ids = (svcs: readonly Service[]): string[] => svcs.map((s) => `${s.namespace}/${s.hostname}`);

/**
 * Where a hostname is several services (ServiceEntries in several namespaces, or next to a Kubernetes Service),
 * the one a scope keeps (istiod sidecar.go selectServices with unified scoping, appendSidecarServices,
 * collectImportedServices), for listeners in order. Candidates are the hostname's services visible from `ns` in
 * servicesExportedToNamespace order (private to `ns`, exported to it by name, public; oldest first, then
 * namespace/name). Each listener takes, of those its hosts import, the one in `ns`, else the first Kubernetes
 * Service, else the first; then, if one of its VirtualServices routes to the hostname, the one in `ns` (even
 * unseen), else the alphabetically first namespace that exports it to `ns`. The first choice stands unless a later
 * one is a Kubernetes Service and it is not.
 */
function referenceChoice(ctx: PushContext, ns: string, host: string, listeners: Listener[]): Service | undefined {
  const all = ctx.services.filter((s) => s.hostname === host);
  const rank = (s: Service): number => (s.exportTo.length === 0 || s.exportTo.includes('*') ? 2
    : s.namespace === ns && s.exportTo.some((e) => e === '.' || e === ns) ? 0 : 1);
  const time = (s: Service): number => (s.creationTime ? Date.parse(s.creationTime) : Infinity);
  const candidates = all.filter((s) => exportedTo(s.exportTo, s.namespace, ns)).sort((a, b) =>
    rank(a) - rank(b) || time(a) - time(b) || (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const kube = (s: Service): boolean => s.registry === undefined;
  const choose = (xs: Service[]): Service | undefined => xs.find((s) => s.namespace === ns) ?? xs.find(kube) ?? xs[0];
  const destination = (): Service | undefined => all.find((s) => s.namespace === ns) ?? [...candidates].sort((a, b) => (a.namespace < b.namespace ? -1 : 1))[0];
  let c: Service | undefined;
  const take = (x: Service | undefined): void => { if (x && (!c || (!kube(c) && kube(x)))) c = x; };
  for (const l of listeners) {
    take(choose(candidates.filter((s) => admits(l.hosts, s.namespace, host))));
    if (l.dests.has(host)) take(destination());
  }
  return c;
}

test('sidecar scopes on 150 random meshes equal the plain scan of every service and VirtualService', () => {
  const r = rng(20261126);
  let imported = 0; let withPort = 0; let partial = 0; let shared = 0; let unseen = 0; let importedVs = 0; let destinationOnly = 0;
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
      const listeners = specs.map((l) => listenerOf(ctx, ns, parseHosts(l.hosts, ns)));
      const expected = referenceServices(ctx, ns, listeners);
      assert.deepEqual(ids(sc.services), ids(expected), where);
      const ported = specs.map((l, i) => [l, listeners[i]!] as const).filter(([l]) => l.port);
      const catchAllAt = specs.findIndex((l) => !l.port);
      const catchAll = catchAllAt >= 0 ? listeners[catchAllAt]! : undefined;
      // A listener builds listeners and routes for its own services only: not its VirtualServices' destinations.
      const own = (l: Listener): Service[] => visible.filter((s) => admits(l.hosts, s.namespace, s.hostname) &&
        referenceChoice(ctx, ns, s.hostname, [{ hosts: l.hosts, dests: new Set() }]) === s);
      assert.deepEqual(ids(sc.catchAllServices), catchAll ? ids(own(catchAll)) : [], where);
      const vsIds = (l: readonly ConfigEntry[]): string[] => l.map((vs) => `${vs.namespace}/${vs.name}`);
      assert.deepEqual(vsIds(sc.catchAllVirtualServices), catchAll ? vsIds(referenceVirtualServices(ctx, ns, catchAll.hosts)) : [], `VirtualServices, ${where}`);
      assert.deepEqual(sc.egressListeners.map((l) => [ids(l.services), vsIds(l.virtualServices)]),
        ported.map(([, l]) => [ids(own(l)), vsIds(referenceVirtualServices(ctx, ns, l.hosts))]), where);
      if (catchAll && sc.catchAllServices.length < sc.services.length) destinationOnly++;
      if (ported.length > 0) withPort++;
      if (expected.length > 0 && expected.length < visible.length) partial++;
      if (new Set(expected.map((x) => x.hostname)).size < ctx.services.filter((x) => expected.some((e) => e.hostname === x.hostname) && exportedTo(x.exportTo, x.namespace, ns)).length) shared++;
      if (expected.some((x) => !visible.includes(x))) unseen++;
      importedVs += sc.catchAllVirtualServices.length;
      imported += expected.length;
      assert.deepEqual(includes, ctx.services.map((s) => sc.services.includes(s)), `scopeIncludes, ${where}`);
    }
  }
  // Not vacuous: scopes that import some but not all of what they see, and port-specific egress listeners.
  assert.ok(partial > 100, `partial scopes: ${partial}`);
  assert.ok(withPort > 20, `scopes with a port-specific egress listener: ${withPort}`);
  assert.ok(imported > 500, `imported services: ${imported}`);
  assert.ok(shared > 100, `scopes that took one of a hostname's several services: ${shared}`);
  assert.ok(importedVs > 500, `imported VirtualServices: ${importedVs}`);
  assert.ok(destinationOnly > 50, `scopes with services the catch-all listener imports as destinations only: ${destinationOnly}`);
  assert.ok(unseen > 5, `scopes with a service of their namespace they do not see, imported as a destination: ${unseen}`);
});
