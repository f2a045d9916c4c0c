/**
 * Leader election over a coordination.k8s.io/v1 Lease, with client-go's leaderelection semantics (which istiod
 * uses for its single-writer duties — CA root Secret, status writes): every replica serves xDS; one holds the
 * lease.
 * - acquire: create the Lease, or take it over once the holder has not renewed for leaseDuration, measured on our
 *   own clock from when we last saw the record change (no clock-skew assumptions), bumping leaseTransitions;
 * - renew every retryPeriod with optimistic concurrency (resourceVersion; a 409 means someone else wrote first);
 * - a leader that cannot renew within renewDeadline stops leading (and says so before anyone else can take over,
 *   because renewDeadline < leaseDuration);
 * - stop() releases the lease (holderIdentity cleared) so a successor need not wait out the duration.
 * Emits 'leading', 'stopped-leading' and 'leader' (the observed holder's identity).
 */
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { KubeClient } from './kube-client.js';
import { KubeApiError } from './kube-client.js';
import type { Logger } from '../../log/logger.js';

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector extends EventEmitter {
  readonly identity: string;
  private leading = false;
  private observedHolder = '';
  private observedKey = '';
  private observedAt = 0;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The attempt in flight, so stop() releases only after it (else its renew could land after the release). */
  private inflight: Promise<void> | undefined;
  private stopped = true;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(private readonly opts: LeaderElectorOptions) {
    super();
    this.identity = opts.identity ?? `${process.env.POD_NAME ?? os.hostname()}_${process.pid}`;
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.renewDeadlineMs < this.leaseMs)) throw new Error('leader election: renewDeadline must be shorter than leaseDuration');
  }

  isLeader(): boolean { return this.leading; }

  /** Identity of the holder we last saw ('' when none). */
  leader(): string { return this.observedHolder; }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases`;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      this.opts.log?.debug({ lease: this.opts.name, err: (e as Error).message }, 'leader election: attempt failed');
    }
    if (this.stopped) return;
    const now = performance.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.opts.log?.info({ lease: this.opts.name, identity: this.identity }, 'became leader');
        this.emit('leading');
      }
    } else if (this.leading && now - this.lastRenew > this.renewDeadlineMs) {
      this.leading = false;
      this.opts.log?.warn({ lease: this.opts.name, identity: this.identity }, 'lost leadership: could not renew');
      this.emit('stopped-leading');
    }
    this.schedule(this.retryMs);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.inflight = this.tick().finally(() => { this.inflight = undefined; });
    }, ms);
  }

  private observe(spec: LeaseSpec, rv: string): void {
    const key = `${spec.holderIdentity ?? ''}|${spec.renewTime ?? ''}|${rv}`;
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = performance.now();
    }
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      this.emit('leader', holder);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const c = this.opts.client;
    const now = microTime();
    const mine: LeaseSpec = { holderIdentity: this.identity, leaseDurationSeconds: Math.ceil(this.leaseMs / 1000), acquireTime: now, renewTime: now, leaseTransitions: 0 };
    let lease: any;
    try {
      lease = await c.request('GET', `${this.path}/${this.opts.name}`, {}, undefined, this.renewDeadlineMs);
    } catch (e) {
      if ((e as KubeApiError).statusCode !== 404) throw e;
      await c.request('POST', this.path, {}, {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.opts.name, namespace: this.opts.namespace }, spec: mine,
      }, this.renewDeadlineMs);
      this.observe(mine, '');
      return true;
    }
    const spec: LeaseSpec = lease.spec ?? {};
    const rv: string = lease.metadata?.resourceVersion ?? '';
    this.observe(spec, rv);
    const holder = spec.holderIdentity ?? '';
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    const expired = performance.now() - this.observedAt > durationMs;
    if (holder && holder !== this.identity && !expired) return false;
    const next: LeaseSpec = holder === this.identity
      ? { ...spec, renewTime: now, leaseDurationSeconds: mine.leaseDurationSeconds }
      : { ...mine, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 };
    try {
      const updated = await c.request('PUT', `${this.path}/${this.opts.name}`, {}, { ...lease, spec: next }, this.renewDeadlineMs);
      this.observe(next, updated?.metadata?.resourceVersion ?? '');
      return true;
    } catch (e) {
      if ((e as KubeApiError).statusCode === 409) return false;
      throw e;
    }
  }

  /** Stop; a leader releases the lease so another replica can take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inflight;
    if (!this.leading) return;
    this.leading = false;
    this.emit('stopped-leading');
    // A conflict (someone wrote in between) is retried with a fresh read; after that, best effort: the lease
    // expires on its own.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.opts.client.request('GET', `${this.path}/${this.opts.name}`, {}, undefined, 2000);
        if (lease?.spec?.holderIdentity !== this.identity) return;
        await this.opts.client.request('PUT', `${this.path}/${this.opts.name}`, {}, {
          ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() },
        }, 2000);
        return;
      } catch {
        // retry
      }
    }
  }
}
