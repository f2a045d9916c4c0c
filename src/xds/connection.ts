/**
 * One state-of-the-world ADS stream: per-type subscriptions, nonces, versions, ACK/NACK, as istiod's
 * xds.Connection and its shouldRespond(). All per-stream state lives in this one object.
 */
import { PendingResponse, reuseNames, type DiscoveryRequest, type NamesMemo } from '../proto/discovery.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, isGeneratedType, shortType } from '../proto/type-urls.js';
import type { Proxy } from '../model/proxy.js';
import { nameIndex, type ComputedResponse, type PushInfo } from '../push/push-engine.js';
import { BaseConnection, type ConnectionOptions, type Writable } from './connection-base.js';

export interface WatchedResource {
  typeUrl: string;
  /** Requested names; undefined means wildcard. */
  names: string[] | undefined;
  nonceSent?: string;
  versionSent?: string;
  versionAcked?: string;
  nonceAcked?: string;
  lastSentAt?: number;
  lastAckedAt?: number;
  /** Last NACK's message, cleared by the next ACK. */
  nackError?: string;
  /** The full response the proxy now holds (shared with its scope group; not a copy). */
  lastSent?: ComputedResponse;
  /** The last request's resource_names bytes and `names` (onRequest's reuseNames takes them for an equal ACK). */
  namesMemo?: NamesMemo;
}

/**
 * Requested names as one shared, sorted array per distinct set. Every ACK repeats the names (Envoy's EDS request
 * lists every cluster it knows — 1,000 names per proxy when a proxy sees 1,000 services), and proxies of one scope
 * ask for the same set: without this each request kept its own sorted copy and every ACK sorted and joined both
 * lists to compare them. An ACK that repeats the stream's names in the same order costs one pass and no allocation.
 */
const namesIntern = new Map<string, Array<readonly string[]>>();
const MAX_INTERNED = 10_000;

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function canonicalNames(incoming: readonly string[], current: readonly string[] | undefined): string[] {
  if (current && sameNames(incoming, current)) return current as string[];
  // Envoy usually lists names in the order it got them (sorted, from us): sort only when they are not.
  let sorted = true;
  for (let i = 1; i < incoming.length; i++) if (incoming[i - 1]! > incoming[i]!) { sorted = false; break; }
  const names = sorted ? incoming : [...incoming].sort();
  // Interned by length and first and last name, then compared in full (no joined key to build and hash).
  const key = `${names.length}|${names[0] ?? ''}|${names[names.length - 1] ?? ''}`;
  let bucket = namesIntern.get(key);
  const found = bucket?.find((c) => sameNames(names, c));
  if (found) return found as string[];
  if (!bucket || bucket.length >= 16) {
    if (namesIntern.size >= MAX_INTERNED) namesIntern.clear();
    namesIntern.set(key, (bucket = []));
  }
  const copy = sorted ? [...incoming] : (names as string[]);
  bucket.push(copy);
  return copy;
}

/** A names memo per canonical names array (shared by the streams that request those names). */
const memosByNames = new WeakMap<readonly string[], NamesMemo>();

export type RequestVerdict = 'initial' | 'ack' | 'ack-resubscribe' | 'nack' | 'stale' | 'unsupported';

export class XdsConnection extends BaseConnection {
  readonly kind = 'sotw' as const;
  readonly watches = new Map<string, WatchedResource>();

  constructor(proxy: Proxy, out: Writable, peer: string | (() => string), opts: ConnectionOptions) {
    super(proxy, peer, out, opts);
  }

  watched(): Array<{ typeUrl: string; names: string[] | undefined }> {
    return [...this.watches.values()].map((w) => ({ typeUrl: w.typeUrl, names: w.names }));
  }

  lastComputed(typeUrl: string): ComputedResponse | undefined {
    return this.watches.get(typeUrl)?.lastSent;
  }

  /**
   * After a request's names were taken (initial or ACK): keep their bytes with the canonical names they became, so
   * an ACK that repeats those bytes reads as these names without decoding. Not copied again when this request
   * already reused them.
   */
  private rememberNames(w: WatchedResource, req: DiscoveryRequest): void {
    if (!req.namesRaw || !w.names) { w.namesMemo = undefined; return; }
    if (req.resourceNames === w.names && w.namesMemo?.names === w.names) return;
    // Proxies of one scope group ask for the same canonical names in the same bytes: they share one memo.
    const shared = memosByNames.get(w.names);
    if (shared && shared.raw.equals(req.namesRaw)) { w.namesMemo = shared; return; }
    w.namesMemo = { raw: Buffer.from(req.namesRaw), names: w.names };
    memosByNames.set(w.names, w.namesMemo);
  }

