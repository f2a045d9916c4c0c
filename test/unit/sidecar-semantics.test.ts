/**
 * Which services, VirtualServices and DestinationRules a proxy gets, on the concrete configurations where istiod's
 * rules (pilot/pkg/model/sidecar.go, push_context.go) used to differ from meshpilot's. Each test names the rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, type ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { serviceFor, sidecarScope } from '../../workers/networking/sidecar-scope.js';
import { clusterEndpointAddresses, ctxOf } from '../helpers/context.js';
import { egressSidecarYaml, kubeServiceYaml, routeVsYaml } from '../helpers/istio-yaml.js';

function sidecarIn(ctx: PushContext, ns: string, labels: Record<string, string> = { app: 'client' }): ProxyScope {
  return scopeFor(parseProxy(`sidecar~10.9.0.1~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: labels }), ctx);
}

function serviceEntry(name: string, ns: string, host: string, address: string, opts: { created?: string; exportTo?: string[]; port?: number } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
  namespace: ${ns}
${opts.created ? `  creationTimestamp: "${opts.created}"\n` : ''}spec:
  hosts: [${host}]
${opts.exportTo ? `  exportTo: ${JSON.stringify(opts.exportTo)}\n` : ''}  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${opts.port ?? 443}, name: https, protocol: TLS}]
  endpoints: [{address: ${address}}]
`;
}

const kubeService = kubeServiceYaml;

const endpointsOf = clusterEndpointAddresses;

test('D7: a host in two namespaces is a service in each; a proxy uses its own namespace\'s, else the oldest (R3.2)', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-01T00:00:00Z' }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { created: '2026-01-02T00:00:00Z' }),
  });
  const cluster = 'outbound|443||api.example.com';
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), cluster), ['10.1.1.1']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-b'), cluster), ['10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-c'), cluster), ['10.1.1.1'], 'ns-a\'s entry is the oldest');
  // By creation time, not by name: the same entries with ns-b's created first.
  const older = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-02T00:00:00Z' }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { created: '2026-01-01T00:00:00Z' }),
  });
  assert.deepEqual(endpointsOf(older, sidecarIn(older, 'ns-c'), cluster), ['10.2.2.2']);
  // A gateway has no namespace preference (DefaultSidecarScopeForGateway): the oldest, even in ns-b.
  const gw = scopeFor(parseProxy('router~10.9.0.2~gw-0.ns-b~ns-b.svc.cluster.local', { NAMESPACE: 'ns-b' }), older);
  assert.equal(serviceFor(older, gw, 'api.example.com')?.namespace, 'ns-b');
  const gwA = scopeFor(parseProxy('router~10.9.0.2~gw-0.ns-a~ns-a.svc.cluster.local', { NAMESPACE: 'ns-a' }), older);
  assert.equal(serviceFor(older, gwA, 'api.example.com')?.namespace, 'ns-b');
});

test('D7: a host exported only to its own namespace there does not hide the same host exported elsewhere', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('api', 'ns-a', 'api.example.com', '10.1.1.1', { exportTo: ['.'] }),
    'b.yaml': serviceEntry('api', 'ns-b', 'api.example.com', '10.2.2.2', { exportTo: ['*'] }),
  });
  const cluster = 'outbound|443||api.example.com';
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-c'), cluster), ['10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), cluster), ['10.1.1.1']);
  assert.deepEqual(sidecarScope(ctx, sidecarIn(ctx, 'ns-c')).services.map((s) => s.namespace), ['ns-b']);
});

test('D7: a ServiceEntry naming a Kubernetes Service\'s host is that proxy namespace\'s choice; elsewhere the Kubernetes Service wins', () => {
  const kube = `${kubeService('reviews', 'bookinfo', '{name: tls, port: 443}')}---
apiVersion: v1
kind: Pod
metadata: {name: reviews-0, namespace: bookinfo, labels: {app: reviews}}
status: {podIP: 10.244.0.9, phase: Running, conditions: [{type: Ready, status: "True"}]}
`;
  const host = 'reviews.bookinfo.svc.cluster.local';
  const ctx = ctxOf({
    'kube.yaml': kube,
    'x.yaml': serviceEntry('reviews-override', 'ns-x', host, '10.7.7.7', { created: '2020-01-01T00:00:00Z' }),
    // In the Service's own namespace the Kubernetes Service replaces the entry (HostnameAndNamespace).
    'squat.yaml': serviceEntry('squat', 'bookinfo', host, '10.6.6.6', { created: '2020-01-01T00:00:00Z' }),
  });
  assert.deepEqual(ctx.servicesFor(host).map((s) => `${s.namespace} ${s.registry ?? 'Kubernetes'}`), ['bookinfo Kubernetes', 'ns-x ServiceEntry']);
  const cluster = `outbound|443||${host}`;
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-x'), cluster), ['10.7.7.7']);
  // Older, but a ServiceEntry: the Kubernetes Service is preferred outside ns-x.
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'default'), cluster), ['10.244.0.9']);
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'bookinfo'), cluster), ['10.244.0.9']);
  // The cluster itself follows the choice too (STATIC entry vs EDS Service: both EDS here, so compare identities).
  assert.equal(serviceFor(ctx, sidecarIn(ctx, 'ns-x'), host)?.registry, 'ServiceEntry');
  assert.equal(serviceFor(ctx, sidecarIn(ctx, 'default'), host)?.registry, undefined);
});

test('D7: two ServiceEntries for one host in one namespace are one service, the oldest, with the endpoints of both', () => {
  const ctx = ctxOf({
    'a.yaml': serviceEntry('zz-old', 'ns-a', 'api.example.com', '10.1.1.1', { created: '2026-01-01T00:00:00Z' }),
    'b.yaml': serviceEntry('aa-new', 'ns-a', 'api.example.com', '10.2.2.2', { created: '2026-01-02T00:00:00Z' }),
  });
  assert.equal(ctx.servicesFor('api.example.com').length, 1);
  // istiod's endpoint shard is by host and namespace: both entries' endpoints (serviceInstancesStore.getByKey).
  assert.deepEqual(endpointsOf(ctx, sidecarIn(ctx, 'ns-a'), 'outbound|443||api.example.com')?.sort(), ['10.1.1.1', '10.2.2.2']);
});

const REVIEWS = kubeService('reviews', 'bookinfo', '{name: http, port: 9080}');

function destinationRule(name: string, ns: string, body: string, created?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
  namespace: ${ns}
${created ? `  creationTimestamp: "${created}"\n` : ''}spec:
  host: reviews.bookinfo.svc.cluster.local
${body}`;
}

/** The outbound clusters a proxy gets for reviews. */
const reviewsClusters = (ctx: PushContext, scope: ProxyScope): string[] =>
  planResources(ctx, scope, CLUSTER_TYPE).map((p) => p.name).filter((n) => n.endsWith('reviews.bookinfo.svc.cluster.local'));

