/** Spare CPU for the generation pool: /proc/stat parsing and the spare-cores arithmetic. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProcStat, spareCoresBetween, SpareCpu, type CpuReading } from '../../src/push/spare-cpu.js';

const STAT = `cpu  1000 20 300 5000 80 0 10 0 0 0
cpu0 500 10 150 2500 40 0 5 0 0 0
cpu1 500 10 150 2500 40 0 5 0 0 0
intr 12345
ctxt 999
`;

test('parseProcStat: idle includes iowait, total the first eight fields, cores from the per-CPU lines', () => {
  assert.deepEqual(parseProcStat(STAT), { idle: 5080, total: 6410, cores: 2 });
  assert.equal(parseProcStat('intr 1\n'), undefined);
  assert.equal(parseProcStat('cpu  a b c d\n'), undefined);
});

function reading(idle: number, total: number, workerBusyMs: number, at: number): CpuReading {
  return { idle, total, cores: 2, workerBusyMs, at };
}

test('spare cores: idle share of the machine plus the cores the pool\'s tasks held', () => {
  // 1 s on 2 cores (200 jiffies): 50 idle -> 0.5 idle cores; the pool's tasks ran 200 ms -> 0.2 cores they
  // would get again.
  const a = reading(0, 0, 0, 0);
  assert.ok(Math.abs(spareCoresBetween(a, reading(50, 200, 200, 1000)) - 0.7) < 1e-9);
  // A saturated machine and no tasks: nothing spare (another thread of ours busy loading does not count).
  assert.equal(spareCoresBetween(a, reading(0, 200, 0, 1000)), 0);
  // Half of both cores idle.
  assert.ok(Math.abs(spareCoresBetween(a, reading(100, 200, 0, 1000)) - 1) < 1e-9);
  // No time passed: unknown.
  assert.equal(spareCoresBetween(a, a), Infinity);
});

test('SpareCpu: where /proc/stat cannot be read the pool is assumed to have a core; otherwise it samples', () => {
  const s = new SpareCpu(() => 0, 60_000, () => undefined);
  s.sample();
  assert.equal(s.spareCores, Infinity);
  s.close();
  const stats = [{ idle: 0, total: 0, cores: 2 }, { idle: 20, total: 200, cores: 2 }];
  let busy = 0;
  const t = new SpareCpu(() => busy, 60_000, () => stats.shift());
  busy = 10_000; // the pool's tasks held a core for far longer than this test ran
  t.sample();
  assert.ok(t.spareCores > 1, `idle 0.2 cores plus the pool's own time (${t.spareCores})`);
  t.close();
});