  private isWildcardType(typeUrl: string): boolean {
    // Envoy's CDS and LDS are wildcard when no names are given; proxyless gRPC always names what it wants.
    return this.proxy.generator === 'envoy' && (typeUrl === CLUSTER_TYPE || typeUrl === LISTENER_TYPE);
  }

  /** Classify a request and update subscription state (istiod's shouldRespond). */
  onRequest(req: DiscoveryRequest): RequestVerdict {
    if (!isGeneratedType(req.typeUrl)) return 'unsupported';
    const w = this.watches.get(req.typeUrl);
    reuseNames(req, w?.namesMemo);
    const names = req.resourceNames.length === 0 && this.isWildcardType(req.typeUrl) ? undefined : canonicalNames(req.resourceNames, w?.names);
    if (req.errorDetail) {
      if (w) {
        this.stats.nacks++;
        w.nackError = req.errorDetail.message;
        if (req.responseNonce === w.nonceSent) this.answered(req.responseNonce);
      }
      // The proxy keeps its last accepted config; nothing is resent until config changes.
      this.opts.log.warn({ proxy: this.proxy.id, type: shortType(req.typeUrl), nonce: req.responseNonce, err: req.errorDetail.message }, 'ADS: NACK');
      return 'nack';
    }
    if (!w || req.responseNonce === '') {
      // Initial request for this type on this stream (or a reconnect that carries its old version).
      const fresh: WatchedResource = { typeUrl: req.typeUrl, names, versionAcked: req.versionInfo || undefined };
      this.watches.set(req.typeUrl, fresh);
      this.rememberNames(fresh, req);
      return 'initial';
    }
    if (req.responseNonce !== w.nonceSent) return 'stale'; // an ACK for a response we have since replaced
    this.stats.acks++;
    w.versionAcked = req.versionInfo;
    w.nonceAcked = req.responseNonce;
    w.lastAckedAt = Date.now();
    w.nackError = undefined;
    this.answered(req.responseNonce);
    // Canonical arrays: the same set of names is the same array.
    const resubscribe = w.names !== names;
    w.names = names;
    this.rememberNames(w, req);
    return resubscribe ? 'ack-resubscribe' : 'ack';
  }

  /**
   * Send a type's response if anything in it changed for this proxy. EDS may be sent partially (only changed
   * ClusterLoadAssignments), as istiod's incremental EDS does: for EDS, absent resources are kept by the client.
   */
  deliver(typeUrl: string, res: ComputedResponse, info: PushInfo, force = false): Promise<void> {
    const w = this.watches.get(typeUrl);
    if (!w || this.closed) return Promise.resolve();
    const last = w.lastSent;
    if (typeUrl === ENDPOINT_TYPE && this.edsResendFor(info.pushVersion)) force = true;
    if (!force && last?.version === res.version) return Promise.resolve();
    if (this.holdBack(typeUrl)) return Promise.resolve();
    let entries = res.entries;
    if (!force && typeUrl === ENDPOINT_TYPE && last) {
      const lastIdx = nameIndex(last);
      const changed: number[] = [];
      res.names.forEach((n, i) => { const j = lastIdx.get(n); if (j === undefined || last.keys[j] !== res.keys[i]) changed.push(i); });
      w.lastSent = res;
      if (changed.length === 0) return Promise.resolve();
      entries = changed.map((i) => res.entries[i]!);
    }
    const nonce = this.nextNonce();
    // Framed from the cached entries when grpc-js sends it (serializeResponse). Keeping framed bodies to share among
    // the streams of a fan-out was measured: no faster in three alternating storm pairs (4.16 s mean both ways),
    // 18 MB more RSS at 5,000 proxies.
    const buf = new PendingResponse(res.version, entries, typeUrl, nonce);
    if (typeUrl === CLUSTER_TYPE) this.noteCdsSent(info.pushVersion, 'all');
    w.nonceSent = nonce;
    w.versionSent = res.version;
    w.lastSent = res;
    w.lastSentAt = Date.now();
    this.opts.log.debug({ proxy: this.proxy.id, type: shortType(typeUrl), version: res.version, pushVersion: info.pushVersion, resources: entries.length, bytes: buf.length, nonce }, 'ADS: push');
    this.opts.metrics?.responseSent(typeUrl, buf.length);
    return this.send(buf, nonce);
  }
}
