/**
 * A stream's resource names across requests (connection.ts): an ACK that repeats the names' bytes takes the names the
 * stream holds (no decode), a changed set is a resubscription, and the memo then follows the new set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsConnection } from '../../src/xds/connection.js';
import { decodeDiscoveryRequest, type DiscoveryRequest } from '../../src/proto/discovery.js';
import { messageType } from '../../src/proto/encode.js';
import { parseProxy } from '../../src/model/proxy.js';
import { createLogger } from '../../src/log/logger.js';
import { ENDPOINT_TYPE } from '../../src/proto/type-urls.js';

const REQ = messageType('envoy.service.discovery.v3.DiscoveryRequest');
const request = (names: string[], nonce: string): DiscoveryRequest =>
  decodeDiscoveryRequest(Buffer.from(REQ.encode(REQ.fromObject({ resource_names: names, type_url: ENDPOINT_TYPE, response_nonce: nonce, version_info: nonce })).finish()));
const decoded = (r: DiscoveryRequest): boolean => (r as unknown as { namesDecoded: boolean }).namesDecoded;

test('ACKs repeating the names reuse them; a changed set resubscribes and becomes what is reused', () => {
  const con = new XdsConnection(parseProxy('sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', {}), { write: () => true, once: () => undefined }, 'peer',
    { log: createLogger('silent'), ackTimeoutMs: 1000, resync: () => undefined });
  const ab = ['b', 'a'];
  assert.equal(con.onRequest(request(ab, '')), 'initial');
  const held = con.watches.get(ENDPOINT_TYPE)!.names!;
  assert.deepEqual(held, ['a', 'b'], 'kept sorted');
  // Answer with a nonce the ACKs can name.
  const nonce = (): string => { const w = con.watches.get(ENDPOINT_TYPE)!; w.nonceSent = `n${Math.random()}`; return w.nonceSent; };
  let n = nonce();
  const ack = request(ab, n);
  assert.equal(con.onRequest(ack), 'ack');
  assert.equal(ack.resourceNames, held, 'the same bytes read as the held names');
  n = nonce();
  const more = request(['a', 'b', 'c'], n);
  assert.equal(con.onRequest(more), 'ack-resubscribe');
  assert.ok(decoded(more));
  assert.deepEqual(con.watches.get(ENDPOINT_TYPE)!.names, ['a', 'b', 'c']);
  n = nonce();
  const again = request(['a', 'b', 'c'], n);
  assert.equal(con.onRequest(again), 'ack');
  assert.equal(again.resourceNames, con.watches.get(ENDPOINT_TYPE)!.names, 'the new set is what is reused now');
  n = nonce();
  const back = request(ab, n);
  assert.equal(con.onRequest(back), 'ack-resubscribe', 'the old bytes are not mistaken for the current set');
  assert.deepEqual(con.watches.get(ENDPOINT_TYPE)!.names, ['a', 'b']);
});
