/**
 * Debouncer: coalesces bursts of config events into one PushRequest, as istiod's debounce(): wait until no event
 * has arrived for `afterMs` (PILOT_DEBOUNCE_AFTER, 100 ms), but never longer than `maxMs` (PILOT_DEBOUNCE_MAX, 10 s)
 * after the first event; and never start a push while the previous one is still running.
 */
export interface PushRequest {
  /** Full push: rebuild everything. Otherwise only endpoints of `edsHosts` changed (incremental EDS). */
  full: boolean;
  /** Config keys (kind/ns/name) that changed. */
  configsUpdated: Set<string>;
  /** Why: kind → count (pilot_push_triggers). */
  reasons: Map<string, number>;
  /**
   * When the first change of this batch was observed (performance.now() clock): the source's first notification
   * (a file watcher's event, before the source's own coalescing), so the quiet period and convergence count from
   * the change rather than from when the source finished reading it.
   */
  start: number;
  /** Events merged into this request. */
  events: number;
}

export function mergeRequests(a: PushRequest | undefined, b: PushRequest): PushRequest {
  if (!a) return b;
  const reasons = new Map(a.reasons);
  for (const [k, v] of b.reasons) reasons.set(k, (reasons.get(k) ?? 0) + v);
  return {
    full: a.full || b.full,
    configsUpdated: new Set([...a.configsUpdated, ...b.configsUpdated]),
    reasons,
    start: Math.min(a.start, b.start),
    events: a.events + b.events,
  };
}

export interface DebounceOptions { afterMs: number; maxMs: number; enableEdsDebounce?: boolean }

export class Debouncer {
  private pending: PushRequest | undefined;
  private lastEventAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;

  constructor(
    private readonly opts: DebounceOptions,
    private readonly push: (req: PushRequest) => Promise<void>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  enqueue(req: PushRequest): void {
    if (this.closed) return;
    this.pending = mergeRequests(this.pending, req);
    const now = this.now();
    // The quiet period runs from when the change was observed (a source that coalesces its own notifications
    // reports the first one's time), never from the future.
    this.lastEventAt = Math.max(this.lastEventAt, Math.min(now, req.start));
    // istiod: with EDS debounce disabled, endpoint-only changes skip the quiet period.
    if (this.opts.enableEdsDebounce === false && !this.pending.full) { this.schedule(0); return; }
    if (!this.timer) this.schedule(Math.max(0, this.opts.afterMs - (now - this.lastEventAt)));
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), ms);
  }

  private check(): void {
    this.timer = undefined;
    const req = this.pending;
    if (!req || this.closed) return;
    const now = this.now();
    const quiet = now - this.lastEventAt;
    const waited = now - req.start;
    const due = this.opts.enableEdsDebounce === false && !req.full;
    if (!due && quiet < this.opts.afterMs && waited < this.opts.maxMs) {
      this.schedule(Math.min(this.opts.afterMs - quiet, this.opts.maxMs - waited));
      return;
    }
    // The running push's completion starts this one at once (not a quiet period later).
    if (this.running) return;
    this.pending = undefined;
    this.running = true;
    this.push(req).finally(() => {
      this.running = false;
      if (this.pending && !this.timer) this.schedule(0);
    });
  }

  /** True while a request is waiting or a push is running. */
  busy(): boolean {
    return this.pending !== undefined || this.running;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
