/** Strict encoding: an unknown field or enum value anywhere in a resource is an error naming where it is. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAny, decodeAny, messageType } from '../../src/proto/encode.js';
import { parseProxy } from '../../src/model/proxy.js';
import { scopeFor } from '../../src/model/scope.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, PUSH_ORDER } from '../../src/proto/type-urls.js';
import { buildResource, planResources } from '../../workers/networking/generator.js';
import { ctxOf, goldenAndExampleMeshes } from '../helpers/context.js';

const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

test('a valid resource round-trips; nested Anys are packed', () => {
  const bytes = encodeAny({
    '@type': CLUSTER, name: 'c', type: 'EDS', connect_timeout: { seconds: 10 },
    transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', sni: 'x' } },
  });
  const back = decodeAny(bytes);
  assert.equal(back.name, 'c');
  assert.equal(back.type, 'EDS');
  assert.equal((back.transport_socket as any).typed_config.sni, 'x');
});

test('errors name the path: unknown field in a repeated nested message, unknown enum, unknown field inside an Any', () => {
  assert.throws(() => encodeAny({
    '@type': CLUSTER, name: 'c',
    load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{}, { endpoint: { adress: {} } }] }] },
  }), /Cluster\.load_assignment\.endpoints\[0\]\.lb_endpoints\[1\]\.endpoint: unknown field "adress" in \.envoy\.config\.endpoint\.v3\.Endpoint/);
  assert.throws(() => encodeAny({ '@type': CLUSTER, name: 'c', lb_policy: 'FASTEST' }), /Cluster\.lb_policy: unknown enum value FASTEST/);
  assert.throws(() => encodeAny({
    '@type': CLUSTER, name: 'c',
    transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', snii: 'x' } },
  }), /Cluster\.transport_socket\.typed_config: unknown field "snii"/);
  assert.throws(() => encodeAny({ '@type': CLUSTER, name: 'c', metadata: { filter_metadata: { istio: 5 } } }), /Cluster\.metadata\.filter_metadata\[istio\]: expected \.google\.protobuf\.Struct object/);
});

test('the strict encoder writes the bytes protobufjs\' own fromObject + encode write, for every resource of the golden scenarios and the examples', () => {
  const meshes = goldenAndExampleMeshes();
  const proxies = [
    parseProxy('sidecar~10.1.0.1~client-0.default~default.svc.cluster.local', { NAMESPACE: 'default' }),
    parseProxy('sidecar~10.1.0.9~api-0.shop~shop.svc.cluster.local', { NAMESPACE: 'shop', LABELS: { app: 'api' } }),
    parseProxy('sidecar~10.244.1.10~productpage-v1-6b7f6db6c9-x2k4p.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' }),
    parseProxy('router~10.1.0.100~ingress-0.istio-system~istio-system.svc.cluster.local', { NAMESPACE: 'istio-system', LABELS: { istio: 'ingressgateway' } }),
    parseProxy('router~10.1.0.101~eastwest-0.istio-system~istio-system.svc.cluster.local', { NAMESPACE: 'istio-system', LABELS: { istio: 'eastwestgateway' } }),
    parseProxy('sidecar~10.0.0.1~client.default~default.svc.cluster.local', { GENERATOR: 'grpc' }),
  ];
  const anyType = messageType('google.protobuf.Any');
  let compared = 0;
  const types = new Set<string>();
  for (const docs of meshes) {
    const ctx = ctxOf(docs);
    for (const proxy of proxies) {
      const scope = scopeFor(proxy, ctx);
      for (const typeUrl of PUSH_ORDER) {
        // Wildcard plans, plus every cluster name as an EDS name and every route name the listeners use.
        const names = new Set(planResources(ctx, scope, typeUrl).map((p) => p.name));
        if (typeUrl === ENDPOINT_TYPE) for (const p of planResources(ctx, scope, CLUSTER_TYPE)) names.add(p.name);
        for (const name of names) {
          const obj = buildResource(ctx, scope, typeUrl, name);
          if (!obj) continue;
          const ours = Buffer.from(encodeAny(obj as typeof obj & { '@type': string }));
          const reference = Buffer.from(anyType.encode(anyType.fromObject(obj)).finish());
          assert.ok(ours.equals(reference), `${Object.keys(docs)[0]} ${proxy.id} ${typeUrl} ${name}: bytes differ`);
          compared++;
          types.add(typeUrl);
        }
      }
    }
  }
  assert.equal(types.size, 4, 'all four types compared');
  assert.ok(compared > 500, `a broad sample (${compared} resources)`);
});
