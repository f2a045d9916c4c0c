/**
 * Cache-key and scope invariants of the traffic generators: every input a resource depends on is in its cache key
 * (a stale cache is a correctness bug), and Sidecar scoping shrinks what a proxy receives while proxies with the same
 * effective Sidecar and namespace share one ProxyScope key (istio pilot/pkg/model/sidecar.go semantics).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { SDS_CAPABLE_METADATA, scopeFor, scopeKey, type ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ctxOf } from '../helpers/context.js';


function svc(name: string, ns = 'default', port = 8080, extra = ''): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: 10.0.0.${name.length}
  selector: {app: ${name}}
  ports: [{name: http, port: ${port}}]
${extra}---
apiVersion: v1
kind: Pod
metadata: {name: ${name}-0, namespace: ${ns}, labels: {app: ${name}, version: v1}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.0.${name.length}}
`;
}

const BASE: Record<string, string> = {
  'svcs.yaml': [svc('reviews'), svc('ratings'), svc('details'), svc('other', 'other-ns')].join('---\n'),
  'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
`,
  'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /d}}]
    delegate: {name: reviews-delegate}
  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-delegate, namespace: default}
spec:
  http:
  - route: [{destination: {host: details}}]
`,
  'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: internal, namespace: default}
spec:
  hosts: [vm.internal]
  resolution: STATIC
  location: MESH_INTERNAL
  ports: [{number: 9000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.9.0.1, labels: {app: vm}}
`,
  'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/ingress]
  http: [{route: [{destination: {host: reviews}}]}]
`,
};

const sidecar = parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', {});
const router = parseProxy('router~10.1.0.99~ingress-0.istio-system~istio-system.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } });

function keys(ctx: PushContext, scope: ProxyScope, type: string): Map<string, string> {
  return new Map(planResources(ctx, scope, type).map((p) => [p.name, p.key]));
}

function keyAfter(change: Record<string, string>, proxy = sidecar, type = ROUTE_TYPE, name = '8080'): { before: string; after: string } {
  const c0 = ctxOf(BASE);
  const c1 = ctxOf({ ...BASE, ...change });
  const before = keys(c0, scopeFor(proxy, c0), type).get(name);
  const after = keys(c1, scopeFor(proxy, c1), type).get(name);
  assert.ok(before && after, `${name} planned before and after`);
  return { before: before!, after: after! };
}

function assertChanges(what: string, change: Record<string, string>, proxy = sidecar, type = ROUTE_TYPE, name = '8080'): void {
  const { before, after } = keyAfter(change, proxy, type, name);
  assert.notEqual(after, before, `${what} must change the cache key of ${name}`);
}

test('route keys: the VirtualService, its delegate, destination and mirror DestinationRules, destination services', () => {
  assertChanges('VirtualService edit', { 'vs.yaml': BASE['vs.yaml']!.replace('prefix: /d', 'prefix: /e') });
  assertChanges('delegate edit', { 'vs.yaml': BASE['vs.yaml']!.replace('host: details}', 'host: details}, weight: 100') });
  assertChanges('destination DestinationRule edit (hash policy)', { 'dr.yaml': BASE['dr.yaml']!.replace('subsets: [{name: v1, labels: {version: v1}}]', 'subsets: [{name: v1, labels: {version: v1}}]\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-u}}}') });
  assertChanges('mirror destination DestinationRule edit', { 'dr.yaml': BASE['dr.yaml']!.replace('simple: ROUND_ROBIN', 'simple: RANDOM') });
  assertChanges('delegate destination service edit', { 'svcs.yaml': BASE['svcs.yaml']!.replace('clusterIP: 10.0.0.7', 'clusterIP: 10.0.0.77') });
});

test('a Sidecar changes the keys of routes (REGISTRY_ONLY catch-all) and of virtualOutbound', () => {
  const sc = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;
  assertChanges('Sidecar REGISTRY_ONLY', { 'sc.yaml': sc });
  assertChanges('Sidecar REGISTRY_ONLY', { 'sc.yaml': sc }, sidecar, LISTENER_TYPE, 'virtualOutbound');
});

test('cluster and endpoint keys: DestinationRule, ServiceEntry and WorkloadEntry versions', () => {
  assertChanges('DestinationRule edit', { 'dr.yaml': BASE['dr.yaml']!.replace('ROUND_ROBIN', 'RANDOM') }, sidecar, CLUSTER_TYPE, 'outbound|8080||ratings.default.svc.cluster.local');
  assertChanges('ServiceEntry edit', { 'se.yaml': BASE['se.yaml']!.replace('resolution: DNS', 'resolution: DNS\n  exportTo: ["*"]\n  location: MESH_INTERNAL') }, sidecar, CLUSTER_TYPE, 'outbound|443||api.example.com');
  assertChanges('DNS ServiceEntry endpoints (inline in the cluster)', { 'se.yaml': BASE['se.yaml']!.replace('ports: [{number: 443, name: tls, protocol: TLS}]', 'ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints: [{address: api2.example.com}]') }, sidecar, CLUSTER_TYPE, 'outbound|443||api.example.com');
  assertChanges('WorkloadEntry edit', { 'se.yaml': BASE['se.yaml']!.replace('address: 10.9.0.1', 'address: 10.9.0.2') }, sidecar, ENDPOINT_TYPE, 'outbound|9000||vm.internal');
  const c = ctxOf(BASE);
  const eds = keys(c, scopeFor(sidecar, c), ENDPOINT_TYPE);
  assert.ok(eds.has('outbound|9000||vm.internal'), 'STATIC ServiceEntry served over EDS');
  assert.ok(!eds.has('outbound|443||api.example.com'), 'DNS ServiceEntry clusters carry endpoints inline, not over EDS');
});

test('gateway keys: the Gateway and the VirtualServices bound to it', () => {
  const c = ctxOf(BASE);
  assert.deepEqual([...keys(c, scopeFor(router, c), LISTENER_TYPE).keys()], ['0.0.0.0_80']);
  assertChanges('Gateway edit', { 'gw.yaml': BASE['gw.yaml']!.replace('hosts: ["*"]', 'hosts: ["*.example.com"]') }, router, LISTENER_TYPE, '0.0.0.0_80');
  assertChanges('Gateway edit', { 'gw.yaml': BASE['gw.yaml']!.replace('hosts: ["*"]', 'hosts: ["*.example.com"]') }, router, ROUTE_TYPE, 'http.80');
  assertChanges('bound VirtualService edit', { 'gw.yaml': BASE['gw.yaml']!.replace('host: reviews}', 'host: ratings}') }, router, ROUTE_TYPE, 'http.80');
  assertChanges('bound VirtualService destination DestinationRule edit', { 'dr.yaml': BASE['dr.yaml']!.replace('name: v1, labels', 'name: v9, labels') }, router, ROUTE_TYPE, 'http.80');
});

test('Sidecar egress shrinks clusters, listeners and routes; equal Sidecar + namespace means one scope key', () => {
  const sc = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./ratings.default.svc.cluster.local", "istio-system/*"]
`;
  const open = ctxOf(BASE);
  const closed = ctxOf({ ...BASE, 'sc.yaml': sc });
  const before = [...keys(open, scopeFor(sidecar, open), CLUSTER_TYPE).keys()].filter((n) => n.startsWith('outbound'));
  const after = [...keys(closed, scopeFor(sidecar, closed), CLUSTER_TYPE).keys()].filter((n) => n.startsWith('outbound'));
  assert.ok(before.some((n) => n.includes('other.other-ns')) && before.some((n) => n.includes('reviews')));
  assert.deepEqual(after, ['outbound|8080||ratings.default.svc.cluster.local']);
  const routes = planResources(closed, scopeFor(sidecar, closed), ROUTE_TYPE);
  assert.deepEqual(routes.map((r) => r.name), ['8080']);

  // Two pods of different workloads in the namespace: same effective Sidecar → same scope key → shared generation.
  const a = parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', { LABELS: { app: 'client-a' }, INTERCEPTION_MODE: 'NONE' });
  const b = parseProxy('sidecar~10.1.0.8~ratings-0.default~default.svc.cluster.local', { LABELS: { app: 'client-b' }, INTERCEPTION_MODE: 'NONE' });
  assert.equal(scopeKey(scopeFor(a, closed)), scopeKey(scopeFor(b, closed)));
  // A workload-selected Sidecar gives its workload another scope.
  const selected = ctxOf({ ...BASE, 'sc.yaml': `${sc}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: for-b, namespace: default}
spec:
  workloadSelector: {labels: {app: client-b}}
  egress: [{hosts: ["*/*"]}]
