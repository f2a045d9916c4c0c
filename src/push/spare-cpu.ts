/**
 * Spare CPU for the generation pool: the machine's idle cores plus what this process's worker threads use already
 * (they would be reused), sampled a few times a second from /proc/stat, process.cpuUsage() and the main thread's
 * event-loop utilization.
 *
 * Why: a worker only helps when a core is free to run it. On a saturated machine (measured here: a connect storm
 * with the load harness on the same two cores) sending generation to the pool cost 6–8% more wall time and CPU
 * than building inline — the snapshot is encoded for the worker, the worker decodes it and warms its own code,
 * and it takes CPU the main thread's peers needed. Where /proc/stat cannot be read, the pool is assumed to have a
 * core (the engine's cost rule alone decides).
 */
import fs from 'node:fs';
import os from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

export interface CpuReading {
  /** /proc/stat's first line: aggregate jiffies. */
  idle: number;
  total: number;
  /** Cores the aggregate line covers. */
  cores: number;
  /** process.cpuUsage(): user + system of every thread of this process, µs. */
  processUs: number;
  /** performance.now(), ms. */
  at: number;
  /** The main thread's event-loop utilization so far. */
  elu: EventLoopUtilization;
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

/**
 * Spare cores between two readings: the idle share of the machine, plus this process's CPU beyond its main thread
 * (its workers'), in cores.
 */
export function spareCoresBetween(a: CpuReading, b: CpuReading): number {
  const dTotal = b.total - a.total;
  const dt = b.at - a.at;
  if (dTotal <= 0 || dt <= 0) return Infinity;
  const idleCores = (b.cores * (b.idle - a.idle)) / dTotal;
  const processCores = (b.processUs - a.processUs) / 1000 / dt;
  const mainCores = performance.eventLoopUtilization(b.elu, a.elu).utilization;
  return idleCores + Math.max(0, processCores - mainCores);
}

function readNow(): CpuReading | undefined {
  let stat;
  try { stat = parseProcStat(fs.readFileSync('/proc/stat', 'utf8')); } catch { return undefined; }
  if (!stat) return undefined;
  const u = process.cpuUsage();
  return { ...stat, processUs: u.user + u.system, at: performance.now(), elu: performance.eventLoopUtilization() };
}

export class SpareCpu {
  /** Spare cores over the last sampling interval; Infinity until measured or where it cannot be. */
  spareCores = Infinity;
  private last: CpuReading | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 100, private readonly read: () => CpuReading | undefined = readNow) {
    this.last = read();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const now = this.read();
    if (!now) { this.spareCores = Infinity; return; }
    if (this.last) this.spareCores = spareCoresBetween(this.last, now);
    this.last = now;
  }

  close(): void { clearInterval(this.timer); }
}
