/**
 * What both ADS variants share: the proxy, writes with backpressure, and waiting for the ACK of a push.
 *
 * Slow readers: when the stream's buffer is full, further pushes are not queued behind it; the types are marked
 * pending and, when the stream drains, the latest config for them is computed and sent once (coalesced).
 */
import type { PendingResponse } from '../proto/discovery.js';
import type { Proxy } from '../model/proxy.js';
import type { ComputedResponse, PushInfo, PushTarget } from '../push/push-engine.js';
import type { Logger } from '../log/logger.js';
import type { XdsMetrics } from '../monitoring/metrics.js';

export interface Writable {
  /** A framed response, or one grpc-js frames when it sends it (PendingResponse, see serializeResponse). */
  write(chunk: Buffer | PendingResponse): boolean;
  once(event: 'drain', cb: () => void): unknown;
}

export interface ConnectionOptions {
  log: Logger;
  /** How long a push waits for the proxy's ACK before the engine moves on (pacing, not correctness). */
  ackTimeoutMs: number;
  /** Called on drain with the types whose pushes were held back: recompute and deliver the latest. */
  resync: (con: BaseConnection, types: string[]) => void;
  metrics?: XdsMetrics;
}

let connectionCounter = 0;

/**
 * Deadlines of pushes waiting for an ACK, in the order they were sent. One queue per timeout (every connection of
 * a server waits the same ackTimeoutMs), so deadlines arrive in send order: one timer for the oldest replaces a
 * timer per push (a 5,000-proxy connect storm sends 20,000 responses; a timer each cost ~40 ms of main thread plus
 * their garbage). An entry whose ACK came first is skipped when it expires.
 */
class AckDeadlines {
  private queue: Array<{ at: number; con: BaseConnection; nonce: string }> = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  add(at: number, con: BaseConnection, nonce: string): void {
    this.queue.push({ at, con, nonce });
    if (!this.timer) this.arm();
  }

  private arm(): void {
    const next = this.queue[this.head];
    if (!next) { this.queue = []; this.head = 0; return; }
    this.timer = setTimeout(() => this.expire(), Math.max(0, next.at - performance.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.queue.length && this.queue[this.head]!.at <= now) {
      const { con, nonce } = this.queue[this.head++]!;
      con.timedOut(nonce);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) { this.queue = this.queue.slice(this.head); this.head = 0; }
    this.arm();
  }
}

const ackDeadlines = new Map<number, AckDeadlines>();
function deadlinesFor(timeoutMs: number): AckDeadlines {
  let d = ackDeadlines.get(timeoutMs);
  if (!d) ackDeadlines.set(timeoutMs, (d = new AckDeadlines()));
  return d;
}

export abstract class BaseConnection implements PushTarget {
  readonly conId: string;
  readonly connectedAt = new Date();
  closed = false;
  scopeKey?: string;
  stats = { responses: 0, bytes: 0, acks: 0, nacks: 0, coalesced: 0 };
  private readonly ackWaiters = new Map<string, () => void>();
  private blocked = false;
  private readonly pendingTypes = new Set<string>();
  private nonceCounter = 0;
  /** Nonces are the stream's counter and this stream's random suffix: unique on the stream and across reconnects. */
  private readonly nonceSuffix = Math.random().toString(36).slice(2, 8);
  /**
   * The push in which CDS was last sent, and the clusters it (re)sent. Envoy re-initialises an updated cluster and
   * keeps it warming until it receives that cluster's ClusterLoadAssignment again, so EDS must follow CDS within
   * the same push even when the endpoints did not change (istiod always pushes EDS after CDS).
   */
  protected cdsSent: { pushVersion: string; clusters: Set<string> | 'all' } | undefined;

  /**
   * The peer address, read when first asked for (debug endpoints, logs): grpc-js's getPeer goes through the HTTP/2
   * session's socket proxy to a getpeername call, per connection of a connect storm, for a value rarely read.
   */
  get peer(): string {
    if (typeof this.peerOf === 'function') this.peerOf = this.peerOf();
    return this.peerOf;
  }

  constructor(readonly proxy: Proxy, private peerOf: string | (() => string), private readonly out: Writable, protected readonly opts: ConnectionOptions) {
    this.conId = `${proxy.id}-${++connectionCounter}`;
  }

  abstract readonly kind: 'sotw' | 'delta';
  abstract watched(): Array<{ typeUrl: string; names: string[] | undefined }>;
  abstract lastComputed(typeUrl: string): ComputedResponse | undefined;
  abstract deliver(typeUrl: string, res: ComputedResponse, info: PushInfo, force?: boolean): Promise<void>;

  protected nextNonce(): string {
    return `${++this.nonceCounter}-${this.nonceSuffix}`;
  }

  /** Record that CDS went out in this push, so EDS for those clusters is resent in the same push. */
  protected noteCdsSent(pushVersion: string, clusters: Set<string> | 'all'): void {
    this.cdsSent = { pushVersion, clusters };
  }

  /** Clusters whose EDS must be resent in this push (because CDS just updated them). */
  protected edsResendFor(pushVersion: string): Set<string> | 'all' | undefined {
    return this.cdsSent?.pushVersion === pushVersion ? this.cdsSent.clusters : undefined;
  }

  /** True when the push must be held back (coalesced) because the proxy is not reading. */
  protected holdBack(typeUrl: string): boolean {
    if (!this.blocked) return false;
    this.pendingTypes.add(typeUrl);
    this.stats.coalesced++;
    return true;
  }

  /** Write a framed response; returns a promise for its ACK (or NACK, or timeout, or close). */
  protected send(buf: Buffer | PendingResponse, nonce: string): Promise<void> {
    this.stats.responses++;
    this.stats.bytes += buf.length;
    const acked = new Promise<void>((resolve) => this.ackWaiters.set(nonce, resolve));
    deadlinesFor(this.opts.ackTimeoutMs).add(performance.now() + this.opts.ackTimeoutMs, this, nonce);
    const sendStart = performance.now();
    const flushed = this.out.write(buf);
    this.opts.metrics?.sendDone(performance.now() - sendStart);
    if (!flushed) {
      this.blocked = true;
      this.out.once('drain', () => {
        this.blocked = false;
        const types = [...this.pendingTypes];
        this.pendingTypes.clear();
        if (types.length > 0 && !this.closed) this.opts.resync(this, types);
      });
    }
    return acked;
  }

  /** The proxy answered a nonce (ACK or NACK): release the push waiting for it. */
  protected answered(nonce: string): void {
    const w = this.ackWaiters.get(nonce);
    if (w) { this.ackWaiters.delete(nonce); w(); }
  }

  /** The push with this nonce waited ackTimeoutMs: the engine moves on (the proxy may still ACK it later). */
  timedOut(nonce: string): void {
    this.answered(nonce);
  }

  close(): void {
    this.closed = true;
    const waiters = [...this.ackWaiters.values()];
    this.ackWaiters.clear();
    for (const w of waiters) w();
  }
}
