/**
 * Which config a proxy gets where several could apply, as istiod 1.29 chooses (pilot/pkg/model/push_context.go,
 * sidecar.go, destination_rule.go; serviceregistry/serviceentry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor, scopeKey, type ProxyScope } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ProxyDependencies } from '../../src/push/proxy-dependencies.js';
import { clusterEndpointAddresses, ctxOf } from '../helpers/context.js';

function sidecarProxy(ctx: PushContext, ns: string, labels: Record<string, string>, ip = '10.9.0.1'): ProxyScope {
  return scopeFor(parseProxy(`sidecar~${ip}~client-0.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: labels }), ctx);
}

function sidecar(name: string, ns: string, opts: { created?: string; selector?: string } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ${name}
  namespace: ${ns}
${opts.created ? `  creationTimestamp: "${opts.created}"\n` : ''}spec:
${opts.selector !== undefined ? `  workloadSelector: ${opts.selector}\n` : ''}  egress: [{hosts: ["./*"]}]
`;
}

const T1 = '2026-01-01T00:00:00Z', T2 = '2026-01-02T00:00:00Z', T3 = '2026-01-03T00:00:00Z';

test('Sidecar: of several matching a workload, the oldest selecting one, not the first by name (initSidecarScopes)', () => {
  const ctx = ctxOf({
    // "a-" sorts first by name but is the newest.
    'a.yaml': sidecar('a-newest', 'shop', { created: T3, selector: '{labels: {app: cart}}' }),
    'b.yaml': sidecar('b-oldest', 'shop', { created: T1, selector: '{labels: {app: cart}}' }),
    'c.yaml': sidecar('c-ns-wide', 'shop', { created: T2 }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/b-oldest');
  // A workload no selector matches takes the namespace's selector-less Sidecar.
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'other' }).sidecar, 'shop/c-ns-wide');
});

test('Sidecar: of several selector-less ones in a namespace (or the root), the oldest', () => {
  const ctx = ctxOf({
    'a.yaml': sidecar('a-new', 'shop', { created: T2 }),
    'z.yaml': sidecar('z-old', 'shop', { created: T1 }),
    'r1.yaml': sidecar('a-root-new', 'istio-system', { created: T2 }),
    'r2.yaml': sidecar('z-root-old', 'istio-system', { created: T1 }),
    // A root Sidecar with a selector is never the mesh default.
    'r3.yaml': sidecar('root-selected', 'istio-system', { created: '2025-01-01T00:00:00Z', selector: '{labels: {app: x}}' }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', {}).sidecar, 'shop/z-old');
  assert.equal(sidecarProxy(ctx, 'other', { app: 'x' }).sidecar, 'istio-system/z-root-old');
});

test('Sidecar: a workloadSelector without labels is a selector that matches every workload, ahead of a selector-less one', () => {
  for (const selector of ['{labels: {}}', '{}']) {
    const ctx = ctxOf({
      // Older selector-less Sidecar: a selector one still takes precedence (selectors first, then age).
      'plain.yaml': sidecar('plain', 'shop', { created: T1 }),
      'empty.yaml': sidecar('z-empty-selector', 'shop', { created: T2, selector }),
    });
    assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/z-empty-selector', selector);
    assert.equal(sidecarProxy(ctx, 'shop', {}).sidecar, 'shop/z-empty-selector', selector);
  }
  // Absent workloadSelector: namespace-wide, after the selecting ones.
  const ctx = ctxOf({
    'plain.yaml': sidecar('plain', 'shop', { created: T1 }),
    'sel.yaml': sidecar('sel', 'shop', { created: T2, selector: '{labels: {app: cart}}' }),
  });
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'cart' }).sidecar, 'shop/sel');
  assert.equal(sidecarProxy(ctx, 'shop', { app: 'web' }).sidecar, 'shop/plain');
});

function serviceEntry(name: string, ns: string, created: string, ports: string, address: string, more = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${created}"}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: ${ports}
  endpoints: [{address: ${address}}]
${more}`;
}

/** The endpoint addresses of a cluster for a proxy, undefined when it has no such cluster. */
function endpointsOf(ctx: PushContext, scope: ProxyScope, cluster: string): string[] | undefined {
  return clusterEndpointAddresses(ctx, scope, cluster)?.sort();
}

