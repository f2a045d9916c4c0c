/** ResourceCache sweeping: what a connected proxy holds stays however idle; superseded entries go once the cache doubled. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceCache } from '../../src/push/resource-cache.js';

test('entries a proxy holds survive any number of sweeps; unheld, unused ones are dropped once the cache has doubled', () => {
  const cache = new ResourceCache(true, 2);
  const b = Buffer.from('x');
  const held = Array.from({ length: 600 }, (_, i) => `held-${i}`);
  for (const k of held) cache.set(k, b);
  // 100 pushes elsewhere, each leaving 20 superseded versions behind.
  for (let push = 0; push < 100; push++) {
    for (let i = 0; i < 20; i++) cache.set(`gone-${push}-${i}`, b);
    cache.advance(); // a push context
    cache.collect(() => [held]); // after its push
  }
  for (const k of held) assert.ok(cache.peek(k), `${k} is held by a proxy and must stay cached`);
  assert.equal(cache.peek('gone-0-0'), undefined, 'a superseded entry nobody holds is dropped');
  assert.ok(cache.peek('gone-99-0'), 'entries the last pushes made stay (they may be on their way to proxies)');
  // Bounded: never more than twice what the last sweep kept (plus the minimum).
  assert.ok(cache.stats().size <= Math.max(1024, 2 * (600 + 3 * 20)) + 20, `cache grew to ${cache.stats().size}`);
});

test('a disabled cache holds nothing', () => {
  const cache = new ResourceCache(false);
  cache.set('k', Buffer.from('x'));
  assert.equal(cache.get('k'), undefined);
  cache.advance();
  cache.collect(() => [['k']]);
  assert.equal(cache.stats().size, 0);
});

test('lookups hand back the key and name strings an entry was stored under, and count hits and misses as get does', () => {
  const cache = new ResourceCache();
  const stored = ['envoy', 'outbound|80||a.ns.svc.cluster.local', 'v1'].join('|');
  cache.set(stored, Buffer.from('x'), 'outbound|80||a.ns.svc.cluster.local');
  const asked = `envoy|outbound|80||a.ns.svc.cluster.local|${'v'}1`; // equal, built separately (as every plan does)
  const hit = cache.lookup(asked);
  assert.ok(hit && hit.key === stored && hit.entry.toString() === 'x' && hit.name === 'outbound|80||a.ns.svc.cluster.local');
  assert.equal(cache.lookup('envoy|other'), undefined);
  assert.deepEqual([cache.hits, cache.misses], [1, 1]);
  assert.equal(cache.peekEntry(asked)?.key, stored);
  assert.equal(cache.peekEntry('envoy|other'), undefined);
  assert.deepEqual([cache.hits, cache.misses], [1, 1], 'peekEntry counts nothing');
});
