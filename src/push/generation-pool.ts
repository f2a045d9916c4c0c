/**
 * Where generation runs: a piscina worker pool (default: one thread per core but one), or inline on the main thread
 * (`--workers 0`, for debugging). Both run the same pure generateResources(), so their output is byte-identical.
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { PushContext } from '../model/push-context.js';
import type { SnapshotRef } from '../model/snapshot-codec.js';
import type { ProxyScope } from '../model/scope.js';
import { generateResources, type GeneratedResource } from '../../workers/networking/generate-resources.js';
import type { GenerateItem, GenerateResult, GenerateTask } from '../../workers/generate.js';
import { SpareCpu } from './spare-cpu.js';
import { WORKER_LOADED } from './worker-loaded.js';

const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../workers/generate.js');

export interface GenerationPool {
  readonly threads: number;
  /**
   * What a task costs beyond the generation itself, in ms (EWMA of round trip minus the worker's own time:
   * cloning the task and results, message passing, queueing). The engine generates inline below it.
   */
  readonly overheadMs?: number;
  /** Cores free for the workers (src/push/spare-cpu.ts); the engine generates inline when less than half a core is. */
  readonly spareCores?: number;
  /** Batches handed to the pool (queued or posted) and not yet finished. */
  readonly inFlight?: number;
  /**
   * Threads loaded and able to take a task now. Threads start on demand and stop when idle (WorkerPool), so this
   * is 0 until the first batch worth a worker; undefined for pools whose threads always run.
   */
  readonly running?: number;
  /** Toward `want` threads running: start one more in the background (the engine builds inline meanwhile). */
  wake?(want: number): void;
  /** `snapshot` is called only when a worker needs the context (encoding it is skipped for inline generation). */
  generate(ctx: PushContext, snapshot: () => SnapshotRef, scope: ProxyScope, typeUrl: string, names: string[]): Promise<GeneratedResource[]>;
  /** Resolves once the threads that must run before the xDS port opens have loaded (WorkerPool: none, they start on demand). */
  ready?(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

class InlinePool implements GenerationPool {
  readonly threads = 0;
  async generate(ctx: PushContext, _s: () => SnapshotRef, scope: ProxyScope, typeUrl: string, names: string[]): Promise<GeneratedResource[]> {
    return generateResources(ctx, scope, typeUrl, names);
  }
  async close(): Promise<void> {}
}

/**
 * Threads stop after this long without a task. Each costs ~36 MB of RSS (its own V8 heap, the Envoy protos and
 * the encoders: serve on the 1,000-service mesh, 3 s after /ready, 206 vs 168 MB), and a mesh whose pushes are
 * small batches never gives one work: in the isolation scenario (5,000 proxies, warm-up on) the storm and the
 * churn posted no task at all.
 */
export const WORKER_IDLE_MS = 30_000;

/** Resources queued per thread at which the queue is posted at once rather than at the end of the turn. */
const FLUSH_RESOURCES = 256;

class WorkerPool implements GenerationPool {
  private readonly piscina: Piscina;
  /** Task time so far (the workers' own measure), summed over threads. */
  private busyMs = 0;
  inFlight = 0;
  running = 0;
  private waking = 0;
  private readonly spare = new SpareCpu(() => this.busyMs);
  overheadMs = 1;
  constructor(readonly threads: number, idleMs = WORKER_IDLE_MS, onError: (err: Error) => void = () => undefined) {
    this.piscina = new Piscina({ filename: WORKER_FILE, minThreads: 0, maxThreads: threads, idleTimeout: idleMs });
    // A thread that fails outside a task (a task's failure rejects the task): piscina removes it and starts another
    // on demand; without a listener its 'error' event would end the process.
    this.piscina.on('error', (err: Error) => onError(err));
    this.piscina.on('message', (m: unknown) => {
      if (typeof m !== 'object' || m === null || !(WORKER_LOADED in m)) return;
      this.running++;
    });
    this.piscina.on('workerDestroy', () => { this.running = Math.max(0, this.running - 1); });
  }

  /**
   * Start one more thread, up to `want`, with an empty task (a thread loads the Envoy protos and compiles its
   * encoders first, ~0.3 s of CPU; the caller builds inline meanwhile). One at a time: the next batch that finds
   * every running thread busy starts the next, so a burst never starts threads that cores are not free to run.
   */
  wake(want: number): void {
    if (this.waking > 0 || this.running >= Math.min(want, this.threads)) return;
    this.waking++;
    void (this.piscina.run(null) as Promise<unknown>).catch(() => undefined).finally(() => { this.waking--; });
  }

  /** Threads start on demand: nothing to wait for before the xDS port opens. */
  async ready(): Promise<void> {}
  get spareCores(): number { return this.spare.spareCores; }
  /** Batches asked for since the last flush, to be posted together. */
  private queued: Array<{ snapshot: () => SnapshotRef; item: GenerateItem; resolve(r: GeneratedResource[]): void; reject(e: unknown): void }> = [];

  /**
   * Batches asked for in the same turn of the event loop (a push plans every scope group's types at once) are posted
   * together, split into at most one task per thread, instead of one task each: a task costs a post on the main thread
   * (~90 µs in piscina) and its results a post back (~40 µs), against ~33 µs per resource generated, and a cold push of
   * 40 namespaces posted 160 tasks of ~27 resources (bench/pool.ts).
   */
  generate(_ctx: PushContext, snapshot: () => SnapshotRef, scope: ProxyScope, typeUrl: string, names: string[]): Promise<GeneratedResource[]> {
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => this.flush());
      this.queued.push({ snapshot, item: { scope, typeUrl, names }, resolve, reject });
      this.queuedNames += names.length;
      this.inFlight++;
      // Enough for every thread to start on while the main thread goes on planning: post now.
      if (this.queuedNames >= FLUSH_RESOURCES * this.threads) this.flush();
    });
  }
  private queuedNames = 0;

  private flush(): void {
    const queued = this.queued;
    this.queued = [];
    this.queuedNames = 0;
    if (queued.length === 0) return;
    // Batches of one context share its snapshot (the engine hands out one function per context).
    const bySnapshot = new Map<() => SnapshotRef, typeof queued>();
    for (const q of queued) {
      const l = bySnapshot.get(q.snapshot);
      if (l) l.push(q); else bySnapshot.set(q.snapshot, [q]);
    }
    for (const [snapshot, group] of bySnapshot) {
      // At most one task per thread: largest batch first, each into the task with the fewest resources so far.
      const tasks: Array<typeof queued> = Array.from({ length: Math.min(this.threads, group.length) }, () => []);
      const load = tasks.map(() => 0);
      for (const q of [...group].sort((a, b) => b.item.names.length - a.item.names.length)) {
        const i = load.indexOf(Math.min(...load));
        tasks[i]!.push(q);
        load[i]! += q.item.names.length;
      }
      let ref: SnapshotRef;
      try { ref = snapshot(); } catch (err) { for (const q of group) { this.inFlight--; q.reject(err); } continue; }
      for (const t of tasks) void this.post(ref, t);
    }
  }

  private async post(snapshot: SnapshotRef, batch: typeof this.queued): Promise<void> {
    const task: GenerateTask = { snapshot, items: batch.map((q) => q.item) };
    const t0 = performance.now();
    let r: GenerateResult;
    try {
      r = await (this.piscina.run(task) as Promise<GenerateResult>);
    } catch (err) {
      for (const q of batch) q.reject(err);
      return;
    } finally {
      this.inFlight -= batch.length;
    }
    this.busyMs += r.ms;
    this.overheadMs += 0.1 * (Math.max(0, performance.now() - t0 - r.ms) - this.overheadMs);
    batch.forEach((q, i) => q.resolve(r.resources[i] ?? []));
  }
  get queueSize(): number { return this.piscina.queueSize; }
  async close(): Promise<void> { this.spare.close(); await this.piscina.destroy(); }
}

/**
 * One thread per core but one: the main thread, which owns every proxy connection, keeps a core to itself. On the
 * 2-core machines here, before batches were limited to spare cores, a second worker only took CPU from it
 * (bench/RESULTS.md, workers 02:05: 2 and 4 threads lost 2–4% on a storm); each thread adds 70–80 MB of RSS.
 */
export function defaultWorkerCount(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, cores - 1);
}

export function createGenerationPool(workers: number, idleMs = WORKER_IDLE_MS, onError?: (err: Error) => void): GenerationPool {
  return workers <= 0 ? new InlinePool() : new WorkerPool(workers, idleMs, onError);
}