test('D12: a DestinationRule in a namespace that is neither the proxy\'s, the service\'s nor the root\'s never applies (R4.1)', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'dr.yaml': destinationRule('reviews-dr', 'ops', '  subsets: [{name: v1, labels: {version: v1}}]\n'),
  });
  assert.equal(ctx.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default'), undefined);
  assert.deepEqual(reviewsClusters(ctx, sidecarIn(ctx, 'default')), ['outbound|9080||reviews.bookinfo.svc.cluster.local']);
  // The proxy's own namespace, the service's and the root's do apply.
  assert.deepEqual(reviewsClusters(ctx, sidecarIn(ctx, 'ops')), ['outbound|9080||reviews.bookinfo.svc.cluster.local', 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local']);
  for (const ns of ['bookinfo', 'istio-system']) {
    const c = ctxOf({ 'svc.yaml': REVIEWS, 'dr.yaml': destinationRule('reviews-dr', ns, '  subsets: [{name: v1, labels: {version: v1}}]\n') });
    assert.equal(c.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default')?.name, 'reviews-dr', ns);
  }
  // Step 2 looks at the service's namespace only for rules exported to the proxy; a private one there does not apply.
  const priv = ctxOf({ 'svc.yaml': REVIEWS, 'dr.yaml': destinationRule('reviews-dr', 'bookinfo', '  exportTo: ["."]\n') });
  assert.equal(priv.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default'), undefined);
});

test('D12: DestinationRules for one host in one namespace are merged: subsets united (first wins), first top-level policy (R4.2)', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'v1.yaml': destinationRule('dr-v1', 'bookinfo', `  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: shared, labels: {track: first}}
`, '2026-01-01T00:00:00Z'),
    // Older by name, newer by creation time: its policy and its `shared` subset lose.
    'v2.yaml': destinationRule('a-dr-v2', 'bookinfo', `  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v2, labels: {version: v2}}
  - {name: shared, labels: {track: second}}
`, '2026-01-02T00:00:00Z'),
  });
  const dr = ctx.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default')!;
  assert.deepEqual(dr.spec.subsets.map((s: any) => [s.name, s.labels]), [['v1', { version: 'v1' }], ['shared', { track: 'first' }], ['v2', { version: 'v2' }]]);
  assert.deepEqual(dr.spec.trafficPolicy, { loadBalancer: { simple: 'ROUND_ROBIN' } });
  assert.deepEqual(reviewsClusters(ctx, sidecarIn(ctx, 'default')), ['', 'v1', 'shared', 'v2'].map((s) => `outbound|9080|${s}|reviews.bookinfo.svc.cluster.local`));
  // Either rule's change moves the merged rule's version (cache keys).
  const changed = ctxOf({
    'svc.yaml': REVIEWS,
    'v1.yaml': destinationRule('dr-v1', 'bookinfo', '  subsets: [{name: v1, labels: {version: v1}}]\n', '2026-01-01T00:00:00Z'),
    'v2.yaml': destinationRule('a-dr-v2', 'bookinfo', '  subsets: [{name: v2, labels: {version: v3}}]\n', '2026-01-02T00:00:00Z'),
  });
  const again = ctxOf({
    'svc.yaml': REVIEWS,
    'v1.yaml': destinationRule('dr-v1', 'bookinfo', '  subsets: [{name: v1, labels: {version: v1}}]\n', '2026-01-01T00:00:00Z'),
    'v2.yaml': destinationRule('a-dr-v2', 'bookinfo', '  subsets: [{name: v2, labels: {version: v2}}]\n', '2026-01-02T00:00:00Z'),
  });
  assert.notEqual(changed.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default')!.version, again.destinationRuleFor('reviews.bookinfo.svc.cluster.local', 'default')!.version);
});

const sidecarWith = egressSidecarYaml;

const virtualService = routeVsYaml;

/** A VirtualService for `host` whose `tcp` route sends everything to `dest`; `more` is appended to spec. */
function tcpVirtualService(name: string, ns: string, host: string, dest: string, more = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${host}]
  tcp: [{route: [{destination: {host: ${dest}}}]}]
${more}`;
}

/** The clusters the routes of a service's virtual host on a port send to (undefined: no such virtual host). */
function routeClusters(ctx: PushContext, scope: ProxyScope, port: number, host: string): string[] | undefined {
  const rc = buildResource(ctx, scope, ROUTE_TYPE, String(port)) as any;
  const vh = rc?.virtual_hosts.find((v: any) => v.name === `${host}:${port}`);
  return vh?.routes.map((r: any) => r.route?.cluster as string);
}

const hasCluster = (ctx: PushContext, scope: ProxyScope, name: string): boolean => planResources(ctx, scope, CLUSTER_TYPE).some((p) => p.name === name);

const BOOKINFO = [
  kubeService('reviews', 'bookinfo', '{name: http, port: 9080}', '10.96.0.9'),
  kubeService('reviews-v2', 'canary', '{name: http, port: 9080}', '10.96.0.10'),
  kubeService('client', 'app', '{name: http, port: 8080}', '10.96.0.11'),
].join('---\n');
const REVIEWS_HOST = 'reviews.bookinfo.svc.cluster.local';

test('D1/D2: a VirtualService is imported only by an egress host for its own namespace (or `*`), not because its host is (R1.3, R1.6)', () => {
  const vs = virtualService('reviews', 'routing', REVIEWS_HOST, 'reviews-v2.canary.svc.cluster.local');
  const withEgress = (hosts: string[]): PushContext => ctxOf({ 'svc.yaml': BOOKINFO, 'vs.yaml': vs, 'sc.yaml': sidecarWith('app', hosts) });
  const canary = 'outbound|9080||reviews-v2.canary.svc.cluster.local';
  // The service is imported, the VirtualService is not: the default route, and no cluster for its destination.
  let ctx = withEgress(['bookinfo/*']);
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app'), 9080, REVIEWS_HOST), [`outbound|9080||${REVIEWS_HOST}`]);
  assert.equal(hasCluster(ctx, sidecarIn(ctx, 'app'), canary), false);
  // An egress host for the VirtualService's namespace imports it (and its destination), though no service.
  ctx = withEgress(['bookinfo/*', `routing/${REVIEWS_HOST}`]);
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app'), 9080, REVIEWS_HOST), [canary]);
  assert.equal(hasCluster(ctx, sidecarIn(ctx, 'app'), canary), true);
  // `*/host` imports the service and every VirtualService for it.
  ctx = withEgress([`*/${REVIEWS_HOST}`]);
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app'), 9080, REVIEWS_HOST), [canary]);
  // Without a Sidecar: every VirtualService exported to the namespace.
  ctx = ctxOf({ 'svc.yaml': BOOKINFO, 'vs.yaml': vs });
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app'), 9080, REVIEWS_HOST), [canary]);
});

test('D1: tcp routes come from the listener\'s VirtualServices too', () => {
  const db = kubeService('db', 'bookinfo', '{name: tcp-db, port: 5432}', '10.96.0.20') + '---\n' + kubeService('db-replica', 'bookinfo', '{name: tcp-db, port: 5432}', '10.96.0.21');
  const vs = tcpVirtualService('db', 'routing', 'db.bookinfo.svc.cluster.local', 'db-replica.bookinfo.svc.cluster.local');
  const target = (hosts: string[]): string => {
    const ctx = ctxOf({ 'svc.yaml': db, 'vs.yaml': vs, 'sc.yaml': sidecarWith('app', hosts) });
    const l = buildResource(ctx, sidecarIn(ctx, 'app'), LISTENER_TYPE, '10.96.0.20_5432') as any;
    return l.filter_chains.at(-1).filters[0].typed_config.cluster;
  };
  assert.equal(target(['bookinfo/*']), 'outbound|5432||db.bookinfo.svc.cluster.local');
  assert.equal(target(['bookinfo/*', 'routing/*']), 'outbound|5432||db-replica.bookinfo.svc.cluster.local');
});

test('D3: a VirtualService bound only to a Gateway is never a sidecar\'s (R1.2)', () => {
  const ctx = ctxOf({
    'svc.yaml': [kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.1'), kubeService('be', 'b', '{name: http, port: 80}', '10.96.1.2')].join('---\n'),
    'vs.yaml': virtualService('fe-gw', 'a', 'fe.a.svc.cluster.local', 'be.b.svc.cluster.local', '  gateways: [istio-system/gw]\n'),
    'sc.yaml': sidecarWith('a', ['./*']),
  });
  const scope = sidecarIn(ctx, 'a');
  assert.equal(hasCluster(ctx, scope, 'outbound|80||be.b.svc.cluster.local'), false);
  assert.deepEqual(routeClusters(ctx, scope, 80, 'fe.a.svc.cluster.local'), ['outbound|80||fe.a.svc.cluster.local']);
});

test('D11: an egress host and a VirtualService host match when either wildcard covers the other (R1.4)', () => {
  const ctx = ctxOf({
    'svc.yaml': kubeService('be', 'b', '{name: http, port: 80}', '10.96.1.2'),
    'vs.yaml': virtualService('wild', 'a', '"*.example.com"', 'be.b.svc.cluster.local'),
    'sc.yaml': sidecarWith('a', ['./api.example.com']),
  });
  assert.equal(hasCluster(ctx, sidecarIn(ctx, 'a'), 'outbound|80||be.b.svc.cluster.local'), true);
  assert.deepEqual(sidecarScope(ctx, sidecarIn(ctx, 'a')).catchAllVirtualServices.map((v) => v.name), ['wild']);
  // Exact hosts on both sides match only when equal.
  const exact = ctxOf({
    'svc.yaml': kubeService('be', 'b', '{name: http, port: 80}', '10.96.1.2'),
    'vs.yaml': virtualService('exact', 'a', 'www.example.com', 'be.b.svc.cluster.local'),
    'sc.yaml': sidecarWith('a', ['./api.example.com']),
  });
  assert.equal(hasCluster(exact, sidecarIn(exact, 'a'), 'outbound|80||be.b.svc.cluster.local'), false);
});

test('D8 (in part): a VirtualService private to the proxy\'s namespace comes before public ones for the same host (R1.2)', () => {
  const ctx = ctxOf({
    'svc.yaml': BOOKINFO,
    'public.yaml': virtualService('reviews', 'frontend', REVIEWS_HOST, 'reviews-v2.canary.svc.cluster.local'),
    'private.yaml': virtualService('reviews-override', 'prod', REVIEWS_HOST, REVIEWS_HOST, '  exportTo: ["."]\n'),
  });
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'prod'), 9080, REVIEWS_HOST), [`outbound|9080||${REVIEWS_HOST}`]);
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app'), 9080, REVIEWS_HOST), ['outbound|9080||reviews-v2.canary.svc.cluster.local']);
});

test('D4: a VirtualService destination the egress hosts do not import gets clusters, no listener or virtual host (R2.4)', () => {
  const docs = {
    'svc.yaml': [kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.1'),
      kubeService('be', 'b', '{name: http, port: 80}, {name: tcp-db, port: 5432}', '10.96.1.2')].join('---\n'),
    'vs.yaml': virtualService('fe', 'a', 'fe.a.svc.cluster.local', 'be.b.svc.cluster.local'),
  };
  const ctx = ctxOf({ ...docs, 'sc.yaml': sidecarWith('a', ['./*']) });
  const scope = sidecarIn(ctx, 'a');
  assert.ok(hasCluster(ctx, scope, 'outbound|80||be.b.svc.cluster.local'));
  assert.ok(hasCluster(ctx, scope, 'outbound|5432||be.b.svc.cluster.local'));
  assert.deepEqual(routeClusters(ctx, scope, 80, 'fe.a.svc.cluster.local'), ['outbound|80||be.b.svc.cluster.local']);
  assert.equal(routeClusters(ctx, scope, 80, 'be.b.svc.cluster.local'), undefined, 'no virtual host for be');
  const listeners = planResources(ctx, scope, LISTENER_TYPE).map((p) => p.name);
  assert.ok(!listeners.includes('10.96.1.2_5432'), `no TCP listener for be: ${listeners.join(' ')}`);
  // Imported by an egress host, it gets both.
  const both = ctxOf({ ...docs, 'sc.yaml': sidecarWith('a', ['./*', 'b/*']) });
  assert.deepEqual(routeClusters(both, sidecarIn(both, 'a'), 80, 'be.b.svc.cluster.local'), ['outbound|80||be.b.svc.cluster.local']);
  assert.ok(planResources(both, sidecarIn(both, 'a'), LISTENER_TYPE).some((p) => p.name === '10.96.1.2_5432'));
});

test('D5: tcp and tls route destinations are imported; an HTTP rule for other source namespaces is not (R2.1)', () => {
  const svcs = [kubeService('db', 'a', '{name: tcp-db, port: 5432}', '10.96.1.1'), kubeService('db-replica', 'b', '{name: tcp-db, port: 5432}', '10.96.1.2'),
    kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.3'), kubeService('x', 'c', '{name: http, port: 80}', '10.96.1.4'),
    kubeService('y', 'c', '{name: http, port: 80}', '10.96.1.5'), kubeService('tls', 'c', '{name: tls, port: 443}', '10.96.1.6')].join('---\n');
  const vs = `${tcpVirtualService('db', 'a', 'db.a.svc.cluster.local', 'db-replica.b.svc.cluster.local',
    '  tls: [{match: [{sniHosts: [db.a.svc.cluster.local]}], route: [{destination: {host: tls.c.svc.cluster.local}}]}]\n')}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fe, namespace: a}
