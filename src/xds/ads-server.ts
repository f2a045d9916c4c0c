/**
 * The ADS gRPC service (envoy.service.discovery.v3.AggregatedDiscoveryService), state-of-the-world and delta.
 * Requests are decoded with the Envoy protos; responses are framed from cached encoded resources (serializeResponse:
 * no re-encoding), so resources encoded once in the cache are sent byte-for-byte to every proxy.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, serializeResponse, type DeltaDiscoveryRequest, type DiscoveryRequest, type NodeInfo } from '../proto/discovery.js';
import { parseProxy, type Proxy } from '../model/proxy.js';
import type { PushEngine } from '../push/push-engine.js';
import type { Logger } from '../log/logger.js';
import { XdsConnection } from './connection.js';
import { DeltaConnection } from './delta-connection.js';
import type { BaseConnection, ConnectionOptions } from './connection-base.js';
import { RateLimiter } from './rate-limiter.js';
import { shortType } from '../proto/type-urls.js';
import type { XdsMetrics } from '../monitoring/metrics.js';

const identity = (b: Buffer): Buffer => b;

export const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true, responseStream: true,
    requestSerialize: identity, requestDeserialize: (b: Buffer) => decodeDiscoveryRequest(b),
    responseSerialize: serializeResponse, responseDeserialize: identity,
  },
  DeltaAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    requestStream: true, responseStream: true,
    requestSerialize: identity, requestDeserialize: (b: Buffer) => decodeDeltaDiscoveryRequest(b),
    responseSerialize: serializeResponse, responseDeserialize: identity,
  },
};

export interface AdsServerOptions {
  engine: PushEngine;
  log: Logger;
  /** New streams admitted per second (PILOT_MAX_REQUESTS_PER_SECOND); 0 = unlimited. */
  maxRequestsPerSecond: number;
  ackTimeoutMs: number;
  metrics?: XdsMetrics;
  /** Answers debug types (istio.io/debug/syncz) on a stream; returns false for types it does not know. */
  debugGenerator?: (con: XdsConnection, req: DiscoveryRequest, write: (b: Buffer) => void) => boolean;
}

type Duplex<Req> = grpc.ServerDuplexStream<Req, Buffer>;

/** End a stream with INVALID_ARGUMENT: grpc-js turns an 'error' event on a server stream into its status. */
function refuse(call: Duplex<unknown>, details: string): void {
  call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details });
}

export class AdsServer {
  readonly connections = new Set<BaseConnection>();
  readonly limiter: RateLimiter;
  private readonly conOpts: ConnectionOptions;
  private readonly calls = new WeakMap<BaseConnection, Duplex<unknown>>();

  constructor(private readonly opts: AdsServerOptions) {
    this.limiter = new RateLimiter(opts.maxRequestsPerSecond, Math.max(1, opts.maxRequestsPerSecond));
    this.conOpts = {
      log: opts.log,
      ackTimeoutMs: opts.ackTimeoutMs,
      metrics: opts.metrics,
      resync: (con, types) => {
        const info = { pushVersion: opts.engine.pushContext.version, full: true, start: performance.now() };
        opts.engine.pushTo(con, types, info).catch((e) => opts.log.error({ proxy: con.proxy.id, pushVersion: info.pushVersion, err: (e as Error).message }, 'ADS: resync failed'));
      },
    };
  }

  /** End a proxy's stream with UNAVAILABLE (/debug/force_disconnect); the proxy reconnects, as from istiod. */
  disconnect(con: BaseConnection): boolean {
    const call = this.calls.get(con);
    call?.emit('error', { code: grpc.status.UNAVAILABLE, details: 'disconnected by /debug/force_disconnect' });
    return call !== undefined;
  }

