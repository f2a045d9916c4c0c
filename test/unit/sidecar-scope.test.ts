/**
 * Sidecar scopes on random meshes against a reference written straight from the rule (sidecar-scope.ts's header):
 * a service is imported when it is exported to the proxy's namespace and an egress host `NAMESPACE/DNSNAME`
 * matches it, plus the destinations of the VirtualServices exported there whose hosts an egress host matches (with
 * the VirtualService's namespace) or that are already imported (in VirtualService order). The implementation indexes
 * services and egress hosts so that a 10,000-service mesh does not match every host against every service per
 * namespace; this test holds it to the plain scan, including exportTo, ServiceEntry hostnames in several namespaces
 * and on Kubernetes Services' hostnames (one service per hostname per scope: referenceChoice), creation
 * timestamps, wildcard hosts, `~`, and port-specific egress listeners.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportedTo, hostMatches, type PushContext } from '../../src/model/push-context.js';
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
    if (x < 0.8) return pick(['api.example.com', 'a.example.com', 'b.example.com']);
    return fqdn(`nosuch${Math.floor(r() * 3)}`, ns);
  };
  const vsCount = Math.floor(r() * 10);
  for (let k = 0; k < vsCount; k++) {
    const ns = pick(NS);
    const hosts = [...new Set([someHost(), ...(r() < 0.3 ? [someHost()] : [])])];
    const dests = Array.from({ length: 1 + Math.floor(r() * 2) }, () => { const [n, sns] = pick(names); return r() < 0.8 ? fqdn(n, sns) : n; });
    const ex = exportTo();
    docs[`vs-${k}.yaml`] = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-${k}, namespace: ${ns}}
spec:
  hosts: ${JSON.stringify(hosts)}
${ex ? `  exportTo: ${JSON.stringify(ex)}\n` : ''}  http:
  - route: ${JSON.stringify(dests.map((d) => ({ destination: { host: d }, ...(dests.length > 1 ? { weight: 50 } : {}) })))}
`;
  }
  const egressHost = (): string => {
    const x = r();
    const ns = r() < 0.15 ? '*' : r() < 0.3 ? '.' : r() < 0.35 ? '~' : pick(NS);
    const [name, sns] = pick(names);
    const host = x < 0.5 ? '*' : x < 0.65 ? fqdn(name, sns) : x < 0.75 ? `*.${sns}.svc.cluster.local` : x < 0.85 ? '*.example.com' : 'api.example.com';
    return r() < 0.05 ? host : `${ns}/${host}`; // no namespace part: any namespace
  };
  const sidecars = new Map<string, any>();
  for (const ns of NS) {
    const x = r();
    if (x < 0.15) continue; // no Sidecar: everything exported here
    let spec: any;
    if (x < 0.2) spec = { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }; // no egress: everything exported here
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
  return hosts.map((h) => {
    const i = h.indexOf('/');
    const n = i < 0 ? '*' : h.slice(0, i);
    return { namespace: n === '.' ? ns : n, host: i < 0 ? h : h.slice(i + 1) };
  });
}
const admits = (egress: EgressHost[], ns: string, host: string): boolean =>
  egress.some((e) => e.namespace !== '~' && (e.namespace === '*' || e.namespace === ns) && hostMatches(e.host, host));

/** The rule, scanning every service and every VirtualService. */
function referenceAdmitted(ctx: PushContext, ns: string, visible: Service[], egress: EgressHost[]): Set<string> {
  const admitted = new Set(visible.filter((s) => admits(egress, s.namespace, s.hostname)).map((s) => s.hostname));
  for (const vs of ctx.data.virtualServices) {
    if (!exportedTo(vs.spec.exportTo, vs.namespace, ns)) continue;
    const hosts = ((vs.spec.hosts ?? []) as string[]).map((h) => ctx.qualify(h, vs.namespace));
    const seen = (h: string): boolean => (h.includes('*') ? [...admitted].some((a) => hostMatches(h, a)) : admitted.has(h));
    if (!hosts.some((h) => admits(egress, vs.namespace, h) || seen(h))) continue;
    for (const http of vs.spec.http ?? []) for (const d of http.route ?? []) admitted.add(ctx.qualify(d.destination.host, vs.namespace));
  }
  return admitted;
}

const ids = (svcs: readonly Service[]): string[] => svcs.map((s) => `${s.namespace}/${s.hostname}`);