spec:
  hosts: [fe.a.svc.cluster.local]
  http:
  - match: [{sourceNamespace: other}]
    route: [{destination: {host: x.c.svc.cluster.local}}]
  - match: [{sourceNamespace: a}]
    route: [{destination: {host: y.c.svc.cluster.local}}]
`;
  const ctx = ctxOf({ 'svc.yaml': svcs, 'vs.yaml': vs, 'sc.yaml': sidecarWith('a', ['./*']) });
  const scope = sidecarIn(ctx, 'a');
  assert.ok(hasCluster(ctx, scope, 'outbound|5432||db-replica.b.svc.cluster.local'), 'tcp route destination');
  assert.ok(hasCluster(ctx, scope, 'outbound|443||tls.c.svc.cluster.local'), 'tls route destination');
  assert.ok(!hasCluster(ctx, scope, 'outbound|80||x.c.svc.cluster.local'), 'a rule for proxies in `other` only');
  assert.ok(hasCluster(ctx, scope, 'outbound|80||y.c.svc.cluster.local'), 'a rule for proxies in `a`');
});

test('D5: a delegate VirtualService\'s destinations are imported with its root (istiod merges delegates first)', () => {
  const ctx = ctxOf({
    'svc.yaml': [kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.3'), kubeService('y', 'c', '{name: http, port: 80}', '10.96.1.5')].join('---\n'),
    'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fe, namespace: a}
spec:
  hosts: [fe.a.svc.cluster.local]
  http: [{match: [{uri: {prefix: /api}}], delegate: {name: fe-api, namespace: d}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fe-api, namespace: d}
spec:
  http: [{route: [{destination: {host: y.c.svc.cluster.local}}]}]
`,
    'sc.yaml': sidecarWith('a', ['./*']),
  });
  assert.ok(hasCluster(ctx, sidecarIn(ctx, 'a'), 'outbound|80||y.c.svc.cluster.local'));
});

