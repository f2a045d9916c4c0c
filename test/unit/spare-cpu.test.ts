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

function reading(idle: number, total: number, processUs: number, at: number, active: number, eluIdle: number): CpuReading {
  return { idle, total, cores: 2, processUs, at, elu: { idle: eluIdle, active, utilization: active / (active + eluIdle || 1) } };
}

test('spare cores: idle share of the machine plus what this process uses beyond its main thread', () => {
  // 1 s on 2 cores (200 jiffies): 50 idle -> 0.5 idle cores. The process used 1.2 cores, its main thread 1.0
  // (busy all second): its workers held 0.2 cores, which they would get again.
  const a = reading(0, 0, 0, 0, 0, 0);
  const b = reading(50, 200, 1_200_000, 1000, 1000, 0);
  assert.ok(Math.abs(spareCoresBetween(a, b) - 0.7) < 1e-9, String(spareCoresBetween(a, b)));
  // A saturated machine with idle workers: nothing spare.
  assert.equal(spareCoresBetween(a, reading(0, 200, 1_000_000, 1000, 1000, 0)), 0);
  // A half-busy main thread and no other load: both cores' idle time counts.
  assert.ok(Math.abs(spareCoresBetween(a, reading(150, 200, 500_000, 1000, 500, 500)) - 1.5) < 1e-9);
  // No time passed: unknown.
  assert.equal(spareCoresBetween(a, a), Infinity);
});

test('SpareCpu: where /proc/stat cannot be read the pool is assumed to have a core', () => {
  const s = new SpareCpu(60_000, () => undefined);
  s.sample();
  assert.equal(s.spareCores, Infinity);
  s.close();
  const seq = [reading(0, 0, 0, 0, 0, 0), reading(0, 200, 1_000_000, 1000, 1000, 0)];
  const t = new SpareCpu(60_000, () => seq.shift());
  t.sample();
  assert.equal(t.spareCores, 0);
  t.close();
});