test('ServiceEntry: two for one host in one namespace merge their ports and endpoints (SidecarScope.appendSidecarServices)', () => {
  const ctx = ctxOf({
    'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'),
    'new.yaml': serviceEntry('aa-new', 'ext', T2, '[{number: 443, name: https, protocol: TLS}, {number: 8080, name: http-alt, protocol: HTTP}]', '10.2.2.2'),
  });
  const [svc, ...others] = ctx.servicesFor('api.example.com');
  assert.equal(others.length, 0);
  assert.deepEqual(svc!.ports.map((p) => `${p.port}/${p.name}`), ['443/https', '8080/http-alt'], 'the oldest entry ports, then the new ones of the younger');
  const proxy = sidecarProxy(ctx, 'ext', { app: 'client' });
  // Endpoints go to the clusters of the ports they were declared with (port names match).
  assert.deepEqual(endpointsOf(ctx, proxy, 'outbound|443||api.example.com'), ['10.1.1.1', '10.2.2.2']);
  assert.deepEqual(endpointsOf(ctx, proxy, 'outbound|8080||api.example.com'), ['10.2.2.2']);
  // Seen from another namespace too: one merged service.
  assert.deepEqual(endpointsOf(ctx, sidecarProxy(ctx, 'web', { app: 'client' }), 'outbound|8080||api.example.com'), ['10.2.2.2']);
});

test('ServiceEntry: a younger one for the same host that cannot merge (canMergeServices) adds no ports', () => {
  const ports2 = '[{number: 8080, name: http-alt, protocol: HTTP}]';
  for (const [what, more] of [['exportTo', '  exportTo: ["."]\n'], ['labels', ''], ['workloadSelector', '']] as const) {
    const younger = what === 'labels'
      ? serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('creationTimestamp', 'labels: {team: b}, creationTimestamp')
      : what === 'workloadSelector'
        ? serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('  endpoints: [{address: 10.2.2.2}]\n', '  workloadSelector: {labels: {app: vm}}\n')
        : serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2', more);
    const ctx = ctxOf({ 'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'), 'new.yaml': younger });
    assert.deepEqual(ctx.servicesFor('api.example.com').map((s) => s.ports.map((p) => p.port)), [[443]], what);
    assert.equal(endpointsOf(ctx, sidecarProxy(ctx, 'ext', {}), 'outbound|8080||api.example.com'), undefined, what);
  }
  // A different resolution does not merge either.
  const dns = serviceEntry('aa-new', 'ext', T2, ports2, '10.2.2.2').replace('resolution: STATIC', 'resolution: DNS');
  const ctx = ctxOf({ 'old.yaml': serviceEntry('zz-old', 'ext', T1, '[{number: 443, name: https, protocol: TLS}]', '10.1.1.1'), 'new.yaml': dns });
  assert.deepEqual(ctx.servicesFor('api.example.com').map((s) => s.ports.map((p) => p.port)), [[443]]);
});

const REVIEWS = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  clusterIP: 10.96.0.9
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`;
const REVIEWS_HOST = 'reviews.bookinfo.svc.cluster.local';

function destinationRule(name: string, ns: string, created: string, body: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${ns}, creationTimestamp: "${created}"}
spec:
  host: ${REVIEWS_HOST}
${body}`;
}

const subsetsOf = (ctx: PushContext, scope: ProxyScope): string[] =>
  planResources(ctx, scope, CLUSTER_TYPE).map((p) => p.name).filter((n) => n.endsWith(REVIEWS_HOST)).map((n) => n.split('|')[2]!);

