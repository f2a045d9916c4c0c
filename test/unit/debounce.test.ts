/** Debouncer: quiet period, max wait, merging, and one push at a time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Debouncer, type PushRequest } from '../../src/push/debounce.js';

const req = (kind: string, full = true): PushRequest => ({
  full, configsUpdated: new Set([`${kind}/ns/x`]), reasons: new Map([[kind, 1]]), start: performance.now(), events: 1,
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a burst within the quiet period becomes one merged push', async () => {
  const pushes: PushRequest[] = [];
  const d = new Debouncer({ afterMs: 60, maxMs: 1000 }, async (r) => { pushes.push(r); });
  d.enqueue(req('VirtualService'));
  await sleep(20);
  d.enqueue(req('EndpointSlice', false));
  await sleep(20);
  d.enqueue(req('VirtualService'));
  assert.equal(pushes.length, 0);
  await sleep(150);
  assert.equal(pushes.length, 1);
  assert.equal(pushes[0]!.events, 3);
  assert.equal(pushes[0]!.full, true, 'full wins over incremental when merged');
  assert.equal(pushes[0]!.reasons.get('VirtualService'), 2);
  d.close();
});

test('endpoint-only bursts stay incremental', async () => {
  const pushes: PushRequest[] = [];
  const d = new Debouncer({ afterMs: 20, maxMs: 1000 }, async (r) => { pushes.push(r); });
  d.enqueue(req('EndpointSlice', false));
  d.enqueue(req('Pod', false));
  await sleep(80);
  assert.equal(pushes.length, 1);
  assert.equal(pushes[0]!.full, false);
  d.close();
});

test('a steady stream of events is still pushed after debounceMax', async () => {
  const pushes: PushRequest[] = [];
  const d = new Debouncer({ afterMs: 50, maxMs: 200 }, async (r) => { pushes.push(r); });
  const t0 = performance.now();
  while (performance.now() - t0 < 400) { d.enqueue(req('Service')); await sleep(10); }
  assert.ok(pushes.length >= 1, 'pushed despite never being quiet');
  d.close();
});

test('never two pushes at once: events during a push wait for it', async () => {
  let running = 0, maxRunning = 0, count = 0;
  const d = new Debouncer({ afterMs: 10, maxMs: 100 }, async () => {
    running++; maxRunning = Math.max(maxRunning, running); count++;
    await sleep(100);
    running--;
  });
  d.enqueue(req('A'));
  await sleep(30);
  d.enqueue(req('B'));
  await sleep(30);
  d.enqueue(req('C'));
  await sleep(300);
  assert.equal(maxRunning, 1);
  assert.equal(count, 2, 'B and C merged into the second push');
  d.close();
});

test('a request that became due during a push starts when that push ends, not a quiet period later', async () => {
  const starts: number[] = [];
  const ends: number[] = [];
  const d = new Debouncer({ afterMs: 250, maxMs: 5000 }, async () => {
    starts.push(performance.now());
    if (starts.length === 1) await sleep(300);
    ends.push(performance.now());
  });
  d.enqueue(req('A'));
  await sleep(270); // A starts at ~250 ms and runs until ~550 ms
  d.enqueue(req('B')); // quiet by ~520 ms, while A still runs
  await sleep(600);
  assert.equal(starts.length, 2);
  const gap = starts[1]! - ends[0]!;
  // Before: the due request waited another full quiet period (250 ms) after A ended.
  assert.ok(gap >= 0 && gap < 150, `B started ${gap.toFixed(0)} ms after A ended`);
  d.close();
});

test('the quiet period runs from when the change was observed, not from when it was enqueued', async () => {
  const at: number[] = [];
  const d = new Debouncer({ afterMs: 100, maxMs: 1000 }, async () => { at.push(performance.now()); });
  const observed = performance.now() - 95; // a source that coalesced its notifications for 95 ms
  const enqueued = performance.now();
  d.enqueue({ ...req('VirtualService'), start: observed });
  await sleep(150);
  assert.equal(at.length, 1);
  const waited = at[0]! - enqueued;
  // ~5 ms (100 ms from the observation); counting from the enqueue would be 100 ms.
  assert.ok(waited < 85, `pushed ${waited.toFixed(0)} ms after the enqueue (expected ~5: 100 ms from the observation)`);
  // A start in the future (another clock) counts as now: the quiet period is neither skipped nor stretched.
  const t1 = performance.now();
  d.enqueue({ ...req('VirtualService'), start: performance.now() + 10_000 });
  await sleep(400);
  assert.equal(at.length, 2);
  assert.ok(at[1]! - t1 >= 95, `pushed ${(at[1]! - t1).toFixed(0)} ms after: the full quiet period still applies`);
  d.close();
});
