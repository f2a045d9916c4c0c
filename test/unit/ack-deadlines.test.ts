/**
 * Waiting for ACKs (connection-base.ts): a push's promise settles on its ACK, on close, or after ackTimeoutMs —
 * kept by one deadline queue per timeout, so servers (or tests) with different timeouts in one process do not delay
 * each other's expiries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BaseConnection, type Writable } from '../../src/xds/connection-base.js';
import { parseProxy } from '../../src/model/proxy.js';
import { createLogger } from '../../src/log/logger.js';
import type { ComputedResponse } from '../../src/push/push-engine.js';

class TestConnection extends BaseConnection {
  readonly kind = 'sotw' as const;
  watched(): Array<{ typeUrl: string; names: string[] | undefined }> { return []; }
  lastComputed(): ComputedResponse | undefined { return undefined; }
  deliver(): Promise<void> { return Promise.resolve(); }
  push(): { nonce: string; acked: Promise<number> } {
    const nonce = this.nextNonce();
    const t0 = performance.now();
    return { nonce, acked: this.send(Buffer.from('x'), nonce).then(() => performance.now() - t0) };
  }
  ack(nonce: string): void { this.answered(nonce); }
}

const out: Writable = { write: () => true, once: () => undefined };
const connection = (ackTimeoutMs: number): TestConnection =>
  new TestConnection(parseProxy('sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', {}), 'peer', out,
    { log: createLogger('silent'), ackTimeoutMs, resync: () => undefined });

test('a push settles on its ACK, and unACKed ones after their own timeout even when a longer one was queued first', async (t) => {
  // The deadline timer is unref'd (it must not keep a stopping server alive): hold the event loop open here.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const slow = connection(1500);
  const fast = connection(150);
  const s = slow.push();
  const acked = fast.push();
  const unacked = fast.push();
  assert.notEqual(acked.nonce, unacked.nonce, 'nonces are unique on a stream');
  fast.ack(acked.nonce);
  assert.ok(await acked.acked < 100, 'settled by its ACK, not the timeout');
  const waited = await unacked.acked;
  assert.ok(waited >= 140 && waited < 1000, `the 150 ms timeout fired after ${waited.toFixed(0)} ms (not behind the 1,500 ms one)`);
  slow.close();
  assert.ok(await s.acked < 1400, 'close settles what still waits');
});

test('nonces differ across connections of the same proxy', () => {
  const a = connection(100).push().nonce;
  const b = connection(100).push().nonce;
  assert.notEqual(a, b);
});
