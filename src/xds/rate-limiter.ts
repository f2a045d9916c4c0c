/**
 * Token bucket for new xDS streams (istiod's PILOT_MAX_REQUESTS_PER_SECOND, WaitForRequestLimit): a connect storm
 * is admitted at a steady rate instead of all at once; a stream waits up to a second for its token, then is refused
 * with RESOURCE_EXHAUSTED so the proxy reconnects (possibly to another replica).
 */
export class RateLimitExceeded extends Error {
  readonly code = 'ERR_RATE_LIMITED';
}

export class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private readonly queue: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly perSecond: number, private readonly burst: number) {
    this.tokens = burst;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }

  wait(timeoutMs = 1000): Promise<void> {
    if (this.perSecond <= 0) return Promise.resolve();
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) { this.tokens -= 1; return Promise.resolve(); }
    return new Promise((resolve, reject) => {
      const waiter = (): void => { clearTimeout(timer); resolve(); };
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(new RateLimitExceeded(`xDS connection rate limit (${this.perSecond}/s) exceeded; retry`));
      }, timeoutMs);
      this.queue.push(waiter);
      this.drain();
    });
  }

  private drain(): void {
    if (this.timer) return;
    this.refill();
    while (this.queue.length > 0 && this.tokens >= 1) { this.tokens -= 1; this.queue.shift()!(); }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.drain(); }, Math.max(1, ((1 - this.tokens) / this.perSecond) * 1000));
    }
  }

  pending(): number { return this.queue.length; }
}
