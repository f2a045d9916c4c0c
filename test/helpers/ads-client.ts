/** Test helper: a raw ADS client over real gRPC, for protocol-level tests (ACK, NACK, nonces). */
import * as grpc from '@grpc/grpc-js';
import { messageType, jsonToStruct, decodeAny } from '../../src/proto/encode.js';

const REQ = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DiscoveryRequest');
const RES = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DiscoveryResponse');

export interface Response { version_info: string; nonce: string; type_url: string; resources: any[] }

const ADS_CLIENT_DEF: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true, responseStream: true,
    requestSerialize: (o: any) => Buffer.from(REQ().encode(REQ().fromObject(o)).finish()),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer): Response => {
      const m = RES().decode(b) as any;
      return {
        version_info: m.version_info ?? '', nonce: m.nonce ?? '', type_url: m.type_url ?? '',
        resources: (m.resources ?? []).map((r: any) => decodeAny(RES().lookupType('google.protobuf.Any').encode(r).finish())),
      };
    },
  },
};

/** What both test clients share: one ADS stream, the responses it received, and waiting on them. */
abstract class AdsStreamClient<Res extends { type_url: string }> {
  private readonly client: grpc.Client;
  private readonly stream: grpc.ClientDuplexStream<any, Res>;
  readonly received: Res[] = [];
  private waiters: Array<() => void> = [];
  error: grpc.ServiceError | undefined;
  private sentNode = false;

  protected constructor(
    ctor: grpc.ServiceClientConstructor, method: string, address: string, readonly nodeId: string,
    readonly metadata: Record<string, unknown>, credentials: grpc.ChannelCredentials, channelOptions: grpc.ChannelOptions,
  ) {
    this.client = new ctor(address, credentials, channelOptions);
    this.stream = (this.client as any)[method]();
    this.stream.on('data', (r: Res) => { this.received.push(r); this.wake(); });
    this.stream.on('error', (e: grpc.ServiceError) => { this.error = e; this.wake(); });
  }

  private wake(): void { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }

  /** Send a request; the node goes only on the stream's first request, as Envoy's set_node_on_first_message_only. */
  protected write(req: object): void {
    const msg: any = { ...req };
    if (!this.sentNode) { msg.node = { id: this.nodeId, metadata: jsonToStruct(this.metadata) }; this.sentNode = true; }
    this.stream.write(msg);
  }

  /** Wait for the next response of a type, after `after` responses have already been seen. */
  async next(typeUrl: string, timeoutMs = 3000, after = this.received.length): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.received.slice(after).find((x) => x.type_url === typeUrl);
      if (r) return r;
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${typeUrl} response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); this.waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
  }

  /** Expect no response of this type for a while. */
  async quiet(typeUrl: string, ms: number): Promise<boolean> {
    const n = this.received.length;
    await new Promise((r) => setTimeout(r, ms));
    return !this.received.slice(n).some((x) => x.type_url === typeUrl);
  }

  /** Stop reading from the stream (HTTP/2 flow control then pushes back on the server). */
  pause(): void { this.stream.pause(); }
  resume(): void { this.stream.resume(); }

  close(): void { this.stream.cancel(); this.client.close(); }
}

const AdsClientCtor = grpc.makeGenericClientConstructor(ADS_CLIENT_DEF, 'AggregatedDiscoveryService');

export class AdsTestClient extends AdsStreamClient<Response> {
  constructor(
    address: string, nodeId: string, metadata: Record<string, unknown> = {},
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), channelOptions: grpc.ChannelOptions = {},
  ) {
    super(AdsClientCtor, 'StreamAggregatedResources', address, nodeId, metadata, credentials, channelOptions);
  }

  send(req: { type_url: string; resource_names?: string[]; version_info?: string; response_nonce?: string; error_detail?: { code: number; message: string } }): void {
    this.write(req);
  }

  ack(r: Response, names?: string[]): void {
    this.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names });
  }

  nack(r: Response, lastGoodVersion: string, message: string, names?: string[]): void {
    this.send({ type_url: r.type_url, version_info: lastGoodVersion, response_nonce: r.nonce, resource_names: names, error_detail: { code: 3, message } });
  }

}

// ---------------------------------------------------------------------------------------------------------------
// Delta (incremental) ADS
// ---------------------------------------------------------------------------------------------------------------

const DREQ = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const DRES = (): ReturnType<typeof messageType> => messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');

export interface DeltaResponse {
  system_version_info: string; nonce: string; type_url: string; removed_resources: string[];
  resources: Array<{ name: string; version: string; resource: any }>;
}

const DELTA_CLIENT_DEF: grpc.ServiceDefinition = {
  DeltaAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    requestStream: true, responseStream: true,
    requestSerialize: (o: any) => Buffer.from(DREQ().encode(DREQ().fromObject(o)).finish()),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer): DeltaResponse => {
      const m = DRES().decode(b) as any;
      const anyType = DRES().lookupType('google.protobuf.Any');
      return {
        system_version_info: m.system_version_info ?? '', nonce: m.nonce ?? '', type_url: m.type_url ?? '',
        removed_resources: m.removed_resources ?? [],
        resources: (m.resources ?? []).map((r: any) => ({ name: r.name, version: r.version, resource: decodeAny(anyType.encode(r.resource).finish()) })),
      };
    },
  },
};

const DeltaClientCtor = grpc.makeGenericClientConstructor(DELTA_CLIENT_DEF, 'AggregatedDiscoveryService');

export class DeltaTestClient extends AdsStreamClient<DeltaResponse> {
  constructor(address: string, nodeId: string, metadata: Record<string, unknown> = {}) {
    super(DeltaClientCtor, 'DeltaAggregatedResources', address, nodeId, metadata, grpc.credentials.createInsecure(), {});
  }

  send(req: { type_url: string; resource_names_subscribe?: string[]; resource_names_unsubscribe?: string[]; initial_resource_versions?: Record<string, string>; response_nonce?: string; error_detail?: { code: number; message: string } }): void {
    this.write(req);
  }

  ack(r: DeltaResponse): void { this.send({ type_url: r.type_url, response_nonce: r.nonce }); }
}
