/** The hot-path metrics render exactly as prom-client's own Counter and Histogram would, for the same observations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/monitoring/fast-metrics.js';
import { rng } from '../helpers/rng.js';

test('FastCounter and FastHistogram match prom-client text output (labelled and not, 2,000 random observations)', async () => {
  const next = rng(42);
  const prom = new Registry(), fast = new Registry();
  const buckets = [0.01, 0.1, 1, 3, 5, 10, 20, 30];
  const ph = new Histogram({ registers: [prom], name: 'h_typed', help: 'typed', labelNames: ['type'], buckets });
  const fh = new FastHistogram('h_typed', 'typed', buckets, fast, 'type');
  const pu = new Histogram({ registers: [prom], name: 'h_plain', help: 'plain', buckets });
  const fu = new FastHistogram('h_plain', 'plain', buckets, fast);
  const pc = new Counter({ registers: [prom], name: 'c_typed', help: 'count', labelNames: ['type'] });
  const fc = new FastCounter('c_typed', 'count', fast, 'type');
  const pp = new Counter({ registers: [prom], name: 'c_plain', help: 'plain count' });
  const fp = new FastCounter('c_plain', 'plain count', fast);
  assert.equal(await fast.metrics(), await prom.metrics(), 'before any observation');
  const types = ['cds', 'eds', 'lds', 'rds'];
  for (let i = 0; i < 2000; i++) {
    const type = types[Math.floor(next() * types.length)]!;
    // Values on bucket bounds too (a bound is inclusive).
    const v = next() < 0.2 ? buckets[Math.floor(next() * buckets.length)]! : next() * 40;
    ph.observe({ type }, v); fh.observe(v, type);
    pu.observe(v); fu.observe(v);
    pc.inc({ type }); fc.inc(type);
    if (next() < 0.1) { pp.inc(); fp.inc(); }
  }
  assert.equal(await fast.metrics(), await prom.metrics());
});
