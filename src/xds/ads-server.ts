/**
 * The ADS gRPC service (envoy.service.discovery.v3.AggregatedDiscoveryService). Requests are decoded with the
 * Envoy protos; responses are written as pre-framed bytes (the serializer is the identity), so resources
 * encoded once in the cache are sent byte-for-byte to every proxy.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeDiscoveryRequest, type DiscoveryRequest } from '../proto/discovery.js';
import { parseProxy } from '../model/proxy.js';
import type { PushEngine } from '../push/push-engine.js';
import type { Logger } from '../log/logger.js';
import { XdsConnection } from './connection.js';
import { shortType } from '../proto/type-urls.js';

export const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true,
    responseStream: true,
    requestSerialize: (x: Buffer) => x,
    requestDeserialize: (b: Buffer) => decodeDiscoveryRequest(b),
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

/** End a stream with INVALID_ARGUMENT: grpc-js turns an 'error' event on a server stream into its status. */
function refuse(call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>, details: string): void {
  call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details });
}

export interface AdsServerOptions { engine: PushEngine; log: Logger }

export class AdsServer {
  readonly connections = new Set<XdsConnection>();

  constructor(private readonly opts: AdsServerOptions) {}

  register(server: grpc.Server): void {
    server.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) => this.stream(call),
    });
  }

  private stream(call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>): void {
    const { engine, log } = this.opts;
    let con: XdsConnection | undefined;
    // Requests on one stream are handled strictly in order: a later request must see the state an earlier one set.
    let chain: Promise<void> = Promise.resolve();
    const close = (): void => {
      if (!con || con.closed) return;
      con.closed = true;
      engine.remove(con);
      this.connections.delete(con);
      log.info({ proxy: con.proxy.id, conId: con.conId }, 'ADS: connection closed');
    };
    call.on('data', (req: DiscoveryRequest) => {
      chain = chain.then(async () => {
        if (!con) {
          // The node is taken from the first request of each stream (Envoy may send it only once).
          if (!req.node?.id) {
            refuse(call, 'first DiscoveryRequest on the stream carries no node');
            return;
          }
          let proxy;
          try {
            proxy = parseProxy(req.node.id, req.node.metadata);
          } catch (e) {
            refuse(call, (e as Error).message);
            return;
          }
          con = new XdsConnection(proxy, call, call.getPeer(), log);
          this.connections.add(con);
          engine.add(con);
          log.info({ proxy: proxy.id, conId: con.conId, peer: con.peer, generator: proxy.generator }, 'ADS: new connection');
        }
        if (con.closed) return;
        const verdict = con.onRequest(req);
        if (verdict === 'initial' || verdict === 'ack-resubscribe') {
          const w = con.watches.get(req.typeUrl)!;
          const res = await engine.compute(con.proxy, req.typeUrl, w.names);
          // An initial request always gets a response, even if it repeats a version the proxy already holds.
          con.deliver(req.typeUrl, res, { pushVersion: engine.pushContext.version, full: true, start: performance.now() }, verdict === 'initial');
        } else if (verdict === 'unsupported') {
          log.debug({ proxy: con.proxy.id, type: req.typeUrl }, 'ADS: request for unsupported type ignored');
        }
      }).catch((e) => {
        log.error({ proxy: con?.proxy.id, type: shortType(req.typeUrl), err: (e as Error).message }, 'ADS: request failed');
      });
    });
    call.on('end', () => { close(); call.end(); });
    call.on('error', () => close());
    call.on('close', () => close());
    call.on('cancelled', () => close());
  }
}
