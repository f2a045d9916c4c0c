/**
 * One simulated proxy: an ADS stream on a raw HTTP/2 session, behaving like Envoy — wildcard CDS and LDS, then EDS
 * for every EDS cluster received and RDS for every route name in received listeners, each response ACKed at once.
 * Proxyless gRPC (GENERATOR=grpc) follows grpc-js-xds instead: LDS by target name → RDS → CDS by name → EDS.
 * State of the world (StreamAggregatedResources) or delta (DeltaAggregatedResources, Envoy's incremental protocol).
 *
 * Responses are read with the wire reader (no protobufjs decode on the hot path); requests are small and are
 * encoded with protobufjs.
 */
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { createHash } from 'node:crypto';
import { messageType, jsonToStruct } from '../proto/encode.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, shortType } from '../proto/type-urls.js';
import { GrpcFrameDecoder, grpcFrame } from './grpc-frame.js';
import { fields, str } from '../proto/wire.js';
import { clusterNamesOfRouteAny, edsNameOfClusterAny, routeNamesOfListenerAny } from './xds-names.js';
import type { ProxyIdentity } from './node-identity.js';

export const SOTW_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const DELTA_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

export type XdsMode = 'sotw' | 'delta';

export interface ProxyObserver {
  /** A response arrived and its ACK was written; `body` is the raw (Delta)DiscoveryResponse. */
  onResponse(p: SimProxy, typeUrl: string, body: Buffer, ackedAt: number): void;
  /** Every subscribed type has been answered and ACKed for the first time. */
  onReady(p: SimProxy, at: number): void;
  /** The stream failed; `retryInMs` is set when the proxy will reconnect (as Envoy does), undefined if it gives up. */
  onClosed(p: SimProxy, error: string | undefined, retryInMs: number | undefined): void;
}

/** Envoy's xDS stream retry: jittered exponential backoff from 500 ms up to 30 s (source/common/grpc's GrpcStream). */
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;

/** Dependent names per distinct SotW response content, shared by all proxies (most get identical bytes). */
export class DeriveMemo {
  private readonly map = new Map<string, string[]>();
  hits = 0;
  misses = 0;
  get(key: string): string[] | undefined {
    const v = this.map.get(key);
    if (v) this.hits++;
    return v;
  }
  set(key: string, v: string[]): void {
    this.misses++;
    if (this.map.size > 20_000) this.map.clear();
    this.map.set(key, v);
  }
}

interface TypeState {
  typeUrl: string;
  wildcard: boolean;
  /** Current subscription (named types), sorted. */
  names: string[];
  started: boolean;
  /** A (re)subscription was sent and has not been answered yet. */
  awaiting: boolean;
  version: string;
  nonce: string;
  received: number;
  /** Delta: resource name → its dependent names (child type). */
  resources: Map<string, string[]>;
}

export interface TypeStats { responses: number; bytes: number }