` });
  assert.equal(scopeFor(b, selected).sidecar, 'default/for-b');
  assert.equal(scopeFor(a, selected).sidecar, 'default/default');
  assert.notEqual(scopeKey(scopeFor(a, selected)), scopeKey(scopeFor(b, selected)));
});

test('labels enter the scope only when a VirtualService matches on sourceLabels', () => {
  const a = parseProxy('sidecar~10.1.0.7~x.default~default.svc.cluster.local', { LABELS: { app: 'a', team: 't1' }, INTERCEPTION_MODE: 'NONE' });
  const b = parseProxy('sidecar~10.1.0.8~y.default~default.svc.cluster.local', { LABELS: { app: 'b', team: 't1' }, INTERCEPTION_MODE: 'NONE' });
  const plain = ctxOf(BASE);
  assert.equal(scopeKey(scopeFor(a, plain)), scopeKey(scopeFor(b, plain)));
  const withSource = ctxOf({ ...BASE, 'vs.yaml': BASE['vs.yaml']!.replace('- match: [{uri: {prefix: /d}}]', '- match: [{uri: {prefix: /d}, sourceLabels: {app: a}}]') });
  assert.deepEqual(scopeFor(a, withSource).labels, { app: 'a' });
  assert.notEqual(scopeKey(scopeFor(a, withSource)), scopeKey(scopeFor(b, withSource)));
  const ka = keys(withSource, scopeFor(a, withSource), ROUTE_TYPE).get('8080');
  const kb = keys(withSource, scopeFor(b, withSource), ROUTE_TYPE).get('8080');
  assert.notEqual(ka, kb, 'routes differ by sourceLabels, so do their keys');
});

test('the proxy locality enters the scope and the EDS keys only when a DestinationRule makes endpoints depend on it', () => {
  const pods = `---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: default, labels: {app: a, topology.kubernetes.io/region: r1}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.2.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: default, labels: {app: b, topology.kubernetes.io/region: r2}}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.2.0.2}