test('DestinationRule workloadSelector: applies only to the proxies of its namespace it selects; others keep the selector-less rule', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'plain.yaml': destinationRule('plain', 'shop', T1, '  subsets: [{name: v1, labels: {version: v1}}]\n'),
    'cart.yaml': destinationRule('cart-only', 'shop', T2, `  workloadSelector: {matchLabels: {app: cart}}
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  subsets: [{name: canary, labels: {track: canary}}]
`),
  });
  const cart = sidecarProxy(ctx, 'shop', { app: 'cart', version: 'v3' }, '10.9.0.1');
  const web = sidecarProxy(ctx, 'shop', { app: 'web', version: 'v3' }, '10.9.0.2');
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', cart.drLabels)?.name, 'cart-only');
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', web.drLabels)?.name, 'plain');
  // The scope carries the labels the selector reads, and only those: the two proxies generate apart.
  assert.deepEqual(cart.drLabels, { app: 'cart' });
  assert.deepEqual(web.drLabels, { app: 'web' });
  assert.notEqual(scopeKey(cart), scopeKey(web));
  assert.deepEqual(subsetsOf(ctx, cart), ['', 'canary']);
  assert.deepEqual(subsetsOf(ctx, web), ['', 'v1']);
  // Routes too (hash policy from the rule's consistentHash), built one after the other in one context.
  const hashPolicy = (scope: ProxyScope): unknown => {
    const rc = buildResource(ctx, scope, ROUTE_TYPE, '9080') as any;
    const vh = rc.virtual_hosts.find((v: any) => v.domains.includes(REVIEWS_HOST));
    return vh.routes[0].route.hash_policy;
  };
  assert.deepEqual(hashPolicy(cart), [{ header: { header_name: 'x-user' } }]);
  assert.equal(hashPolicy(web), undefined);
  // Proxies elsewhere are untouched: the selector rule is private to its namespace, and their scopes read no labels.
  const other = sidecarProxy(ctx, 'bookinfo', { app: 'cart' });
  assert.equal(other.drLabels, undefined);
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'bookinfo', 'bookinfo', { app: 'cart' }), undefined);
});

test('DestinationRule workloadSelector: never exported, whatever exportTo says; a root one only for root-namespace proxies', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'sel.yaml': destinationRule('exported-sel', 'bookinfo', T1, '  exportTo: ["*"]\n  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: a, labels: {v: a}}]\n'),
    'root.yaml': destinationRule('root-sel', 'istio-system', T1, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: r, labels: {v: r}}]\n'),
  });
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', { app: 'cart' }), undefined);
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'bookinfo', 'bookinfo', { app: 'cart' })?.name, 'exported-sel');
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'istio-system', 'bookinfo', { app: 'cart' })?.name, 'root-sel');
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'istio-system', 'bookinfo', { app: 'web' }), undefined);
});

test('DestinationRule workloadSelector: selector rules come first, oldest first; same selectors merge; an unselected proxy gets no rule from step 1', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'b.yaml': destinationRule('b-by-version', 'shop', T1, '  workloadSelector: {matchLabels: {version: v1}}\n  subsets: [{name: old, labels: {v: old}}]\n'),
    'a.yaml': destinationRule('a-by-app', 'shop', T2, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: new, labels: {v: new}}]\n'),
    'c.yaml': destinationRule('c-by-app-too', 'shop', T3, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: more, labels: {v: more}}]\n'),
    // The service's namespace exports a rule; it is not reached by shop proxies (shop has rules for the host).
    'svc-dr.yaml': destinationRule('svc-dr', 'bookinfo', T1, '  subsets: [{name: exported, labels: {v: e}}]\n'),
  });
  // Both selector rules select this proxy: the oldest wins (not the first by name).
  assert.deepEqual(subsetsOf(ctx, sidecarProxy(ctx, 'shop', { app: 'cart', version: 'v1' })), ['', 'old']);
  // Rules with the same selector merge (subsets concatenated, the oldest first).
  assert.deepEqual(subsetsOf(ctx, sidecarProxy(ctx, 'shop', { app: 'cart' })), ['', 'new', 'more']);
  // istiod's destinationRule returns shop's entries for the host; none selects this proxy and none is a
  // catch-all: no rule, and no fallback to the service namespace's rule.
  assert.deepEqual(subsetsOf(ctx, sidecarProxy(ctx, 'shop', { app: 'web' })), ['']);
  assert.deepEqual(subsetsOf(ctx, sidecarProxy(ctx, 'default', { app: 'web' })), ['', 'exported']);
});

