/**
 * One incremental (delta) ADS stream, with Envoy's semantics: wildcard and explicit subscriptions,
 * initial_resource_versions on reconnect, per-resource versions, removed_resources, nonce/ACK/NACK.
 * It shares the state-of-the-world path's generation and cache: a delta Resource wraps the same cached bytes.
 */
import type { DeltaDiscoveryRequest } from '../proto/discovery.js';
import { PendingResponse, deltaResourceEntry } from '../proto/discovery.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, isGeneratedType, shortType } from '../proto/type-urls.js';
import type { Proxy } from '../model/proxy.js';
import { resourceVersions, type ComputedResponse, type PushInfo } from '../push/push-engine.js';
import { BaseConnection, type ConnectionOptions, type Writable } from './connection-base.js';

export interface DeltaWatch {
  typeUrl: string;
  wildcard: boolean;
  subscribed: Set<string>;
  /** What the client holds: name → version (as it told us, or as we sent and it did not NACK). */
  clientVersions: Map<string, string>;
  /** clientVersions before the last send, restored if that send is NACKed. */
  beforeSend?: Map<string, string>;
  nonceSent?: string;
  nonceAcked?: string;
  lastSentAt?: number;
  lastAckedAt?: number;
  nackError?: string;
  lastSent?: ComputedResponse;
}

export type DeltaVerdict = 'initial' | 'subscribe' | 'ack' | 'nack' | 'stale' | 'unsupported';

/** The delta framing of a cached entry is cached too, keyed by the entry's identity (bytes are shared). */
const deltaEntries = new WeakMap<Buffer, Buffer>();

export class DeltaConnection extends BaseConnection {
  readonly kind = 'delta' as const;
  readonly watches = new Map<string, DeltaWatch>();

  constructor(proxy: Proxy, out: Writable, peer: string | (() => string), opts: ConnectionOptions) {
    super(proxy, peer, out, opts);
  }

  watched(): Array<{ typeUrl: string; names: string[] | undefined }> {
    return [...this.watches.values()].map((w) => ({ typeUrl: w.typeUrl, names: w.wildcard ? undefined : [...w.subscribed].sort() }));
  }

  lastComputed(typeUrl: string): ComputedResponse | undefined {
    return this.watches.get(typeUrl)?.lastSent;
  }

  onRequest(req: DeltaDiscoveryRequest): DeltaVerdict {
    if (!isGeneratedType(req.typeUrl)) return 'unsupported';
    let w = this.watches.get(req.typeUrl);
    let verdict: DeltaVerdict = 'ack';
    if (!w) {
      const wildcardType = this.proxy.generator === 'envoy' && (req.typeUrl === CLUSTER_TYPE || req.typeUrl === LISTENER_TYPE);
      // Legacy wildcard: a first request without names; explicit wildcard: "*".
      const wildcard = req.subscribe.includes('*') || (wildcardType && req.subscribe.length === 0);
      w = {
        typeUrl: req.typeUrl, wildcard, subscribed: new Set(req.subscribe.filter((n) => n !== '*')),
        clientVersions: new Map(Object.entries(req.initialResourceVersions)),
      };
      this.watches.set(req.typeUrl, w);
      return 'initial';
    }
    if (req.errorDetail) {
      this.stats.nacks++;
      w.nackError = req.errorDetail.message;
      if (req.responseNonce === w.nonceSent && w.beforeSend) w.clientVersions = w.beforeSend;
      if (req.responseNonce) this.answered(req.responseNonce);
      this.opts.log.warn({ proxy: this.proxy.id, type: shortType(req.typeUrl), nonce: req.responseNonce, err: req.errorDetail.message }, 'ADS: delta NACK');
      verdict = 'nack';
    } else if (req.responseNonce) {
      if (req.responseNonce === w.nonceSent) {
        this.stats.acks++;
        w.nonceAcked = req.responseNonce;
        w.lastAckedAt = Date.now();
        w.nackError = undefined;
        w.beforeSend = undefined;
        this.answered(req.responseNonce);
      } else verdict = 'stale';
    }
    // Subscription changes may ride on any request, ACK or not.
    let added = false;
    for (const n of req.subscribe) {
      if (n === '*') { if (!w.wildcard) { w.wildcard = true; added = true; } continue; }
      if (!w.subscribed.has(n)) { w.subscribed.add(n); added = true; }
    }
    for (const n of req.unsubscribe) {
      if (n === '*') { w.wildcard = false; continue; }
      w.subscribed.delete(n);
      w.clientVersions.delete(n);
    }
    return added && verdict !== 'nack' ? 'subscribe' : verdict;
  }

  deliver(typeUrl: string, res: ComputedResponse, info: PushInfo, force = false): Promise<void> {
    const w = this.watches.get(typeUrl);
    if (!w || this.closed) return Promise.resolve();
    if (this.holdBack(typeUrl)) return Promise.resolve();
    const versions = resourceVersions(res);
    const changed: Buffer[] = [];
    const present = new Set(res.names);
    const next = new Map(w.clientVersions);
    const resend = typeUrl === ENDPOINT_TYPE ? this.edsResendFor(info.pushVersion) : undefined;
    res.names.forEach((name, i) => {
      const mustResend = resend === 'all' || (resend !== undefined && resend.has(name));
      if (!mustResend && w.clientVersions.get(name) === versions[i]) return;
      let entry = deltaEntries.get(res.entries[i]!);
      if (!entry) { // one cached entry ⇔ one cache key ⇔ one name and version
        entry = deltaResourceEntry(name, versions[i]!, res.entries[i]!);
        deltaEntries.set(res.entries[i]!, entry);
      }
      changed.push(entry);
      next.set(name, versions[i]!);
    });
    // Removed: what the client holds that no longer exists (wildcard), or that it asked for and does not exist.
    const removed: string[] = [];
    for (const name of w.clientVersions.keys()) {
      if (!present.has(name) && (w.wildcard || w.subscribed.has(name))) { removed.push(name); next.delete(name); }
    }
    w.lastSent = res;
    if (changed.length === 0 && removed.length === 0 && !force) return Promise.resolve();
    if (typeUrl === CLUSTER_TYPE && changed.length > 0) {
      this.noteCdsSent(info.pushVersion, new Set(res.names.filter((n, i) => w.clientVersions.get(n) !== versions[i])));
    }
    const nonce = this.nextNonce();
    const buf = new PendingResponse(info.pushVersion, changed, typeUrl, nonce, removed);
    w.beforeSend = w.clientVersions;
    w.clientVersions = next;
    w.nonceSent = nonce;
    w.lastSentAt = Date.now();
    this.opts.log.debug({ proxy: this.proxy.id, type: shortType(typeUrl), pushVersion: info.pushVersion, resources: changed.length, removed: removed.length, bytes: buf.length, nonce }, 'ADS: delta push');
    this.opts.metrics?.responseSent(typeUrl, buf.length);
    return this.send(buf, nonce);
  }
}
