/**
 * ProxyNeedsPush soundness: whenever the dependency check (src/push/proxy-dependencies.ts) lets a proxy skip a full
 * push, every resource that proxy would get from the new PushContext must be byte-for-byte what it got from the old
 * one. Checked for each kind of change the check reasons about, for sidecars inside and outside Sidecar isolation,
 * plus the expected verdicts (so the check is not vacuously "everyone").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ProxyDependencies } from '../../src/push/proxy-dependencies.js';
import { egressSidecarYaml, headerRouteVsYaml } from '../helpers/istio-yaml.js';
import { ctxOf } from '../helpers/context.js';
import { scopeIncludes, sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { serviceIdentities } from '../../workers/networking/security/tls-context.js';


function svc(name: string, ns: string, ip: string, ports = [9080]): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: 10.0.${ip}
  selector: {app: ${name}}
  ports: [${ports.map((p) => `{name: http-${p}, port: ${p}}`).join(', ')}]
---
apiVersion: v1
kind: Pod
metadata: {name: ${name}-0, namespace: ${ns}, labels: {app: ${name}, version: v1}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.${ip}}
`;
}

const sidecar = egressSidecarYaml;
const vs = headerRouteVsYaml;

const BASE: Record<string, string> = {
  'svcs.yaml': [svc('alpha', 'ns-a', '1.1'), svc('beta', 'ns-b', '2.1'), svc('gamma', 'ns-c', '3.1')].join('---\n'),
  'sidecar-a.yaml': sidecar('ns-a', ['./*']),
  'sidecar-b.yaml': sidecar('ns-b', ['./*']),
  'vs-alpha.yaml': vs('alpha', 'ns-a', 'alpha.ns-a.svc.cluster.local', 'one'),
};

const PROXIES = [
  parseProxy('sidecar~10.1.1.1~alpha-0.ns-a~ns-a.svc.cluster.local', { NAMESPACE: 'ns-a', LABELS: { app: 'alpha', version: 'v1' } }),
  parseProxy('sidecar~10.1.2.1~beta-0.ns-b~ns-b.svc.cluster.local', { NAMESPACE: 'ns-b', LABELS: { app: 'beta', version: 'v1' } }),
  parseProxy('sidecar~10.1.3.1~gamma-0.ns-c~ns-c.svc.cluster.local', { NAMESPACE: 'ns-c', LABELS: { app: 'gamma', version: 'v1' } }),
];

/** Everything a proxy receives (all four types, wildcard), as JSON per resource. */
function configOf(ctx: PushContext, proxyIndex: number): Map<string, string> {
  const scope = scopeFor(PROXIES[proxyIndex]!, ctx);
  const out = new Map<string, string>();
  for (const type of [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]) {
    for (const item of planResources(ctx, scope, type)) {
      out.set(`${type} ${item.name}`, JSON.stringify(buildResource(ctx, scope, type, item.name) ?? null));
    }
  }
  return out;
}

interface Case { name: string; key: string; files: Record<string, string | undefined>; affected: boolean[] }