test('DestinationRule workloadSelector: a selector-less rule exported to "." fills in what a selector rule lacks (mergeDestinationRule)', () => {
  const ctx = ctxOf({
    'svc.yaml': REVIEWS,
    'sel.yaml': destinationRule('sel', 'shop', T2, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: mine, labels: {v: mine}}]\n'),
    'private.yaml': destinationRule('private', 'shop', T1, '  exportTo: ["."]\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: shared, labels: {v: shared}}]\n'),
  });
  const dr = ctx.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', { app: 'cart' })!;
  assert.equal(dr.name, 'sel');
  assert.deepEqual(dr.spec.subsets.map((s: any) => s.name), ['mine', 'shared']);
  assert.deepEqual(dr.spec.trafficPolicy, { loadBalancer: { simple: 'RANDOM' } });
  assert.equal(ctx.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', { app: 'web' })?.name, 'private');
  // With no exportTo the two do not merge (different exportTo sets).
  const apart = ctxOf({
    'svc.yaml': REVIEWS,
    'sel.yaml': destinationRule('sel', 'shop', T2, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: mine, labels: {v: mine}}]\n'),
    'plain.yaml': destinationRule('plain', 'shop', T1, '  subsets: [{name: shared, labels: {v: shared}}]\n'),
  });
  assert.deepEqual(apart.destinationRuleFor(REVIEWS_HOST, 'shop', 'bookinfo', { app: 'cart' })!.spec.subsets.map((s: any) => s.name), ['mine']);
});

test('DestinationRule workloadSelector: without one anywhere, scopes carry no DestinationRule labels (keys unchanged)', () => {
  const ctx = ctxOf({ 'svc.yaml': REVIEWS, 'plain.yaml': destinationRule('plain', 'shop', T1, '  subsets: [{name: v1, labels: {version: v1}}]\n') });
  const a = sidecarProxy(ctx, 'shop', { app: 'cart' }), b = sidecarProxy(ctx, 'shop', { app: 'web' });
  assert.equal(a.drLabels, undefined);
  assert.equal(scopeKey(a), scopeKey(b));
  assert.equal(ctx.destinationRuleLabelKeysByNamespace.size, 0);
});

test('DestinationRule workloadSelector: a change of the labels selectors read makes proxy scopes unstable for a push', () => {
  const plain = destinationRule('plain', 'shop', T1, '  subsets: [{name: v1, labels: {version: v1}}]\n');
  const before = ctxOf({ 'svc.yaml': REVIEWS, 'plain.yaml': plain });
  const selecting = ctxOf({ 'svc.yaml': REVIEWS, 'plain.yaml': plain, 'sel.yaml': destinationRule('sel', 'shop', T2, '  workloadSelector: {matchLabels: {app: cart}}\n') });
  // A new selector key: scopes computed before lack drLabels, so they cannot stand for the new ones.
  assert.equal(new ProxyDependencies(before, selecting, ['DestinationRule/shop/sel']).scopesStable, false);
  const edited = ctxOf({ 'svc.yaml': REVIEWS, 'plain.yaml': plain, 'sel.yaml': destinationRule('sel', 'shop', T2, '  workloadSelector: {matchLabels: {app: cart}}\n  subsets: [{name: x, labels: {v: x}}]\n') });
  assert.equal(new ProxyDependencies(selecting, edited, ['DestinationRule/shop/sel']).scopesStable, true);
});