`;
  const a = parseProxy('sidecar~10.2.0.1~a.default~default.svc.cluster.local', {});
  const b = parseProxy('sidecar~10.2.0.2~b.default~default.svc.cluster.local', {});
  const plain = ctxOf({ ...BASE, 'svcs.yaml': BASE['svcs.yaml']! + pods });
  assert.equal(scopeFor(a, plain).locality, undefined);
  assert.equal(scopeKey(scopeFor(a, plain)), scopeKey(scopeFor(b, plain)), 'no locality-aware rule: shared scope');
  const aware = ctxOf({
    ...BASE, 'svcs.yaml': BASE['svcs.yaml']! + pods,
    'dr.yaml': BASE['dr.yaml']!.replace('trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}', 'trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}'),
  });
  assert.equal(scopeFor(a, aware).locality, 'r1//');
  const name = 'outbound|8080||ratings.default.svc.cluster.local';
  const ka = keys(aware, scopeFor(a, aware), ENDPOINT_TYPE).get(name);
  const kb = keys(aware, scopeFor(b, aware), ENDPOINT_TYPE).get(name);
  assert.ok(ka && kb);
  assert.notEqual(ka, kb, 'EDS for a locality-aware cluster is keyed by the proxy locality');
});

test('gateway semantics: short gateway names resolve in the VirtualService namespace, match-level gateways split mesh and gateway routes', () => {
  const ctx = ctxOf({
    ...BASE, 'local.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local, namespace: istio-system}
spec:
  hosts: [local.example.com]
  gateways: [ingress, mesh]
  http:
  - match: [{uri: {prefix: /gw}, gateways: [ingress]}]
    route: [{destination: {host: reviews.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /mesh}, gateways: [mesh]}]
    route: [{destination: {host: ratings.default.svc.cluster.local}}]
`,
  });
  const rc = buildResource(ctx, scopeFor(router, ctx), ROUTE_TYPE, 'http.80') as any;
  const vh = rc.virtual_hosts.find((v: any) => v.name === 'local.example.com:80');
  assert.ok(vh, 'the VirtualService binds through its short gateway name');
  assert.deepEqual(vh.routes.map((r: any) => r.match.prefix), ['/gw']);
});

