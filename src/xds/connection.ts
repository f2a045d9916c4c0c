/**
 * One ADS stream (state of the world): per-type subscriptions, nonces, versions, ACK/NACK, as istiod's
 * xds.Connection and its shouldRespond(). All per-stream state lives in this one object.
 */
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { DiscoveryRequest } from '../proto/discovery.js';
import { frameDiscoveryResponse } from '../proto/discovery.js';
import { CLUSTER_TYPE, LISTENER_TYPE, isGeneratedType, shortType } from '../proto/type-urls.js';
import type { Proxy } from '../model/proxy.js';
import type { ComputedResponse, PushInfo, PushTarget } from '../push/push-engine.js';
import type { Logger } from '../log/logger.js';

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
  /** Names in the last sent response (for debug endpoints and config dumps). */
  sentNames: string[];
}

export type RequestVerdict = 'initial' | 'ack' | 'ack-resubscribe' | 'nack' | 'stale' | 'unsupported';

let connectionCounter = 0;

export class XdsConnection implements PushTarget {
  readonly conId: string;
  readonly connectedAt = new Date();
  readonly watches = new Map<string, WatchedResource>();
  private nonceCounter = 0;
  closed = false;
  stats = { responses: 0, bytes: 0, acks: 0, nacks: 0 };

  constructor(
    readonly proxy: Proxy,
    private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>,
    readonly peer: string,
    private readonly log: Logger,
  ) {
    this.conId = `${proxy.id}-${++connectionCounter}`;
  }

  watched(): Array<{ typeUrl: string; names: string[] | undefined }> {
    return [...this.watches.values()].map((w) => ({ typeUrl: w.typeUrl, names: w.names }));
  }

  private isWildcardType(typeUrl: string): boolean {
    // Envoy's CDS and LDS are wildcard when no names are given; proxyless gRPC always names what it wants.
    return this.proxy.generator === 'envoy' && (typeUrl === CLUSTER_TYPE || typeUrl === LISTENER_TYPE);
  }

  /** Classify a request and update subscription state (istiod's shouldRespond). */
  onRequest(req: DiscoveryRequest): RequestVerdict {
    if (!isGeneratedType(req.typeUrl)) return 'unsupported';
    const names = req.resourceNames.length === 0 && this.isWildcardType(req.typeUrl) ? undefined : [...req.resourceNames].sort();
    const w = this.watches.get(req.typeUrl);
    if (req.errorDetail) {
      if (w) {
        this.stats.nacks++;
        w.nackError = req.errorDetail.message;
      }
      // The proxy keeps its last accepted config; nothing is sent until config changes.
      this.log.warn({ proxy: this.proxy.id, type: shortType(req.typeUrl), nonce: req.responseNonce, err: req.errorDetail.message }, 'ADS: NACK');
      return 'nack';
    }
    if (!w || req.responseNonce === '') {
      // Initial request for this type on this stream (or a reconnect that carries its old version).
      this.watches.set(req.typeUrl, { typeUrl: req.typeUrl, names, sentNames: [], versionAcked: req.versionInfo || undefined });
      return 'initial';
    }
    if (req.responseNonce !== w.nonceSent) {
      // An ACK for a response we have since replaced: the newer one is already on its way.
      return 'stale';
    }
    this.stats.acks++;
    w.versionAcked = req.versionInfo;
    w.nonceAcked = req.responseNonce;
    w.lastAckedAt = Date.now();
    w.nackError = undefined;
    const before = w.names === undefined ? '*' : w.names.join(',');
    const after = names === undefined ? '*' : names.join(',');
    if (before !== after) {
      w.names = names;
      return 'ack-resubscribe';
    }
    return 'ack';
  }

  deliver(typeUrl: string, res: ComputedResponse, info: PushInfo, force = false): void {
    const w = this.watches.get(typeUrl);
    if (!w || this.closed) return;
    if (!force && w.versionSent === res.version) return; // nothing this proxy can observe changed
    const nonce = `${++this.nonceCounter}-${randomBytes(4).toString('hex')}`;
    const buf = frameDiscoveryResponse(res.version, res.entries, typeUrl, nonce);
    w.nonceSent = nonce;
    w.versionSent = res.version;
    w.sentNames = res.names;
    w.lastSentAt = Date.now();
    this.stats.responses++;
    this.stats.bytes += buf.length;
    this.call.write(buf);
    this.log.debug({ proxy: this.proxy.id, type: shortType(typeUrl), version: res.version, pushVersion: info.pushVersion, resources: res.names.length, bytes: buf.length, nonce }, 'ADS: push');
  }
}