/**
 * Where a hostname is several services (ServiceEntries in several namespaces, or next to a Kubernetes Service),
 * the one a scope keeps (istiod sidecar.go selectServices with unified scoping, appendSidecarServices,
 * collectImportedServices): `listeners` are the egress listeners' hosts in order (undefined: no egress, `*\/*`).
 * Candidates are the hostname's services visible from `ns` in servicesExportedToNamespace order (private to `ns`,
 * exported to it by name, public; oldest first, then namespace/name). Each listener takes, of those its hosts
 * import, the one in `ns`, else the first Kubernetes Service, else the first; the first listener's choice stands
 * unless a later one's is a Kubernetes Service and it is not. One no listener imports but a VirtualService routes
 * to: the one in `ns`, else the alphabetically first namespace that exports it to `ns`.
 */
function referenceChoice(ctx: PushContext, ns: string, host: string, listeners: EgressHost[][] | undefined): Service | undefined {
  const all = ctx.services.filter((s) => s.hostname === host);
  const rank = (s: Service): number => (s.exportTo.length === 0 || s.exportTo.includes('*') ? 2
    : s.namespace === ns && s.exportTo.some((e) => e === '.' || e === ns) ? 0 : 1);
  const time = (s: Service): number => (s.creationTime ? Date.parse(s.creationTime) : Infinity);
  const candidates = all.filter((s) => exportedTo(s.exportTo, s.namespace, ns)).sort((a, b) =>
    rank(a) - rank(b) || time(a) - time(b) || (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const kube = (s: Service): boolean => s.registry === undefined;
  const choose = (xs: Service[]): Service | undefined => xs.find((s) => s.namespace === ns) ?? xs.find(kube) ?? xs[0];
  if (!listeners) return choose(candidates);
  let c: Service | undefined;
  for (const hosts of listeners) {
    const l = choose(candidates.filter((s) => admits(hosts, s.namespace, host)));
    if (l && (!c || (!kube(c) && kube(l)))) c = l;
  }
  return c ?? all.find((s) => s.namespace === ns) ?? candidates.sort((a, b) => (a.namespace < b.namespace ? -1 : 1))[0];
}

/** `svcs` with one service per hostname: referenceChoice's. */
function oneOfEach(ctx: PushContext, ns: string, svcs: Service[], listeners: EgressHost[][] | undefined): Service[] {
  return svcs.filter((s) => ctx.services.filter((x) => x.hostname === s.hostname).length === 1 || referenceChoice(ctx, ns, s.hostname, listeners) === s);
}

test('sidecar scopes on 150 random meshes equal the plain scan of every service and VirtualService', () => {
  const r = rng(20261126);
  let imported = 0; let withPort = 0; let partial = 0; let shared = 0;
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
      if (!spec?.egress) {
        const expected = oneOfEach(ctx, ns, visible, undefined);
        assert.deepEqual(ids(sc.services), ids(expected), where);
        assert.deepEqual(ids(sc.catchAllServices), ids(expected), where);
        if (expected.length < visible.length) shared++;
      } else {
        const listeners = (spec.egress as any[]).map((l) => parseHosts(l.hosts, ns));
        const all = listeners.flat();
        const admitted = referenceAdmitted(ctx, ns, visible, all);
        const expected = oneOfEach(ctx, ns, visible.filter((s) => admitted.has(s.hostname)), listeners);
        assert.deepEqual(ids(sc.services), ids(expected), where);
        const ported = spec.egress.filter((l: any) => l.port);
        const catchAll = spec.egress.find((l: any) => !l.port);
        const catchAllHosts = catchAll ? parseHosts(catchAll.hosts, ns) : [];
        const catchAllAdmitted = catchAll ? referenceAdmitted(ctx, ns, visible, catchAllHosts) : new Set<string>();
        assert.deepEqual(ids(sc.catchAllServices), ported.length === 0 ? ids(expected)
          : ids(oneOfEach(ctx, ns, visible.filter((s) => catchAllAdmitted.has(s.hostname)), [catchAllHosts])), where);
        assert.deepEqual(sc.egressListeners.map((l) => ids(l.services)),
          ported.map((l: any) => { const h = parseHosts(l.hosts, ns); return ids(oneOfEach(ctx, ns, visible.filter((s) => admits(h, s.namespace, s.hostname)), [h])); }), where);
        if (expected.length < visible.filter((s) => admitted.has(s.hostname)).length) shared++;
        if (ported.length > 0) withPort++;
        if (expected.length > 0 && expected.length < visible.length) partial++;
        imported += expected.length;
      }
      assert.deepEqual(includes, ctx.services.map((s) => sc.services.includes(s)), `scopeIncludes, ${where}`);
    }
  }
  // Not vacuous: scopes that import some but not all of what they see, and port-specific egress listeners.
  assert.ok(partial > 100, `partial scopes: ${partial}`);
  assert.ok(withPort > 20, `scopes with a port-specific egress listener: ${withPort}`);
  assert.ok(imported > 500, `imported services: ${imported}`);
  assert.ok(shared > 100, `scopes that took one of a hostname's several services: ${shared}`);
});