  register(server: grpc.Server): void {
    server.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: Duplex<DiscoveryRequest>) => this.stream(call, 'sotw'),
      DeltaAggregatedResources: (call: Duplex<DeltaDiscoveryRequest>) => this.stream(call, 'delta'),
    });
  }

  private stream<Req extends DiscoveryRequest | DeltaDiscoveryRequest>(call: Duplex<Req>, kind: 'sotw' | 'delta'): void {
    const { engine, log } = this.opts;
    let con: XdsConnection | DeltaConnection | undefined;
    // Requests on one stream are handled strictly in order; the first waits for the connection rate limiter. A
    // request that arrives while nothing is queued and needs no computation (an ACK, most of a storm's requests)
    // is handled right away, without a promise chain link (three promises and two closures per request).
    let limited = false;
    let queued = 1;
    const dequeued = (): void => { queued--; };
    const failed = (req: Req) => (e: unknown): void => {
      queued--;
      log.error({ proxy: con?.proxy.id, type: shortType(req.typeUrl), err: (e as Error).message }, 'ADS: request failed');
    };
    let chain: Promise<void> = this.limiter.wait().then(dequeued, (e: Error) => {
      queued--;
      limited = true;
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: e.message });
    });
    const close = (): void => {
      if (!con || con.closed) return;
      con.close();
      engine.remove(con);
      this.connections.delete(con);
      log.info({ proxy: con.proxy.id, conId: con.conId }, 'ADS: connection closed');
    };
    const open = (node: NodeInfo | undefined): boolean => {
      // The node is taken from the first request of each stream (Envoy may send it only once).
      if (!node?.id) { refuse(call, 'first DiscoveryRequest on the stream carries no node'); return false; }
      let proxy: Proxy;
      try { proxy = parseProxy(node.id, node.metadata); } catch (e) { refuse(call, (e as Error).message); return false; }
      con = kind === 'sotw'
        ? new XdsConnection(proxy, call as unknown as Duplex<DiscoveryRequest>, () => call.getPeer(), this.conOpts)
        : new DeltaConnection(proxy, call as unknown as Duplex<DeltaDiscoveryRequest>, () => call.getPeer(), this.conOpts);
      this.connections.add(con);
      this.calls.set(con, call);
      engine.add(con);
      if (log.isLevelEnabled('info')) log.info({ proxy: proxy.id, conId: con.conId, peer: con.peer, generator: proxy.generator, kind }, 'ADS: new connection');
      return true;
    };
    /** Handle one request; a promise when it computes a response (the next request waits for it). */
    const handle = (req: Req): Promise<void> | undefined => {
      if (limited) return undefined;
      if (!con && !open(req.node)) return undefined;
      if (!con || con.closed) return undefined;
      const c = con;
      const info = { pushVersion: engine.pushContext.version, full: true, start: performance.now() };
      let names: string[] | undefined;
      let initial: boolean;
      if (c instanceof XdsConnection) {
        const verdict = c.onRequest(req as DiscoveryRequest);
        this.opts.metrics?.requestHandled(req.typeUrl, verdict, c.proxy.id, req.errorDetail?.code);
        if (verdict === 'unsupported' && !this.opts.debugGenerator?.(c, req as DiscoveryRequest, (b) => call.write(b))) log.debug({ proxy: c.proxy.id, type: req.typeUrl }, 'ADS: unsupported type ignored');
        if (verdict !== 'initial' && verdict !== 'ack-resubscribe') return undefined;
        names = c.watches.get(req.typeUrl)!.names;
        // An initial request always gets a full response, even if it repeats a version the proxy holds.
        initial = verdict === 'initial';
      } else {
        const verdict = c.onRequest(req as DeltaDiscoveryRequest);
        this.opts.metrics?.requestHandled(req.typeUrl, verdict, c.proxy.id, req.errorDetail?.code);
        if (verdict === 'unsupported') log.debug({ proxy: c.proxy.id, type: req.typeUrl }, 'ADS: unsupported type ignored');
        if (verdict !== 'initial' && verdict !== 'subscribe') return undefined;
        names = c.watched().find((x) => x.typeUrl === req.typeUrl)!.names;
        // The first response of a type is always sent (possibly empty), so the client knows it is served.
        initial = verdict === 'initial';
      }
      return engine.compute(c.proxy, req.typeUrl, names).then((res) => {
        engine.noteScope(c);
        void c.deliver(req.typeUrl, res, info, initial);
      });
    };
    call.on('data', (req: Req) => {
      if (queued === 0) {
        let p: Promise<void> | undefined;
        try { p = handle(req); } catch (e) { queued++; failed(req)(e); return; }
        if (p) { queued++; chain = p.then(dequeued, failed(req)); }
        return;
      }
      queued++;
      chain = chain.then(() => handle(req)).then(dequeued, failed(req));
    });
    call.on('end', () => { close(); call.end(); });
    call.on('error', () => close());
    call.on('close', () => close());
    call.on('cancelled', () => close());
  }
}
