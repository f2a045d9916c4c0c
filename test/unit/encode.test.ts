/** Strict encoding: an unknown field or enum value anywhere in a resource is an error naming where it is. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAny, decodeAny } from '../../src/proto/encode.js';

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
