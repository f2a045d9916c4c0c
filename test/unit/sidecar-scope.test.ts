/**
 * Sidecar scopes on random meshes against a reference written straight from the rule (sidecar-scope.ts's header):
 * a service is imported when it is exported to the proxy's namespace and an egress host `NAMESPACE/DNSNAME`
 * matches it, plus the destinations of the VirtualServices exported there whose hosts an egress host matches (with
 * the VirtualService's namespace) or that are already imported (in VirtualService order). The implementation indexes
 * services and egress hosts so that a 10,000-service mesh does not match every host against every service per
 * namespace; this test holds it to the plain scan, including exportTo, ServiceEntry hostnames in two namespaces,
 * wildcard hosts, `~`, and port-specific egress listeners.
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
  // ServiceEntries: the same external hostname in two namespaces, with and without exportTo.
  for (const [k, ns] of [['a', pick(NS)], ['b', pick(NS)], ['c', pick(NS)]] as const) {
    const host = r() < 0.5 ? 'api.example.com' : `${k}.example.com`;
    const ex = exportTo();
    docs[`se-${k}.yaml`] = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se-${k}, namespace: ${ns}}
spec:
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

test('sidecar scopes on 150 random meshes equal the plain scan of every service and VirtualService', () => {
  const r = rng(20261126);
  let imported = 0; let withPort = 0; let partial = 0;
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
        assert.deepEqual(ids(sc.services), ids(visible), where);
        assert.deepEqual(ids(sc.catchAllServices), ids(visible), where);
      } else {
        const all = parseHosts(spec.egress.flatMap((l: any) => l.hosts), ns);
        const admitted = referenceAdmitted(ctx, ns, visible, all);
        const expected = visible.filter((s) => admitted.has(s.hostname));
        assert.deepEqual(ids(sc.services), ids(expected), where);
        const ported = spec.egress.filter((l: any) => l.port);
        const catchAll = spec.egress.find((l: any) => !l.port);
        const catchAllAdmitted = catchAll ? referenceAdmitted(ctx, ns, visible, parseHosts(catchAll.hosts, ns)) : new Set<string>();
        assert.deepEqual(ids(sc.catchAllServices), ported.length === 0 ? ids(expected) : ids(visible.filter((s) => catchAllAdmitted.has(s.hostname))), where);
        assert.deepEqual(sc.egressListeners.map((l) => ids(l.services)),
          ported.map((l: any) => { const h = parseHosts(l.hosts, ns); return ids(visible.filter((s) => admits(h, s.namespace, s.hostname))); }), where);
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
});
