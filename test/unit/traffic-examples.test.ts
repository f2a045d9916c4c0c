/** examples/bookinfo-traffic on top of examples/bookinfo: every document validates, and it generates what its README says. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigStore } from '../../src/config/store.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import { buildPushContextData } from '../../src/model/build-push-context.js';
import { PushContext } from '../../src/model/push-context.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { planResources, buildResource } from '../../workers/networking/generator.js';

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples');

function load(): PushContext {
  const store = new ConfigStore();
  for (const dir of ['bookinfo', 'bookinfo-traffic']) {
    for (const f of fs.readdirSync(path.join(EXAMPLES, dir)).filter((x) => x.endsWith('.yaml'))) {
      const parsed = parseManifests(f, fs.readFileSync(path.join(EXAMPLES, dir, f), 'utf8'));
      assert.deepEqual(parsed.errors.map((e) => e.message), [], `${dir}/${f} validates`);
      for (const d of parsed.docs) store.upsert(d.resource, f);
    }
  }
  return new PushContext(buildPushContextData(store, {
    rootNamespace: 'istio-system', domainSuffix: 'cluster.local', connectTimeoutMs: 10000, trustDomain: 'cluster.local',
  }, 'examples', 'Kubernetes'));
}

test('bookinfo-traffic: the ingress gateway, fault injection, egress Sidecar and ServiceEntry', () => {
  const ctx = load();
  const gw = scopeFor(parseProxy('router~10.244.0.5~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } }), ctx);
  assert.deepEqual(planResources(ctx, gw, LISTENER_TYPE).map((p) => p.name), ['0.0.0.0_8080']);
  const rc = buildResource(ctx, gw, ROUTE_TYPE, 'http.8080') as any;
  assert.deepEqual(rc.virtual_hosts.map((v: any) => v.name), ['*:8080']);
  assert.deepEqual(rc.virtual_hosts[0].routes.map((r: any) => r.match.path ?? r.match.prefix), ['/productpage', '/static', '/login', '/logout', '/api/v1/products']);

  const sidecar = scopeFor(parseProxy('sidecar~10.244.1.10~productpage-v1-6b7f6db6c9-x2k4p.default~default.svc.cluster.local', {}), ctx);
  assert.equal(sidecar.sidecar, 'default/default');
  const clusters = planResources(ctx, sidecar, CLUSTER_TYPE).map((p) => p.name);
  assert.ok(clusters.includes('outbound|443||www.googleapis.com'));
  const routes = buildResource(ctx, sidecar, ROUTE_TYPE, '9080') as any;
  const ratings = routes.virtual_hosts.find((v: any) => v.name === 'ratings.default.svc.cluster.local:9080');
  assert.equal(ratings.routes[0].typed_per_filter_config['envoy.filters.http.fault'].delay.fixed_delay.seconds, 7);
  assert.equal(routes.virtual_hosts.at(-1).name, 'block_all');
  const details = buildResource(ctx, sidecar, CLUSTER_TYPE, 'outbound|9080||details.default.svc.cluster.local') as any;
  assert.equal(details.lb_policy, 'RING_HASH');
  assert.equal(details.circuit_breakers.thresholds[0].max_connections.value, 1);
});