test('gateway AUTO_PASSTHROUGH: SNI-DNAT clusters only with such a server; the listener key moves with services and subsets', () => {
  const ew = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: eastwest, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
`;
  const plain = ctxOf(BASE);
  assert.ok(![...keys(plain, scopeFor(router, plain), CLUSTER_TYPE).keys()].some((n) => n.startsWith('outbound_.')), 'no SNI-DNAT clusters without AUTO_PASSTHROUGH');
  const c = ctxOf({ ...BASE, 'ew.yaml': ew });
  const cds = [...keys(c, scopeFor(router, c), CLUSTER_TYPE).keys()];
  assert.ok(cds.includes('outbound_.8080_._.reviews.default.svc.cluster.local'));
  assert.ok(cds.includes('outbound_.8080_.v1_.reviews.default.svc.cluster.local'), 'one per DestinationRule subset');
  assert.ok(!cds.some((n) => n.startsWith('outbound_.') && n.endsWith('api.example.com')), 'MESH_EXTERNAL services get none');
  assert.ok(keys(c, scopeFor(router, c), ENDPOINT_TYPE).has('outbound_.9000_._.vm.internal'), 'SNI-DNAT EDS served');
  const withEw = { ...BASE, 'ew.yaml': ew };
  const after = (change: Record<string, string>, type: string, name: string): { before: string; after: string } => {
    const c0 = ctxOf(withEw);
    const c1 = ctxOf({ ...withEw, ...change });
    return { before: keys(c0, scopeFor(router, c0), type).get(name)!, after: keys(c1, scopeFor(router, c1), type).get(name)! };
  };
  const subset = after({ 'dr.yaml': BASE['dr.yaml']!.replace('name: v1, labels', 'name: v9, labels') }, LISTENER_TYPE, '0.0.0.0_15443');
  assert.ok(subset.before && subset.after);
  assert.notEqual(subset.after, subset.before, 'a subset rename changes the SNI chains');
  const svcEdit = after({ 'svcs.yaml': BASE['svcs.yaml']!.replace('clusterIP: 10.0.0.7', 'clusterIP: 10.0.0.77') }, LISTENER_TYPE, '0.0.0.0_15443');
  assert.notEqual(svcEdit.after, svcEdit.before, 'a service edit changes the listener key');
  const wl = after({ 'se.yaml': BASE['se.yaml']!.replace('address: 10.9.0.1', 'address: 10.9.0.2') }, ENDPOINT_TYPE, 'outbound_.9000_._.vm.internal');
  assert.notEqual(wl.after, wl.before, 'SNI-DNAT EDS follows the endpoints');
  const dr = after({ 'dr.yaml': BASE['dr.yaml']!.replace('subsets: [{name: v1, labels: {version: v1}}]', 'subsets: [{name: v1, labels: {version: v1}}]\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}') }, CLUSTER_TYPE, 'outbound_.8080_._.reviews.default.svc.cluster.local');
  assert.notEqual(dr.after, dr.before, 'a DestinationRule edit changes the SNI-DNAT cluster key');
});

test('a sidecar getting SDS secrets from us and one that does not: every resource that differs has its own key', () => {
  // PERMISSIVE (the default): the inbound mTLS chain is there only for a proxy that gets its certificate over SDS.
  const ctx = ctxOf(BASE);
  const labels = { LABELS: { app: 'reviews', 'security.istio.io/tlsMode': 'istio' } };
  const plain = scopeFor(parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', labels), ctx);
  const sds = scopeFor(parseProxy('sidecar~10.1.0.7~reviews-0.default~default.svc.cluster.local', { ...labels, [SDS_CAPABLE_METADATA]: 'true' }), ctx);
  assert.equal(sds.sds, true);
  let differing = 0;
  for (const type of [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]) {
    const kp = keys(ctx, plain, type), ks = keys(ctx, sds, type);
    for (const [name, key] of kp) {
      const a = JSON.stringify(buildResource(ctx, plain, type, name)), b = JSON.stringify(buildResource(ctx, sds, type, name));
      if (a === b) continue;
      differing++;
      assert.notEqual(ks.get(name), key, `${name} differs with SDS, so its key must too`);
    }
  }
  assert.ok(differing > 0, 'some resource (the inbound listener) differs');
});
