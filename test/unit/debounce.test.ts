/**
 * Debouncer: quiet period, max wait, merging, and one push at a time.
 *
 * Time is virtual: setTimeout is node:test's mock and the Debouncer reads the same virtual clock, advanced one
 * millisecond at a time (promise continuations run between steps). The assertions are exact instants, and a
 * loaded machine (a timer firing 80 ms late) cannot make them pass or fail.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Debouncer, type PushRequest, type DebounceOptions } from '../../src/push/debounce.js';

interface Clock {
  now(): number;
  /** Advance virtual time by `ms`, firing due timers and letting promise continuations run after each millisecond. */
  advance(ms: number): Promise<void>;
  /** A promise that resolves `ms` of virtual time from now (a push that takes that long). */
  sleep(ms: number): Promise<void>;
  debouncer(opts: DebounceOptions, push: (r: PushRequest) => Promise<void>): Debouncer;
  req(kind: string, full?: boolean, start?: number): PushRequest;
}

function virtualClock(t: TestContext): Clock {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000;
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  const clock: Clock = {
    now: () => now,
    async advance(ms) {
      for (let i = 0; i < ms; i++) {
        now++;
        t.mock.timers.tick(1);
        await turn();
      }
    },
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    debouncer: (opts, push) => new Debouncer(opts, push, () => now),
    req: (kind, full = true, start = now) => ({
      full, configsUpdated: new Set([`${kind}/ns/x`]), reasons: new Map([[kind, 1]]), start, events: 1,
    }),
  };
  return clock;
}

test('a burst within the quiet period becomes one merged push', async (t) => {
  const c = virtualClock(t);
  const pushes: PushRequest[] = [];
  const d = c.debouncer({ afterMs: 60, maxMs: 1000 }, async (r) => { pushes.push(r); });
  d.enqueue(c.req('VirtualService'));
  await c.advance(20);
  d.enqueue(c.req('EndpointSlice', false));
  await c.advance(20);
  d.enqueue(c.req('VirtualService'));
  await c.advance(59);
  assert.equal(pushes.length, 0, 'the quiet period runs from the last event');
  await c.advance(1);
  assert.equal(pushes.length, 1, 'pushed 60 ms after the last event');
  assert.equal(pushes[0]!.events, 3);
  assert.equal(pushes[0]!.full, true, 'full wins over incremental when merged');
  assert.equal(pushes[0]!.reasons.get('VirtualService'), 2);
  d.close();
});

test('endpoint-only bursts stay incremental', async (t) => {
  const c = virtualClock(t);
  const pushes: PushRequest[] = [];
  const d = c.debouncer({ afterMs: 20, maxMs: 1000 }, async (r) => { pushes.push(r); });
  d.enqueue(c.req('EndpointSlice', false));
  d.enqueue(c.req('Pod', false));
  await c.advance(20);
  assert.equal(pushes.length, 1);
  assert.equal(pushes[0]!.full, false);
  assert.equal(pushes[0]!.events, 2);
  d.close();
});

test('a steady stream of events is still pushed after debounceMax', async (t) => {
  const c = virtualClock(t);
  const pushes: Array<{ at: number; req: PushRequest }> = [];
  const d = c.debouncer({ afterMs: 50, maxMs: 200 }, async (r) => { pushes.push({ at: c.now(), req: r }); });
  const t0 = c.now();
  for (let i = 0; i < 40; i++) { d.enqueue(c.req('Service')); await c.advance(10); }
  assert.ok(pushes.length >= 1, 'pushed despite never being quiet');
  assert.ok(pushes[0]!.at - t0 <= 200 + 10, `first push ${pushes[0]!.at - t0} ms after the first event (max wait 200 ms)`);
  assert.ok(pushes[0]!.req.events >= 20, 'the events before it were merged into it');
  d.close();
});

test('never two pushes at once: events during a push wait for it', async (t) => {
  const c = virtualClock(t);
  let running = 0, maxRunning = 0, count = 0;
  const d = c.debouncer({ afterMs: 10, maxMs: 100 }, async () => {
    running++; maxRunning = Math.max(maxRunning, running); count++;
    await c.sleep(100);
    running--;
  });
  d.enqueue(c.req('A'));
  await c.advance(30); // A runs from 10 to 110 ms
  d.enqueue(c.req('B'));
  await c.advance(30);
  d.enqueue(c.req('C'));
  await c.advance(300);
  assert.equal(maxRunning, 1);
  assert.equal(count, 2, 'B and C merged into the second push');
  d.close();
});

test('the quiet period runs from when the change was observed, not from when it was enqueued', async (t) => {
  const c = virtualClock(t);
  const at: number[] = [];
  const d = c.debouncer({ afterMs: 100, maxMs: 1000 }, async () => { at.push(c.now()); });
  const enqueued = c.now();
  d.enqueue(c.req('VirtualService', true, enqueued - 95)); // a source that coalesced its notifications for 95 ms
  await c.advance(150);
  assert.deepEqual(at.map((x) => x - enqueued), [5], 'pushed 100 ms after the observation, 5 ms after the enqueue');
  // A start in the future (another clock) counts as now: the quiet period is neither skipped nor stretched.
  const t1 = c.now();
  d.enqueue(c.req('VirtualService', true, t1 + 10_000));
  await c.advance(400);
  assert.deepEqual(at.slice(1).map((x) => x - t1), [100], 'the full quiet period still applies');
  d.close();
});

test('a request that became due during a push starts when that push ends, not a quiet period later', async (t) => {
  const c = virtualClock(t);
  const starts: number[] = [];
  const ends: number[] = [];
  const d = c.debouncer({ afterMs: 250, maxMs: 5000 }, async () => {
    starts.push(c.now());
    if (starts.length === 1) await c.sleep(300);
    ends.push(c.now());
  });
  d.enqueue(c.req('A'));
  await c.advance(270); // A starts at 250 ms and runs until 550 ms
  d.enqueue(c.req('B')); // quiet by 520 ms, while A still runs
  await c.advance(600);
  assert.equal(starts.length, 2);
  // Before: the due request waited another full quiet period (250 ms) after A ended.
  // (A zero-delay timer fires on the next millisecond step of the virtual clock.)
  assert.ok(starts[1]! - ends[0]! <= 1, `B started ${starts[1]! - ends[0]!} ms after A ended`);
  d.close();
});
