/**
 * Spare CPU for the generation pool: the machine's idle cores plus what the pool's tasks use already (their cores
 * would be reused), sampled ten times a second from /proc/stat and the pool's own task time.
 *
 * Why: a worker only helps when a core is free to run it. On a saturated machine (measured here: a connect storm
 * with the load harness on the same two cores) sending generation to the pool cost 6–8% more wall time and CPU
 * than building inline — the snapshot is encoded for the worker, the worker decodes it and warms its own code,
 * and it takes CPU the main thread's peers needed. Where /proc/stat cannot be read, the pool is assumed to have a
 * core (the engine's cost rule alone decides).
 */
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

export interface CpuReading {
  /** /proc/stat's first line: aggregate jiffies. */
  idle: number;
  total: number;
  /** Cores the aggregate line covers. */
  cores: number;
  /** The pool's task time so far, ms, summed over its threads. */
  workerBusyMs: number;
  /** performance.now(), ms. */
  at: number;
}

/** Idle and total jiffies from /proc/stat's aggregate `cpu` line (idle + iowait count as idle). */
export function parseProcStat(text: string): { idle: number; total: number; cores: number } | undefined {
  const lines = text.split('\n');
  const first = lines[0]?.trim().split(/\s+/);
  if (!first || first[0] !== 'cpu') return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const v = first.slice(1, 9).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const idle = v[3]! + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  const cores = lines.filter((l) => /^cpu\d+\s/.test(l)).length || os.availableParallelism();
  return { idle, total, cores };
}

/** Spare cores between two readings: the idle share of the machine, plus the cores the pool's tasks held. */
export function spareCoresBetween(a: CpuReading, b: CpuReading): number {
  const dTotal = b.total - a.total;
  const dt = b.at - a.at;
  if (dTotal <= 0 || dt <= 0) return Infinity;
  const idleCores = (b.cores * (b.idle - a.idle)) / dTotal;
  return idleCores + Math.max(0, b.workerBusyMs - a.workerBusyMs) / dt;
}

function readStat(): { idle: number; total: number; cores: number } | undefined {
  try { return parseProcStat(fs.readFileSync('/proc/stat', 'utf8')); } catch { return undefined; }
}

export class SpareCpu {
  /** Spare cores over the last sampling interval; Infinity until measured or where it cannot be. */
  spareCores = Infinity;
  private last: CpuReading | undefined;
  private readonly timer: NodeJS.Timeout;

  /** `workerBusyMs`: the pool's task time so far. `readStat` is for tests. */
  constructor(private readonly workerBusyMs: () => number, intervalMs = 100,
    private readonly stat: () => { idle: number; total: number; cores: number } | undefined = readStat) {
    this.last = this.read();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private read(): CpuReading | undefined {
    const s = this.stat();
    return s ? { ...s, workerBusyMs: this.workerBusyMs(), at: performance.now() } : undefined;
  }

  sample(): void {
    const now = this.read();
    if (!now) { this.spareCores = Infinity; return; }
    if (this.last) this.spareCores = spareCoresBetween(this.last, now);
    this.last = now;
  }

  close(): void { clearInterval(this.timer); }
}
