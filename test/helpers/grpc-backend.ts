/** Test helper: real gRPC servers on loopback, and a client that calls them through xds:/// with grpc-js-xds. */
import * as grpc from '@grpc/grpc-js';

export const ECHO_PATH = '/meshpilot.test.Echo/Who';

const identity = (b: Buffer): Buffer => b;

const ECHO_SERVICE: grpc.ServiceDefinition = {
  Who: {
    path: ECHO_PATH, requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
};

export interface GrpcBackend { name: string; port: number; calls: number; metadata: grpc.Metadata[]; close(): Promise<void> }

/** A gRPC server whose one method answers with the backend's name. `fail(n)` lets a test make calls fail. */
export async function startGrpcBackend(name: string, opts: { failWith?: (callNo: number) => grpc.status | undefined } = {}): Promise<GrpcBackend> {
  const server = new grpc.Server();
  const backend: GrpcBackend = {
    name, port: 0, calls: 0, metadata: [],
    close: () => new Promise((r) => server.tryShutdown(() => r())),
  };
  server.addService(ECHO_SERVICE, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      backend.calls++;
      backend.metadata.push(call.metadata);
      const code = opts.failWith?.(backend.calls);
      if (code !== undefined) cb({ code, details: `${name} failed` });
      else cb(null, Buffer.from(name));
    },
  });
  backend.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return backend;
}

export function callWho(client: grpc.Client, metadata = new grpc.Metadata(), deadlineMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(ECHO_PATH, identity, identity, Buffer.alloc(0), metadata, { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) reject(err); else resolve(res!.toString());
    });
  });
}

/** Tally which backend answered `n` calls. Failed calls are counted under their status code. */
export async function tally(client: grpc.Client, n: number, metadata?: grpc.Metadata): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let k: string;
    try { k = await callWho(client, metadata); } catch (e) { k = `error:${(e as grpc.ServiceError).code}`; }
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/**
 * grpc-js-xds reads its bootstrap once per process: set it before the first xds:/// channel.
 * node ID as a proxyless client's (GENERATOR=grpc).
 */
export function setXdsBootstrap(xdsAddress: string, opts: { namespace?: string; podName?: string; ip?: string } = {}): string {
  const ns = opts.namespace ?? 'default';
  const nodeId = `sidecar~${opts.ip ?? '127.0.0.1'}~${opts.podName ?? 'client'}.${ns}~${ns}.svc.cluster.local`;
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: nodeId, metadata: { GENERATOR: 'grpc', NAMESPACE: ns, ISTIO_VERSION: '1.29.0', CLUSTER_ID: 'Kubernetes' }, locality: {} },
  });
  return nodeId;
}

/** Poll until `check` passes or time runs out; returns how long it took. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 5000, stepMs = 50): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
