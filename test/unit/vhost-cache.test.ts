/**
 * Sidecar route configurations assembled from cached encoded virtual hosts (workers/networking/route-builder.ts)
 * are byte for byte what encoding the whole object gives, and a cached host is never served after one of its inputs
 * changed: the VirtualService, a destination's DestinationRule, the proxy's labels (sourceLabels) or namespace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAny } from '../../src/proto/encode.js';
import { parseProxy, type Proxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { buildResource, encodeResource, planResources } from '../../workers/networking/generator.js';
import { vhostCacheStats } from '../../workers/networking/route-builder.js';
import type { PushContext } from '../../src/model/push-context.js';
import { ctxOf, goldenAndExampleMeshes } from '../helpers/context.js';

/** The route configurations of a proxy, through the cached path and by encoding the object; both must agree. */
function routesBoth(ctx: PushContext, proxy: Proxy): Map<string, Buffer> {
  const scope = scopeFor(proxy, ctx);
  const out = new Map<string, Buffer>();
  for (const { name } of planResources(ctx, scope, ROUTE_TYPE)) {
    const obj = buildResource(ctx, scope, ROUTE_TYPE, name);
    const cached = encodeResource(ctx, scope, ROUTE_TYPE, name);
    assert.ok(obj && cached, `${proxy.id} route ${name} exists in both paths`);
    const whole = Buffer.from(encodeAny(obj as typeof obj & { '@type': string }));
    assert.ok(Buffer.from(cached).equals(whole), `${proxy.id} route ${name}: cached assembly differs from the encoded object`);
    out.set(name, whole);
  }
  return out;
}

const sidecar = (ns: string, labels: Record<string, string>, i = 1): Proxy =>
  parseProxy(`sidecar~10.1.0.${i}~p-${i}.${ns}~${ns}.svc.cluster.local`, { NAMESPACE: ns, LABELS: labels });

test('assembled route configurations equal the encoded objects for the golden scenarios and the examples (twice: cold, then from the cache)', () => {
  const meshes = goldenAndExampleMeshes();
  const proxies = [
    sidecar('default', {}), sidecar('default', { app: 'reviews', version: 'v1' }, 2), sidecar('shop', { app: 'api' }, 3),
    parseProxy('sidecar~10.244.1.10~productpage-v1-6b7f6db6c9-x2k4p.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' }),
  ];
  let configs = 0;
  for (const docs of meshes) {
    const ctx = ctxOf(docs);
    for (const proxy of proxies) {
      const first = routesBoth(ctx, proxy);
      const misses = vhostCacheStats().misses;
      const again = routesBoth(ctx, proxy);
      assert.deepEqual([...again.keys()], [...first.keys()]);
      for (const [name, b] of again) assert.ok(b.equals(first.get(name)!), `${name} is stable`);
      assert.equal(vhostCacheStats().misses, misses, `${proxy.id}: the second pass encodes no virtual host again`);
      configs += first.size;
    }
  }
  assert.ok(configs > 20, `a broad sample (${configs} route configurations)`);
});

const BASE = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {clusterIP: 10.96.0.10, selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {clusterIP: 10.96.0.11, selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: details, namespace: other}
spec: {clusterIP: 10.96.0.12, selector: {app: details}, ports: [{name: http, port: 9080}]}
`;

const vs = (weightV1: number): string => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: ${weightV1}}
    - {destination: {host: ratings}, weight: ${100 - weightV1}}
`;

const DR = (hashHeader: string | undefined): string => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
${hashHeader ? `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: ${hashHeader}}}}
` : ''}`;

test('a cached virtual host is never served after one of its inputs changed', () => {
  const client = sidecar('default', { app: 'client' });
  const productpage = sidecar('default', { app: 'productpage' }, 2);
  const elsewhere = sidecar('other', { app: 'client' }, 3);
  const mesh = (weight: number, hash?: string): PushContext => ctxOf({ 'base.yaml': BASE, 'vs.yaml': vs(weight), 'dr.yaml': DR(hash) });

  const a = routesBoth(mesh(90), client).get('9080')!;
  // The VirtualService's weights change: the reviews host must be re-encoded.
  const b = routesBoth(mesh(50), client).get('9080')!;
  assert.ok(!a.equals(b), 'a VirtualService change changes the route configuration');
  // A destination's DestinationRule (hash policy on ratings, a weighted destination of reviews' route).
  const c = routesBoth(mesh(50, 'x-user'), client).get('9080')!;
  assert.ok(!b.equals(c), 'a destination\'s DestinationRule changes the route configuration');
  // Back to the first inputs: the very first bytes again (from the cache, and still right).
  assert.ok(routesBoth(mesh(90), client).get('9080')!.equals(a), 'the same inputs give the same bytes');
  // sourceLabels: the productpage proxy matches the first route, the client does not.
  const pp = routesBoth(mesh(90), productpage).get('9080')!;
  assert.ok(!pp.equals(a), 'proxies whose labels a match reads get their own virtual host');
  // Another namespace: other domains (short names) and exportTo-visible config.
  const other = routesBoth(mesh(90), elsewhere).get('9080')!;
  assert.ok(!other.equals(a), 'another namespace gets its own domains');
});
