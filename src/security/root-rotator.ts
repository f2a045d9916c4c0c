/**
 * Automatic rotation of the self-signed root before it expires: istiod's SelfSignedCARootCertRotator
 * (security/pkg/pki/ca/selfsignedcarootcertrotator.go) with its knobs (pilot/pkg/bootstrap/istio_ca.go):
 *
 * - CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL (1h): how often the root is checked; 0 turns the rotator off;
 * - CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE (20): rotate once the root's remaining life is below this
 *   percentage of its whole life (notAfter − notBefore, as istiod's CertUtil.GetWaitTime);
 * - CITADEL_ENABLE_JITTER_FOR_ROOT_CERT_ROTATOR (true): the first check waits a random time in [0, interval) more,
 *   so replicas started together do not check (and, after a Lease hand-over, rotate) at the same moment.
 *
 * Only a self-signed CA rotates (istiod never starts the rotator for a plugged-in `cacerts` CA), and only where this
 * instance writes the root: the Lease leader in Kubernetes. A non-leader skips the check's rotation; it follows the
 * leader's rotation through its watch of `istio-ca-secret` (ca-store-kube.ts). The rotation itself is
 * CertificateAuthority.rotateRoot(): a new root signs from then on, the previous one stays in the trust bundle until
 * it expires, and SDS pushes ROOTCA and new leaves to connected proxies (its `rootsChanged` event).
 *
 * Log lines name root serials and validity, never key material.
 */
import type { Logger } from '../log/logger.js';
import { CaNotWriterError, type CertificateAuthority } from './ca.js';

/** istiod's DefaultSelfSignedRootCertCheckInterval. */
export const DEFAULT_ROOT_CHECK_INTERVAL_MS = 3600_000;
/** istiod's DefaultRootCertGracePeriodPercentile. */
export const DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE = 20;

export interface RootRotatorOptions {
  ca: CertificateAuthority;
  /** Time between checks; ≤ 0 means never check (istiod starts no rotator then). */
  checkIntervalMs?: number;
  /** 0..100: rotate when remaining life < this percentage of the root's whole life. */
  gracePeriodPercentile?: number;
  /** Delay the first check by a random time in [0, interval) (istiod: enableJitter, default true). */
  jitter?: boolean;
  log?: Logger;
  /** For tests: the random source of the jitter (0 ≤ x < 1). */
  random?: () => number;
}

/** What one check did. */
export type RootCheckOutcome = 'rotated' | 'not-due' | 'plugged-in' | 'not-leader' | 'busy' | 'failed';

/**
 * How long until the root enters its grace period (≤ 0: rotate now). istiod's GetWaitTime: the grace period is the
 * percentile of the certificate's whole life; an expired root is due at once.
 */
export function rootWaitMs(notBefore: Date, notAfter: Date, percentile: number, now: number): number {
  const life = notAfter.getTime() - notBefore.getTime();
  const grace = (life * percentile) / 100;
  return notAfter.getTime() - now - grace;
}

export class RootRotator {
  readonly checkIntervalMs: number;
  readonly gracePeriodPercentile: number;
  readonly jitterMs: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<RootCheckOutcome>;
  private stopped = false;
  /** Counters for tests and debug. */
  readonly stats = { checks: 0, rotations: 0, failures: 0 };

  constructor(private readonly opts: RootRotatorOptions) {
    this.checkIntervalMs = opts.checkIntervalMs ?? DEFAULT_ROOT_CHECK_INTERVAL_MS;
    const p = opts.gracePeriodPercentile ?? DEFAULT_ROOT_GRACE_PERIOD_PERCENTILE;
    if (!Number.isFinite(p) || p < 0 || p > 100) throw new RangeError(`root grace period percentile ${p}: expected 0..100`);
    this.gracePeriodPercentile = p;
    const random = opts.random ?? Math.random;
    this.jitterMs = (opts.jitter ?? true) && this.checkIntervalMs > 0 ? Math.floor(random() * this.checkIntervalMs) : 0;
  }

  /**
   * Start checking: the first check after jitter + one interval, then every interval (istiod sleeps the jitter, then
   * starts its ticker). The timers never keep the process alive. Does nothing for a plugged-in CA or interval ≤ 0.
   */
  start(): void {
    if (this.stopped || this.timer) return;
    const { ca, log } = this.opts;
    if (this.checkIntervalMs <= 0) {
      log?.info('CA: root rotator off (CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL is 0)');
      return;
    }
    if (ca.mode !== 'self-signed') {
      log?.info({ mode: ca.mode }, 'CA: root rotator not started: only a self-signed root is rotated; replace cacerts to rotate a plugged-in CA');
      return;
    }
    log?.info({ checkIntervalMs: this.checkIntervalMs, gracePeriodPercentile: this.gracePeriodPercentile, jitterMs: this.jitterMs, ...this.rootFields('root') },
      'CA: root rotator started');
    this.schedule(this.jitterMs + this.checkIntervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule(this.checkIntervalMs));
    }, ms);
    this.timer.unref();
  }

  private rootFields(prefix: string): Record<string, string> {
    const r = this.opts.ca.signingRootInfo();
    return { [`${prefix}Serial`]: r.serialNumber, [`${prefix}NotAfter`]: r.notAfter.toISOString() };
  }

  /** One check (the timer's job; tests call it with a chosen clock). Never throws. */
  check(now: number = Date.now()): Promise<RootCheckOutcome> {
    if (this.running) return Promise.resolve('busy');
    this.running = this.checkOnce(now).finally(() => { this.running = undefined; });
    return this.running;
  }

  private async checkOnce(now: number): Promise<RootCheckOutcome> {
    const { ca, log } = this.opts;
    this.stats.checks++;
    if (ca.mode !== 'self-signed') return 'plugged-in';
    const root = ca.signingRootInfo();
    const waitMs = rootWaitMs(root.notBefore, root.notAfter, this.gracePeriodPercentile, now);
    if (waitMs > 0) {
      log?.debug({ ...this.rootFields('root'), rotateInMs: Math.round(waitMs) }, 'CA: root is not about to expire; no rotation');
      return 'not-due';
    }
    if (!ca.canRotateRoot()) {
      // istiod's read-only replicas: the leader rotates and this one follows the stored root.
      log?.debug(this.rootFields('root'), 'CA: root is due for rotation; not the leader, the leader rotates it');
      return 'not-leader';
    }
    const before = this.rootFields('oldRoot');
    try {
      await ca.rotateRoot();
    } catch (e) {
      if (e instanceof CaNotWriterError) return 'not-leader';
      this.stats.failures++;
      log?.error({ ...before, err: (e as Error).message }, 'CA: automatic root rotation failed; the current root stays, retried at the next check');
      return 'failed';
    }
    this.stats.rotations++;
    log?.info({ ...before, ...this.rootFields('newRoot'), bundle: ca.rootCount(), gracePeriodPercentile: this.gracePeriodPercentile },
      'CA: self-signed root rotated before expiry');
    return 'rotated';
  }
}
