/**
 * Responses framed when grpc-js serializes them, into one reused buffer: the bytes equal a response framed on its
 * own, and grpc-js copies them before the next one is framed — proved with a real grpc-js server and client and
 * responses written back to back, without waiting for any to flush.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { PendingResponse, frameDeltaResponse, frameDiscoveryResponse, lengthDelimited, resourceEntry, serializeResponse } from '../../src/proto/discovery.js';
import { messageType } from '../../src/proto/encode.js';
import { fields, str } from '../../src/proto/wire.js';

const TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** `n` resource entries (each an Any of `size` filler bytes, derived from `seed`). */
function entries(seed: number, n: number, size: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => resourceEntry(Buffer.concat([lengthDelimited(1, Buffer.from(TYPE)), lengthDelimited(2, Buffer.alloc(size, (seed * 31 + i) & 0xff))])));
}

test('a pending response frames to the same bytes as a response framed on its own, at every size', () => {
  // Small, around the reused buffer's first size, above it (it grows), and above its 1 MB bound (own buffer).
  for (const [n, size] of [[0, 0], [3, 100], [40, 1600], [200, 4000], [3, 700_000]] as const) {
    const es = entries(n, n, size);
    const want = frameDiscoveryResponse(`v-${n}`, es, TYPE, `nonce-${n}`);
    const p = new PendingResponse(`v-${n}`, es, TYPE, `nonce-${n}`);
    assert.equal(p.length, want.length, `length of ${n} × ${size}`);
    const got = serializeResponse(p);
    assert.ok(got.equals(want), `bytes of ${n} × ${size}`);
    // Both come from the same writer now: protobufjs reads them back as the response that was meant.
    const back = messageType('envoy.service.discovery.v3.DiscoveryResponse').decode(got) as unknown as { version_info: string; type_url: string; nonce: string; resources: unknown[] };
    assert.deepEqual([back.version_info, back.type_url, back.nonce, back.resources.length], [`v-${n}`, TYPE, `nonce-${n}`, n], `decoded ${n} × ${size}`);
  }
  // Delta: the same fields, then removed_resources.
  const es = entries(7, 5, 300);
  const delta = new PendingResponse('push-9', es, TYPE, 'nonce-9', ['gone-a', 'gone-b']);
  const wantDelta = frameDeltaResponse('push-9', es, TYPE, ['gone-a', 'gone-b'], 'nonce-9');
  assert.equal(delta.length, wantDelta.length);
  const gotDelta = serializeResponse(delta);
  assert.ok(gotDelta.equals(wantDelta), 'delta bytes');
  // Read back field by field: system_version_info 1, resources 2, type_url 4, nonce 5, removed_resources 6.
  const read = [...fields(gotDelta)].map((f) => [f.field, f.field === 2 ? f.end - f.value : str(gotDelta, f)]);
  assert.deepEqual(read, [[1, 'push-9'], ...es.map((e) => [2, e.length - 3]), [4, TYPE], [5, 'nonce-9'], [6, 'gone-a'], [6, 'gone-b']]);
  const framed = Buffer.from([1, 2, 3]);
  assert.equal(serializeResponse(framed), framed, 'framed bytes pass through');
});

test('responses written back to back on real gRPC streams arrive intact (grpc-js copies each before the next is framed)', async () => {
  const service: grpc.ServiceDefinition = {
    Stream: {
      path: '/meshpilot.test.Pending/Stream', requestStream: true, responseStream: true,
      requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
      responseSerialize: serializeResponse, responseDeserialize: (b: Buffer) => b,
    },
  };
  const N = 300;
  // Sizes vary so a later response overwrites an earlier one's bytes in the reused buffer if it were not copied.
  const sent = Array.from({ length: N }, (_, i) => new PendingResponse(`v${i}`, entries(i, 1 + (i % 7), 50 + ((i * 997) % 9000)), TYPE, `n${i}`));
  const server = new grpc.Server();
  server.addService(service, {
    Stream: (call: grpc.ServerDuplexStream<Buffer, PendingResponse>) => {
      call.once('data', () => {
        for (const r of sent) call.write(r); // no waiting for drain: most are queued in the stream
        call.end();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const Client = grpc.makeGenericClientConstructor(service, 'Pending');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Stream(): grpc.ClientDuplexStream<Buffer, Buffer> };
  try {
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = client.Stream();
      stream.on('data', (b: Buffer) => got.push(b));
      stream.on('end', resolve);
      stream.on('error', reject);
      stream.write(Buffer.from('go'));
      stream.end();
    });
    assert.equal(got.length, N, 'every response arrived');
    const RES = messageType('envoy.service.discovery.v3.DiscoveryResponse');
    got.forEach((b, i) => {
      const want = frameDiscoveryResponse(`v${i}`, sent[i]!.entries, TYPE, `n${i}`);
      assert.ok(b.equals(want), `response ${i} intact (${b.length} vs ${want.length} bytes)`);
    });
    const last = RES.decode(got[N - 1]!) as unknown as { nonce: string; version_info: string; resources: unknown[] };
    assert.equal(last.nonce, `n${N - 1}`);
    assert.equal(last.resources.length, 1 + ((N - 1) % 7));
  } finally {
    client.close();
    server.forceShutdown();
  }
});