const REQ = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DiscoveryRequest');
const DELTA_REQ = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class SimProxy {
  readonly stats = { responses: 0, bytes: 0, acks: 0, requests: 0, reconnects: 0, byType: {} as Record<string, TypeStats> };
  startedAt = 0;
  readyAt = 0;
  closed = false;
  error: string | undefined;
  private stream: ClientHttp2Stream | undefined;
  private sentNode = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private sessionFor: (() => ClientHttp2Session) | undefined;
  /** Reconnect after a failed stream (false: a failure is final). */
  reconnect = true;
  private readonly types = new Map<string, TypeState>();
  /** Parent type → the type whose names its responses determine. */
  private readonly child: Map<string, string>;

  constructor(
    readonly id: ProxyIdentity,
    readonly mode: XdsMode,
    private readonly observer: ProxyObserver,
    private readonly memo: DeriveMemo,
  ) {
    this.child = id.proxyless
      ? new Map([[LISTENER_TYPE, ROUTE_TYPE], [ROUTE_TYPE, CLUSTER_TYPE], [CLUSTER_TYPE, ENDPOINT_TYPE]])
      : new Map([[CLUSTER_TYPE, ENDPOINT_TYPE], [LISTENER_TYPE, ROUTE_TYPE]]);
    const order = id.proxyless ? [LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE] : [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];
    for (const t of order) {
      const wildcard = !id.proxyless && (t === CLUSTER_TYPE || t === LISTENER_TYPE);
      this.types.set(t, { typeUrl: t, wildcard, names: [], started: false, awaiting: false, version: '', nonce: '', received: 0, resources: new Map() });
    }
  }

  get ready(): boolean { return this.readyAt > 0; }

  start(sessionFor: () => ClientHttp2Session): void {
    this.sessionFor = sessionFor;
    if (this.startedAt === 0) this.startedAt = performance.now();
    this.closed = false;
    this.error = undefined;
    this.sentNode = false;
    for (const s of this.types.values()) {
      Object.assign(s, { names: [], started: false, awaiting: false, version: '', nonce: '', received: 0 });
      s.resources.clear();
    }
    let stream: ClientHttp2Stream;
    try {
      stream = sessionFor().request({
      ':method': 'POST',
      ':path': this.mode === 'delta' ? DELTA_PATH : SOTW_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
        'user-agent': 'meshpilot-load/0.1',
      });
    } catch (e) {
      this.fail((e as Error).message);
      return;
    }
    this.stream = stream;
    const decoder = new GrpcFrameDecoder((m) => this.onMessage(m));
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const status = (h: Record<string, unknown>): void => {
      if (h['grpc-status'] !== undefined) { grpcStatus = String(h['grpc-status']); grpcMessage = h['grpc-message'] as string | undefined; }
    };
    stream.on('response', status);
    stream.on('trailers', status);
    stream.on('data', (chunk: Buffer) => {
      try { decoder.push(chunk); } catch (e) { this.fail((e as Error).message); }
    });
    stream.on('error', (e) => { if (stream === this.stream) this.fail(e.message); });
    // The server ending its side (trailers, or trailers-only headers) ends the call even while ours is open.
    const ended = (): void => {
      if (stream === this.stream && !this.closed) this.fail(grpcStatus && grpcStatus !== '0' ? `grpc-status ${grpcStatus}: ${decodeURIComponent(grpcMessage ?? '')}` : 'stream closed by server');
    };
    stream.on('end', ended);
    stream.on('close', ended);
    if (this.id.proxyless) this.subscribe(LISTENER_TYPE, [...this.id.targets].sort());
    else {
      this.subscribe(CLUSTER_TYPE, []);
      this.subscribe(LISTENER_TYPE, []);
    }
  }

  close(): void {
    this.reconnect = false;
    clearTimeout(this.retryTimer);
    if (this.closed) return;
    this.closed = true;
    this.stream?.close();
  }

  private fail(msg: string): void {
    if (this.closed) return;
    this.closed = true;
    this.error = msg;
    this.stream?.close();
    if (!this.reconnect || !this.sessionFor) {
      this.observer.onClosed(this, msg, undefined);
      return;
    }
    const delay = Math.random() * Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** this.attempt++);
    this.stats.reconnects++;
    this.observer.onClosed(this, msg, delay);
    const sessionFor = this.sessionFor;
    this.retryTimer = setTimeout(() => { if (this.reconnect) this.start(sessionFor); }, delay);
  }

  private nodeField(): Record<string, unknown> | undefined {
    if (this.sentNode) return undefined;
    this.sentNode = true;
    return {
      id: this.id.nodeId,
      cluster: `${this.id.app}.${this.id.namespace}`,
      metadata: jsonToStruct(this.id.metadata),
      user_agent_name: this.id.proxyless ? 'gRPC Node' : 'envoy',
    };
  }

  private write(obj: Record<string, unknown>): void {
    if (this.closed || !this.stream) return;
    const t = this.mode === 'delta' ? DELTA_REQ() : REQ();
    const node = this.nodeField();
    if (node) obj.node = node;
    this.stats.requests++;
    this.stream.write(grpcFrame(t.encode(t.fromObject(obj)).finish()));
  }

  /** (Re)subscribe a type to `names` (sorted); wildcard types ignore names. */
  private subscribe(typeUrl: string, names: string[]): void {
    const s = this.types.get(typeUrl)!;
    if (s.wildcard) {
      if (s.started) return;
      s.started = true;
      s.awaiting = true;
      this.write({ type_url: typeUrl });
      return;
    }
    if (s.started ? sameNames(s.names, names) : names.length === 0) return;
    const before = s.names;
    s.names = names;
    s.started = true;
    if (this.mode === 'delta') {
      const old = new Set(before);
      const now = new Set(names);
      const add = names.filter((n) => !old.has(n));
      const remove = before.filter((n) => !now.has(n));
      for (const n of remove) s.resources.delete(n);
      s.awaiting = add.length > 0;
      this.write({ type_url: typeUrl, resource_names_subscribe: add, resource_names_unsubscribe: remove });
    } else {
      s.awaiting = names.length > 0;
      this.write({ type_url: typeUrl, resource_names: names, version_info: s.version, response_nonce: s.nonce });
    }
  }

  private onMessage(body: Buffer): void {
    if (this.mode === 'delta') this.onDelta(body);
    else this.onSotw(body);
  }

  private account(typeUrl: string, bytes: number): void {
    this.attempt = 0;
    this.stats.responses++;
    this.stats.bytes += bytes;
    const k = shortType(typeUrl);
    const t = (this.stats.byType[k] ??= { responses: 0, bytes: 0 });
    t.responses++;
    t.bytes += bytes;
  }

  private onSotw(body: Buffer): void {
    let version = '';
    let typeUrl = '';
    let nonce = '';
    const resources: Array<[number, number]> = [];
    for (const f of fields(body)) {
      if (f.wireType !== 2) continue;
      if (f.field === 1) version = str(body, f);
      else if (f.field === 2) resources.push([f.value, f.end]);
      else if (f.field === 4) typeUrl = str(body, f);
      else if (f.field === 5) nonce = str(body, f);
    }
    this.account(typeUrl, body.length + 5);
    const s = this.types.get(typeUrl);
    if (!s) return;
    s.version = version;
    s.nonce = nonce;
    s.received++;
    s.awaiting = false;
    this.write({ type_url: typeUrl, version_info: version, response_nonce: nonce, resource_names: s.wildcard ? [] : s.names });
    this.stats.acks++;
    const at = performance.now();
    this.observer.onResponse(this, typeUrl, body, at);
    const childType = this.child.get(typeUrl);
    if (childType) {
      const h = createHash('sha1').update(typeUrl);
      for (const [a, b] of resources) h.update(body.subarray(a, b));
      const key = h.digest('base64');
      let names = this.memo.get(key);
      if (!names) {
        const out = new Set<string>();
        for (const [a, b] of resources) this.deps(typeUrl, body, a, b, out);
        names = [...out].sort();
        this.memo.set(key, names);
      }
      this.subscribe(childType, names);
    }
    this.checkReady(at);
  }

  private deps(typeUrl: string, buf: Uint8Array, a: number, b: number, out: Set<string>): void {
    if (typeUrl === CLUSTER_TYPE) {
      const n = edsNameOfClusterAny(buf, a, b);
      if (n) out.add(n);
    } else if (typeUrl === LISTENER_TYPE) routeNamesOfListenerAny(buf, a, b, out);
    else if (typeUrl === ROUTE_TYPE) clusterNamesOfRouteAny(buf, a, b, out);
  }

  private onDelta(body: Buffer): void {
    let typeUrl = '';
    let nonce = '';
    const upserts: Array<{ name: string; anyStart: number; anyEnd: number }> = [];
    const removed: string[] = [];
    for (const f of fields(body)) {
      if (f.wireType !== 2) continue;
      if (f.field === 2) {
        let name = '';
        let anyStart = -1;
        let anyEnd = -1;
        for (const g of fields(body, f.value, f.end)) {
          if (g.wireType !== 2) continue;
          if (g.field === 3) name = str(body, g);
          else if (g.field === 2) { anyStart = g.value; anyEnd = g.end; }
        }
        upserts.push({ name, anyStart, anyEnd });
      } else if (f.field === 4) typeUrl = str(body, f);
      else if (f.field === 5) nonce = str(body, f);
      else if (f.field === 6) removed.push(str(body, f));
      else if (f.field === 8) {
        for (const g of fields(body, f.value, f.end)) if (g.field === 1 && g.wireType === 2) removed.push(str(body, g));
      }
    }
    this.account(typeUrl, body.length + 5);
    const s = this.types.get(typeUrl);
    if (!s) return;
    s.nonce = nonce;
    s.received++;
    s.awaiting = false;
    const childType = this.child.get(typeUrl);
    for (const u of upserts) {
      const out = new Set<string>();
      if (childType && u.anyStart >= 0) this.deps(typeUrl, body, u.anyStart, u.anyEnd, out);
      s.resources.set(u.name, [...out]);
    }
    for (const r of removed) s.resources.delete(r);
    this.write({ type_url: typeUrl, response_nonce: nonce });
    this.stats.acks++;
    const at = performance.now();
    this.observer.onResponse(this, typeUrl, body, at);
    if (childType) {
      const all = new Set<string>();
      for (const d of s.resources.values()) for (const n of d) all.add(n);
      this.subscribe(childType, [...all].sort());
    }
    this.checkReady(at);
  }

  private checkReady(at: number): void {
    if (this.readyAt > 0) return;
    for (const s of this.types.values()) {
      if (s.awaiting) return;
      if (s.started && s.received === 0 && (s.wildcard || s.names.length > 0)) return;
    }
    // Roots must have been answered (a proxyless proxy with no targets is never ready).
    const roots = this.id.proxyless ? [LISTENER_TYPE] : [CLUSTER_TYPE, LISTENER_TYPE];
    if (roots.some((t) => this.types.get(t)!.received === 0)) return;
    this.readyAt = at;
    this.observer.onReady(this, at);
  }
}