test('D13: `egress: []` imports everything, like no egress; a host not of the form namespace/dnsName is ignored (R1.1)', () => {
  const sidecar = (egress: string): string => `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: app}
spec:
  egress: ${egress}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;
  const hosts = (egress: string): string[] => {
    const ctx = ctxOf({ 'svc.yaml': BOOKINFO, 'sc.yaml': sidecar(egress) });
    return sidecarScope(ctx, sidecarIn(ctx, 'app')).services.map((s) => s.hostname).sort();
  };
  const all = ['client.app.svc.cluster.local', REVIEWS_HOST, 'reviews-v2.canary.svc.cluster.local'].sort();
  assert.deepEqual(hosts('[]'), all);
  // No `/` (once read as any namespace), or two: nothing imported.
  assert.deepEqual(hosts(`[{hosts: [${REVIEWS_HOST}]}]`), []);
  assert.deepEqual(hosts(`[{hosts: ["bookinfo/bookinfo/${REVIEWS_HOST}", "./*"]}]`), ['client.app.svc.cluster.local']);
});

test('D6: a destination imports only the ports routed to; a listener with a port only that port, of services that have it (R2.3)', () => {
  const svcs = [kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.1'),
    kubeService('be', 'b', '{name: http, port: 8080}, {name: http-admin, port: 9090}', '10.96.1.2')].join('---\n');
  const beClusters = (docs: Record<string, string>): string[] => {
    const ctx = ctxOf({ 'svc.yaml': svcs, ...docs });
    return planResources(ctx, sidecarIn(ctx, 'a'), CLUSTER_TYPE).map((p) => p.name).filter((n) => n.includes('be.b')).sort();
  };
  const vs = (port: string): string => virtualService('fe', 'a', 'fe.a.svc.cluster.local', `be.b.svc.cluster.local, port: {number: ${port}}`);
  assert.deepEqual(beClusters({ 'vs.yaml': vs('8080'), 'sc.yaml': sidecarWith('a', ['./*']) }), ['outbound|8080||be.b.svc.cluster.local']);
  // None of the routed ports on the service: not imported.
  assert.deepEqual(beClusters({ 'vs.yaml': vs('7000'), 'sc.yaml': sidecarWith('a', ['./*']) }), []);
  // Without a port: every port.
  assert.deepEqual(beClusters({ 'vs.yaml': virtualService('fe', 'a', 'fe.a.svc.cluster.local', 'be.b.svc.cluster.local'), 'sc.yaml': sidecarWith('a', ['./*']) }),
    ['outbound|8080||be.b.svc.cluster.local', 'outbound|9090||be.b.svc.cluster.local']);
  // A port-80 egress listener: be has no port 80, so neither its hosts nor its VirtualServices import it.
  const port80 = (hosts: string[]): string => `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec:
  egress: [{port: {number: 80, protocol: HTTP, name: http}, hosts: ${JSON.stringify(hosts)}}]
`;
  assert.deepEqual(beClusters({ 'vs.yaml': vs('8080'), 'sc.yaml': port80(['./*']) }), []);
  assert.deepEqual(beClusters({ 'sc.yaml': port80(['./*', 'b/*']) }), []);
  // A port-9090 one imports be with port 9090 only.
  assert.deepEqual(beClusters({ 'sc.yaml': port80(['b/*']).replace('number: 80', 'number: 9090') }), ['outbound|9090||be.b.svc.cluster.local']);
});

test('R2.2: a destination of the proxy\'s own namespace is imported even when not exported there, with its cluster and endpoints', () => {
  const ctx = ctxOf({
    'svc.yaml': [kubeService('fe', 'a', '{name: http, port: 80}', '10.96.1.1'), kubeService('hidden', 'a', '{name: http, port: 80}', '10.96.1.2')].join('---\n')
      .replace('metadata: {name: hidden, namespace: a}', 'metadata: {name: hidden, namespace: a, annotations: {networking.istio.io/exportTo: b}}'),
    'vs.yaml': virtualService('fe', 'a', 'fe.a.svc.cluster.local', 'hidden.a.svc.cluster.local'),
  });
  const scope = sidecarIn(ctx, 'a');
  assert.ok(hasCluster(ctx, scope, 'outbound|80||hidden.a.svc.cluster.local'));
  assert.ok(planResources(ctx, scope, ENDPOINT_TYPE, ['outbound|80||hidden.a.svc.cluster.local']).length === 1);
  assert.equal(routeClusters(ctx, scope, 80, 'hidden.a.svc.cluster.local'), undefined, 'not exported here: no virtual host');
});

test('D9: when the first VirtualService for a host yields no route for the proxy, the next one for the host applies (R1.7)', () => {
  const canaryOnly = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-canary
  namespace: bookinfo
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  hosts: [${REVIEWS_HOST}]
  http:
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: reviews-v2.canary.svc.cluster.local}}]
`;
  const plain = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a-reviews
  namespace: bookinfo
  creationTimestamp: "2026-01-02T00:00:00Z"
spec:
  hosts: [${REVIEWS_HOST}]
  http:
  - route: [{destination: {host: ${REVIEWS_HOST}, subset: v1}}]
`;
  const ctx = ctxOf({ 'svc.yaml': BOOKINFO, 'vs1.yaml': canaryOnly, 'vs2.yaml': plain });
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app', { app: 'client' }), 9080, REVIEWS_HOST), [`outbound|9080|v1|${REVIEWS_HOST}`]);
  assert.deepEqual(routeClusters(ctx, sidecarIn(ctx, 'app', { app: 'canary' }), 9080, REVIEWS_HOST), ['outbound|9080||reviews-v2.canary.svc.cluster.local']);
  // The route configuration's key moves with the second VirtualService too (it can decide).
  const other = ctxOf({ 'svc.yaml': BOOKINFO, 'vs1.yaml': canaryOnly, 'vs2.yaml': plain.replace('subset: v1', 'subset: v3') });
  const key = (c: PushContext): string => planResources(c, sidecarIn(c, 'app', { app: 'client' }), ROUTE_TYPE).find((p) => p.name === '9080')!.key;
  assert.notEqual(key(other), key(ctx));
});
