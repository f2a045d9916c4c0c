/** The wire-level DiscoveryRequest reader agrees with protobufjs on every field ADS reads; the node decodes on demand. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeDiscoveryRequest, decodeNode, frameDiscoveryResponse, resourceEntry, reuseNames } from '../../src/proto/discovery.js';
import { encodeAny, messageType, jsonToStruct } from '../../src/proto/encode.js';
import { rng } from '../helpers/rng.js';

const REQ = messageType('envoy.service.discovery.v3.DiscoveryRequest');

function encode(obj: Record<string, unknown>): Buffer {
  return Buffer.from(REQ.encode(REQ.fromObject(obj)).finish());
}

function viaProtobufjs(buf: Buffer): ReturnType<typeof decodeDiscoveryRequest> {
  const raw = REQ.decode(buf) as any;
  return {
    versionInfo: raw.version_info ?? '', node: decodeNode(raw.node), resourceNames: raw.resource_names ?? [],
    typeUrl: raw.type_url ?? '', responseNonce: raw.response_nonce ?? '',
    errorDetail: raw.error_detail ? { code: raw.error_detail.code ?? 0, message: raw.error_detail.message ?? '' } : undefined,
  };
}

const node = {
  id: 'sidecar~10.0.0.1~a-1.ns~ns.svc.cluster.local', cluster: 'a.ns', user_agent_name: 'envoy',
  metadata: jsonToStruct({ NAMESPACE: 'ns', LABELS: { app: 'a', version: 'v1' }, ISTIO_VERSION: '1.29.0', N: 3, B: true, L: ['x', 'y'] }),
};

// Every google.protobuf.Value kind, nested, as the wire-level node reader must read them.
const richNode = {
  id: 'router~10.0.0.2~gw-1.istio-system~istio-system.svc.cluster.local', cluster: 'gw', user_agent_name: 'envoy', user_agent_version: '1.40.0',
  metadata: jsonToStruct({
    NULLV: null, NUM: -2.5, BIG: 2 ** 40, ZERO: 0, F: false, EMPTY: {}, EL: [], 'ü-key': 'ß',
    NESTED: { a: { b: [1, { c: 'd' }, [true, null]] } },
  }),
};

const cases: Array<[string, Record<string, unknown>]> = [
  ['node with every Value kind, nested', { node: richNode, type_url: 'T' }],
  ['initial with node', { node, type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' }],
  ['ACK with names and node', { version_info: 'v1/2', node, resource_names: ['outbound|80||a.ns.svc.cluster.local', 'b', 'ü'], type_url: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', response_nonce: '17' }],
  ['NACK', { version_info: 'v1', response_nonce: '3', type_url: 'T', error_detail: { code: 13, message: 'Proto constraint validation failed: listener 0.0.0.0_80' } }],
  ['empty', {}],
];

for (const [name, obj] of cases) {
  test(`decodes like protobufjs: ${name}`, () => {
    const buf = encode(obj);
    const got = decodeDiscoveryRequest(buf);
    const want = viaProtobufjs(buf);
    const { versionInfo, node, resourceNames, typeUrl, responseNonce, errorDetail } = got;
    assert.deepEqual({ versionInfo, node, resourceNames, typeUrl, responseNonce, errorDetail }, want);
  });
}

test('the node is decoded only when read, once, and can be replaced', () => {
  const req = decodeDiscoveryRequest(encode({ node, type_url: 'T' }));
  assert.equal((req as unknown as { nodeDecoded: boolean }).nodeDecoded, false, 'not decoded yet');
  const n = req.node!;
  assert.equal(n.id, node.id);
  assert.deepEqual(n.metadata.LABELS, { app: 'a', version: 'v1' });
  assert.equal(req.node, n, 'decoded once');
  n.metadata.X = 'y';
  assert.equal(req.node!.metadata.X, 'y', 'a change to the decoded node stays (sds.ts marks SDS capability on it)');
  req.node = undefined;
  assert.equal(req.node, undefined);
});

test('malformed bytes are refused', () => {
  assert.throws(() => decodeDiscoveryRequest(Buffer.from([0x0a, 0x05, 0x61])));
});

test('a response framed from cached entries decodes as sent', () => {
  const RES = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  const cluster = (name: string): Uint8Array => encodeAny({ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name });
  const entries = [resourceEntry(cluster('a')), resourceEntry(cluster('b'.repeat(300)))];
  const whole = frameDiscoveryResponse('v7', entries, 'type.googleapis.com/T', '12-abc');
  const back = RES.decode(whole) as any;
  assert.equal(back.version_info, 'v7');
  assert.equal(back.type_url, 'type.googleapis.com/T');
  assert.equal(back.nonce, '12-abc');
  assert.equal(back.resources.length, 2);
});

test('random node metadata decodes from the wire as protobufjs decodes it (200 nodes)', () => {
  const next = rng(0x5eed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const keys = ['NAMESPACE', 'LABELS', 'app', 'version', 'a', 'ü', '', 'k.with/dots', 'x'.repeat(200)];
  const value = (depth: number): unknown => {
    switch (Math.floor(next() * (depth > 3 ? 4 : 6))) {
      case 0: return null;
      case 1: return pick([0, -1, 1.5, 2 ** 53, -(2 ** 31), 1e-300, 3]);
      case 2: return pick(['', 'v1', 'ß∂', 'y'.repeat(150)]);
      case 3: return next() < 0.5;
      case 4: return struct(depth + 1);
      default: return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
    }
  };
  const struct = (depth: number): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(next() * 5); i > 0; i--) o[pick(keys)] = value(depth);
    return o;
  };
  for (let i = 0; i < 200; i++) {
    const n: Record<string, unknown> = { id: `sidecar~10.0.0.${i}~p.ns~ns.svc.cluster.local`, metadata: jsonToStruct(struct(0)) };
    if (next() < 0.5) n.cluster = `c${i}`;
    if (next() < 0.5) n.user_agent_name = 'envoy';
    if (next() < 0.3) n.user_agent_version = '1.40.0';
    const buf = encode({ node: n, type_url: 'T', resource_names: ['a', 'b'] });
    assert.deepEqual(decodeDiscoveryRequest(buf).node, viaProtobufjs(buf).node, `node ${i}`);
  }
});

test('names that repeat the stream\'s kept bytes for the type are reused, not decoded; other bytes or layouts are decoded', () => {
  const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
  const names = ['outbound|80||a.ns.svc.cluster.local', 'outbound|80||b.ns.svc.cluster.local'];
  const first = decodeDiscoveryRequest(encode({ resource_names: names, type_url: EDS, response_nonce: '' }));
  assert.equal((first as unknown as { namesDecoded: boolean }).namesDecoded, false, 'not decoded yet');
  assert.deepEqual(first.resourceNames, names);
  assert.ok(first.namesRaw && first.namesRaw.length > 0, 'the names\' bytes are kept with the request');
  const memo = { raw: Buffer.from(first.namesRaw!), names: [...names] };
  const ack = decodeDiscoveryRequest(encode({ version_info: 'v1', resource_names: names, type_url: EDS, response_nonce: '1' }));
  assert.equal(reuseNames(ack, memo), true);
  assert.equal(ack.resourceNames, memo.names, 'the same bytes read as the kept names');
  const changed = decodeDiscoveryRequest(encode({ resource_names: [names[0]!], type_url: EDS, response_nonce: '2' }));
  assert.equal(reuseNames(changed, memo), false);
  assert.deepEqual(changed.resourceNames, [names[0]]);
  const none = decodeDiscoveryRequest(encode({ type_url: EDS, response_nonce: '3' }));
  assert.equal(reuseNames(none, memo), false);
  assert.deepEqual(none.resourceNames, []);
  // Names split by another field (legal protobuf, if unusual): decoded in full, never matched as one run.
  const a = encode({ resource_names: [names[0]!] }), b = encode({ type_url: EDS }), c2 = encode({ resource_names: [names[1]!] });
  const scattered = decodeDiscoveryRequest(Buffer.concat([a, b, c2]));
  assert.equal(reuseNames(scattered, memo), false);
  assert.deepEqual(scattered.resourceNames, names);
  assert.deepEqual(scattered.resourceNames, (REQ.decode(Buffer.concat([a, b, c2])) as any).resource_names);
});