const CASES: Case[] = [
  { name: 'VirtualService edited in ns-a', key: 'VirtualService/ns-a/alpha',
    files: { 'vs-alpha.yaml': vs('alpha', 'ns-a', 'alpha.ns-a.svc.cluster.local', 'two') }, affected: [true, false, true] },
  { name: 'VirtualService exported only to its namespace (was everywhere)', key: 'VirtualService/ns-a/alpha',
    files: { 'vs-alpha.yaml': vs('alpha', 'ns-a', 'alpha.ns-a.svc.cluster.local', 'one', '  exportTo: ["."]\n') }, affected: [true, false, true] },
  { name: 'VirtualService deleted', key: 'VirtualService/ns-a/alpha', files: { 'vs-alpha.yaml': undefined }, affected: [true, false, true] },
  { name: 'VirtualService bound only to a gateway', key: 'VirtualService/ns-a/gw',
    files: { 'vs-gw.yaml': vs('gw', 'ns-a', 'alpha.ns-a.svc.cluster.local', 'g', '  gateways: [ns-a/gw]\n') }, affected: [false, false, false] },
  // ns-a's egress `./*` imports every VirtualService of ns-a whatever its host, and with it its destinations. ns-b's
  // `./*` imports none of ns-a's or ns-c's, not even for its own host (istiod SelectVirtualServices looks up the
  // egress hosts by the VirtualService's namespace): ns-b keeps its default route for beta, so it is not affected.
  { name: 'VirtualService in ns-a for ns-b\'s host', key: 'VirtualService/ns-a/beta-from-a',
    files: { 'vs-b.yaml': vs('beta-from-a', 'ns-a', 'beta.ns-b.svc.cluster.local', 'b') }, affected: [true, false, true] },
  { name: 'VirtualService in ns-c for ns-b\'s host', key: 'VirtualService/ns-c/beta-from-c',
    files: { 'vs-c.yaml': vs('beta-from-c', 'ns-c', 'beta.ns-b.svc.cluster.local', 'c') }, affected: [false, false, true] },
  { name: 'DestinationRule with a subset for alpha', key: 'DestinationRule/ns-a/alpha',
    files: { 'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: alpha, namespace: ns-a}
spec:
  host: alpha
  subsets: [{name: v1, labels: {version: v1}}]
` }, affected: [true, false, true] },
  { name: 'Service beta gains a port', key: 'Service/ns-b/beta',
    files: { 'svcs.yaml': [svc('alpha', 'ns-a', '1.1'), svc('beta', 'ns-b', '2.1', [9080, 9090]), svc('gamma', 'ns-c', '3.1')].join('---\n') }, affected: [false, true, true] },
  { name: 'ns-b\'s Sidecar imports ns-a', key: 'Sidecar/ns-b/default',
    files: { 'sidecar-b.yaml': sidecar('ns-b', ['./*', 'ns-a/*']) }, affected: [false, true, false] },
  { name: 'AuthorizationPolicy in ns-a', key: 'AuthorizationPolicy/ns-a/deny',
    files: { 'ap.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: ns-a}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
` }, affected: [true, false, false] },
  { name: 'AuthorizationPolicy in the root namespace', key: 'AuthorizationPolicy/istio-system/deny',
    files: { 'ap-root.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
` }, affected: [true, true, true] },
];

for (const c of CASES) {
  test(`ProxyNeedsPush: ${c.name}`, () => {
    const oldCtx = ctxOf(BASE);
    const next = { ...BASE };
    for (const [f, text] of Object.entries(c.files)) { if (text === undefined) delete next[f]; else next[f] = text; }
    const newCtx = ctxOf(next);
    const deps = new ProxyDependencies(oldCtx, newCtx, [c.key]);
    assert.equal(deps.all, false, 'a change the check reasons about');
    const verdicts = PROXIES.map((p) => deps.affects(scopeFor(p, oldCtx), scopeFor(p, newCtx)));
    assert.deepEqual(verdicts, c.affected, 'affected proxies (ns-a, ns-b, ns-c without a Sidecar)');
    for (let i = 0; i < PROXIES.length; i++) {
      if (verdicts[i]) continue;
      // Skipped: what the new context would give this proxy must be exactly what it has.
      assert.deepEqual(configOf(newCtx, i), configOf(oldCtx, i), `${PROXIES[i]!.id} skipped but its config changed`);
    }
  });
}

test('ProxyNeedsPush: kinds it does not reason about push to everyone', () => {
  const ctx = ctxOf(BASE);
  for (const key of ['ServiceEntry/ns-a/ext', 'PeerAuthentication/ns-a/default', 'Gateway/ns-a/gw', 'Namespace//ns-a', 'MeshConfig//mesh']) {
    assert.equal(new ProxyDependencies(ctx, ctx, [key]).all, true, key);
  }
  // Endpoint kinds alone leave nothing for the config check: the request means "all" (the engine's EDS path decides).
  assert.equal(new ProxyDependencies(ctx, ctx, ['EndpointSlice/ns-a/alpha-1']).all, true);
  assert.equal(new ProxyDependencies(ctx, ctx, ['EndpointSlice/ns-a/alpha-1', 'VirtualService/ns-a/alpha']).all, false);
});

const NS = ['ns-a', 'ns-b', 'ns-c'];
const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'eps', 'zeta'];
const hostOf = (name: string, ns: string): string => `${name}.${ns}.svc.cluster.local`;

/** A seeded generator: rnd(n) in [0, n), pick(xs). */
function seeded(seed: number): { rnd: (n: number) => number; pick: <T>(xs: readonly T[]) => T } {
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  return { rnd, pick: <T>(xs: readonly T[]): T => xs[rnd(xs.length)]! };
}

/** A VirtualService for `hosts`: an HTTP route to `to`, or (tcp) a TCP route to it; `extra` is spliced into spec. */
function randomVs(name: string, ns: string, hosts: string[], to: string, tcp: boolean, extra = ''): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  hosts: [${hosts.join(', ')}]\n${extra}` +
    (tcp ? `  tcp:\n  - route: [{destination: {host: ${to}, port: {number: 9080}}}]\n` : `  http:\n  - route: [{destination: {host: ${to}}}]\n`);
}

/**
 * A small random mesh: six services in three namespaces (some exported to their namespace only, some with a TCP
 * port), Sidecars with random egress hosts (some with a port-specific listener), and VirtualServices that route to
 * other services or their own host, some with two hosts, some exported to their namespace only, some TCP.
 */
function randomMesh(r: ReturnType<typeof seeded>): { docs: Record<string, string>; placed: Array<{ n: string; ns: string }>; vsCount: number } {
  const { rnd, pick } = r;
  const placed = NAMES.map((n) => ({ n, ns: pick(NS) }));
  const docs: Record<string, string> = {};
  placed.forEach(({ n, ns }, i) => {
    // A quarter of the services are exported to their own namespace only; a sixth serve TCP.
    const meta = rnd(4) === 0 ? `{name: ${n}, namespace: ${ns}, annotations: {networking.istio.io/exportTo: "."}}` : `{name: ${n}, namespace: ${ns}}`;
    let text = svc(n, ns, `${i + 1}.1`).replace(`metadata: {name: ${n}, namespace: ${ns}}`, `metadata: ${meta}`);
    if (rnd(6) === 0) text = text.replace('name: http-9080', 'name: tcp-9080');
    docs[`svc-${n}.yaml`] = text;
  });
  const egressHost = (): string => pick(['./*', '*/*', '~/*', 'istio-system/*', ...NS.map((ns) => `${ns}/*`),
    ...placed.map(({ n, ns }) => `${pick(['*', ns])}/${hostOf(n, ns)}`), `*/*.${pick(NS)}.svc.cluster.local`]);
  for (const ns of NS) {
    if (rnd(3) === 0) continue; // no Sidecar: everything visible
    const hosts = Array.from({ length: 1 + rnd(3) }, egressHost);
    docs[`sidecar-${ns}.yaml`] = rnd(3) === 0
      ? `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: ${ns}}\nspec:\n  egress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    hosts: [${JSON.stringify(egressHost())}]\n  - hosts: [${hosts.map((h) => JSON.stringify(h)).join(', ')}]\n`
      : sidecar(ns, hosts);
  }
  const vsCount = 1 + rnd(4);
  for (let v = 0; v < vsCount; v++) {
    // Routes to another service, or to its own host (in its own namespace or another); some have two hosts.
    const from = pick(placed), to = rnd(3) === 0 ? from : pick(placed);
    const vsNs = rnd(2) === 0 ? from.ns : pick(NS);
    const other = pick(placed);
    const hosts = [hostOf(from.n, from.ns), ...(rnd(3) === 0 ? [hostOf(other.n, rnd(2) === 0 ? other.ns : pick(NS))] : [])];
    docs[`vs-${v}.yaml`] = randomVs(`vs-${v}`, vsNs, hosts, hostOf(to.n, to.ns), rnd(6) === 0, rnd(3) === 0 ? '  exportTo: ["."]\n' : '');
  }
  return { docs, placed, vsCount };
}

test('scopeIncludes answers what the computed Sidecar scope answers (1,000 random meshes)', () => {
  const { rnd, pick } = seeded(7);
  // Fixed case: a VirtualService routing to its own first host is admitted through its second host, and so
  // brings the first in (ns-c's egress names only beta).
  {
    const ctx = ctxOf({
      'svcs.yaml': [svc('alpha', 'ns-a', '1.1'), svc('beta', 'ns-b', '2.1')].join('---\n'),
      'sidecar-c.yaml': sidecar('ns-c', ['*/beta.ns-b.svc.cluster.local']),
      'vs.yaml': `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: two, namespace: ns-a}\nspec:\n  hosts: [${hostOf('alpha', 'ns-a')}, ${hostOf('beta', 'ns-b')}]\n  http:\n  - route: [{destination: {host: ${hostOf('alpha', 'ns-a')}}}]\n`,
    });
    const scope = scopeFor(parseProxy('sidecar~10.9.0.1~client-0.ns-c~ns-c.svc.cluster.local', { NAMESPACE: 'ns-c' }), ctx);
    assert.equal(scopeIncludes(ctx, scope, ctx.service(hostOf('alpha', 'ns-a'))!), true, 'alpha comes in through the VirtualService');
    assert.equal(sidecarScope(ctx, scope).services.includes(ctx.service(hostOf('alpha', 'ns-a'))!), true);
  }
  let checked = 0, inside = 0;
  for (let round = 0; round < 1000; round++) {
    const { docs } = randomMesh({ rnd, pick });
    const ctx = ctxOf(docs);
    for (const ns of NS) {
      const scope = scopeFor(parseProxy(`sidecar~10.9.0.1~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns }), ctx);
      // Asked before the scope is computed (the cheap answers), then against the computed scope.
      const cheap = ctx.services.map((s) => scopeIncludes(ctx, scope, s));
      const full = ctx.services.map((s) => sidecarScope(ctx, scope).services.includes(s));
      assert.deepEqual(cheap, full, `round ${round}, namespace ${ns}:\n${Object.values(docs).join('---\n')}`);
      checked += cheap.length;
      inside += cheap.filter(Boolean).length;
    }
  }
  assert.ok(inside > checked / 5 && inside < checked * 4 / 5, `a mix of answers (${inside} of ${checked} inside)`);
});

/** An EndpointSlice for a service, overriding the endpoints its pods give it (the workload registry is untouched). */
function slice(name: string, ns: string, address: string): string {
  return `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}-slice, namespace: ${ns}, labels: {kubernetes.io/service-name: ${name}}}\n` +
    `addressType: IPv4\nports: [{name: http-9080, port: 9080}]\nendpoints:\n- addresses: ["${address}"]\n  conditions: {ready: true}\n`;
}

test('VirtualService pushes, alone or with endpoint changes merged: skipped proxies and skipped types are exactly what the new context would give (300 random edits)', () => {
  const r = seeded(11);
  const { rnd, pick } = r;
  /** One type of a proxy's config, as JSON per resource. */
  const typeOf = (ctx: PushContext, proxy: ReturnType<typeof parseProxy>, type: string): string => {
    const scope = scopeFor(proxy, ctx);
    return JSON.stringify(planResources(ctx, scope, type).map((item) => [item.name, buildResource(ctx, scope, type, item.name) ?? null]));
  };
  const TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];
  // Fixed case: a VirtualService the catch-all egress listener imports, routing to beta (on its only port 9090,
  // already in the scope through the port-specific listener on 9090). A destination gets clusters only, no
  // listener (istiod collectImportedServices adds it to the scope, not to the listener): ns-c's listeners stay,
  // routes alone move.
  {
    const base = {
      'svcs.yaml': [svc('alpha', 'ns-a', '1.1'), svc('beta', 'ns-b', '2.1', [9090])].join('---\n'),
      'sidecar-c.yaml': `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: ns-c}\nspec:\n  egress:\n  - port: {number: 9090, protocol: HTTP, name: http}\n    hosts: ["*/${hostOf('beta', 'ns-b')}"]\n  - hosts: ["*/${hostOf('alpha', 'ns-a')}"]\n`,
    };
    const oldCtx = ctxOf(base);
    const newCtx = ctxOf({ ...base, 'vs.yaml': randomVs('y', 'ns-a', [hostOf('alpha', 'ns-a')], hostOf('beta', 'ns-b'), false) });
    const client = parseProxy('sidecar~10.9.0.1~client-0.ns-c~ns-c.svc.cluster.local', { NAMESPACE: 'ns-c' });
    const deps = new ProxyDependencies(oldCtx, newCtx, ['VirtualService/ns-a/y']);
    const scope = scopeFor(client, oldCtx);
    assert.equal(deps.affects(scope, scope), true);
    assert.equal(typeOf(newCtx, client, LISTENER_TYPE), typeOf(oldCtx, client, LISTENER_TYPE), 'no listener for beta\'s port');
    assert.notEqual(typeOf(newCtx, client, ROUTE_TYPE), typeOf(oldCtx, client, ROUTE_TYPE), 'alpha\'s route goes to beta');
    assert.deepEqual(deps.typesFor(scope), [ROUTE_TYPE], 'so routes alone are offered');
  }
  let skippedProxies = 0, routesOnly = 0, withListeners = 0, everything = 0, merged = 0;
  for (let round = 0; round < 300; round++) {
    const { docs, placed, vsCount } = randomMesh(r);
    // Edit one VirtualService: a new destination or host, TCP instead of HTTP, exportTo, deleted, or a new one.
    const next = { ...docs };
    const v = rnd(vsCount + 1);
    const from = pick(placed), to = pick(placed);
    const kind = rnd(4);
    if (kind === 0 && v < vsCount) delete next[`vs-${v}.yaml`];
    else next[`vs-${v}.yaml`] = randomVs(`vs-${v}`, from.ns, [hostOf(from.n, from.ns)], hostOf(to.n, to.ns), kind === 1, kind === 2 ? '  exportTo: ["."]\n' : '');
    const vsNs = (next[`vs-${v}.yaml`] ?? docs[`vs-${v}.yaml`])!.match(/namespace: ([\w-]+)/)![1]!;
    const changes = [`VirtualService/${vsNs}/vs-${v}`];
    // Half the pushes also carry an endpoint change (merged in one debounce window): a service's endpoints move.
    const moved = rnd(1000) < 500 ? pick(placed) : undefined;
    if (moved) {
      next[`slice-${moved.n}.yaml`] = slice(moved.n, moved.ns, `10.7.${rnd(200)}.${1 + rnd(200)}`);
      changes.push(`EndpointSlice/${moved.ns}/${moved.n}-slice`);
    }
    const oldCtx = ctxOf(docs), newCtx = ctxOf(next);
    const deps = new ProxyDependencies(oldCtx, newCtx, changes);
    // What the engine adds for the endpoint change: EDS, and CDS if the moved service's identities changed.
    const movedHost = moved ? hostOf(moved.n, moved.ns) : undefined;
    const cds = movedHost !== undefined &&
      serviceIdentities(oldCtx, oldCtx.service(movedHost)!).join() !== serviceIdentities(newCtx, newCtx.service(movedHost)!).join();
    assert.equal(deps.all, false);
    if (!deps.scopesStable) continue;
    // A client in each namespace, and each service's own workload (inbound listeners and clusters).
    const proxies = [
      ...NS.map((ns) => parseProxy(`sidecar~10.9.0.1~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns })),
      ...placed.map(({ n, ns }, i) => parseProxy(`sidecar~10.1.${i + 1}.1~${n}-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: { app: n, version: 'v1' } })),
    ];
    for (const proxy of proxies) {
      const scope = scopeFor(proxy, oldCtx);
      const affected = deps.affects(scope, scope);
      const types = affected ? (moved ? ProxyDependencies.withEndpointTypes(deps.typesFor(scope), cds) : deps.typesFor(scope))
        : moved ? (cds ? [CLUSTER_TYPE, ENDPOINT_TYPE] : [ENDPOINT_TYPE]) : [];
      for (const type of TYPES) {
        if (types.includes(type)) continue;
        assert.equal(typeOf(newCtx, proxy, type), typeOf(oldCtx, proxy, type),
          `round ${round}: ${proxy.id} ${affected ? `offered only ${types.join(' ')}` : 'skipped'} but its ${type} changed\nbefore: ${Object.entries(docs).filter(([f]) => f.startsWith("vs-")).map(([, t]) => t).join("---\n")}\nafter: ${Object.entries(next).filter(([f]) => f.startsWith("vs-")).map(([, t]) => t).join("---\n")}\n${Object.values(next).join("---\n")}`);
      }
      if (!affected) skippedProxies++;
      else if (moved && types.length < 4) merged++;
      else if (types.length === 1) routesOnly++;
      else if (types.length === 2) withListeners++;
      else everything++;
    }
  }
  // Every branch taken, so the property is not vacuous.
  assert.ok(skippedProxies > 100 && routesOnly > 100 && withListeners > 10 && everything > 10 && merged > 100,
    `skipped ${skippedProxies}, routes only ${routesOnly}, listeners+routes ${withListeners}, everything ${everything}, with endpoints merged ${merged}`);
});
