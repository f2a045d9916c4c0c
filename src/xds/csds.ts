/**
 * Client Status Discovery Service (envoy.service.status.v3.ClientStatusDiscoveryService) on the xDS port: for each
 * connected proxy matching the request's node matchers, one ClientConfig with a GenericXdsConfig per resource last
 * sent (its config_status SYNCED / STALE / ERROR per type, client_status ACKED / NACKED / REQUESTED) and one
 * NOT_SENT entry per status type nothing was sent for. The same ClientConfig is what `istio.io/debug/syncz`
 * returns over ADS (src/xds/debug-generator.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { envoyRoot } from '../proto/envoy-protos.js';
import { messageType } from '../proto/encode.js';
import { shortType } from '../proto/type-urls.js';
import { anyBytesOfEntry } from '../monitoring/config-dump.js';
import { configStatus, proxyConnections, STATUS_TYPES, type ConfigStatus, type ConnectionView } from '../monitoring/sync-status.js';

export const CLIENT_CONFIG_TYPE = 'type.googleapis.com/envoy.service.status.v3.ClientConfig';
const CSDS_PROTO = 'envoy/service/status/v3/csds.proto';

let loaded = false;
/** csds.proto (and the admin dumps it imports) are loaded on first use, on the main thread only. */
function statusTypes(): void {
  if (loaded) return;
  const root = envoyRoot();
  root.loadSync(CSDS_PROTO, { keepCase: true });
  root.resolveAll();
  loaded = true;
}

interface StringMatcher { exact?: string; prefix?: string; suffix?: string; contains?: string; safe_regex?: { regex?: string }; ignore_case?: boolean }
interface NodeMatcher { node_id?: StringMatcher; node_metadatas?: unknown[] }
interface ClientStatusRequest { node_matchers?: NodeMatcher[]; exclude_resource_contents?: boolean }

export class CsdsError extends Error {
  readonly code = 'ERR_CSDS_REQUEST';
}

function matchString(m: StringMatcher, v: string): boolean {
  const ci = m.ignore_case === true;
  const val = ci ? v.toLowerCase() : v;
  const norm = (s: string): string => (ci ? s.toLowerCase() : s);
  if (m.exact !== undefined) return val === norm(m.exact);
  if (m.prefix !== undefined) return val.startsWith(norm(m.prefix));
  if (m.suffix !== undefined) return val.endsWith(norm(m.suffix));
  if (m.contains !== undefined) return val.includes(norm(m.contains));
  if (m.safe_regex?.regex !== undefined) return new RegExp(`^(?:${m.safe_regex.regex})$`).test(v);
  return true;
}

/** True if a connection matches any of the matchers (no matchers: every proxy). */
export function matchesNode(con: ConnectionView, matchers: readonly NodeMatcher[]): boolean {
  if (matchers.length === 0) return true;
  return matchers.some((m) => {
    if (m.node_metadatas && m.node_metadatas.length > 0) throw new CsdsError('node_metadatas matchers are not supported; match on node_id');
    return m.node_id === undefined || matchString(m.node_id, con.proxy.id);
  });
}

const CLIENT_STATUS: Record<ConfigStatus, string> = { SYNCED: 'ACKED', ERROR: 'NACKED', STALE: 'REQUESTED', NOT_SENT: 'REQUESTED' };

function timestamp(ms: number | undefined): { seconds: number; nanos: number } | undefined {
  if (ms === undefined) return undefined;
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** One proxy's ClientConfig as a plain object for protobufjs (proto field names). */
export function clientConfig(con: ConnectionView, includeContents: boolean): Record<string, unknown> {
  const generic: Array<Record<string, unknown>> = [];
  const perXds: Array<Record<string, unknown>> = [];
  const oneofField: Record<string, string> = { CDS: 'cluster_config', LDS: 'listener_config', RDS: 'route_config', EDS: 'endpoint_config' };
  const typeUrls = new Set<string>([...STATUS_TYPES, ...con.watches.keys()]);
  for (const typeUrl of typeUrls) {
    const w = con.watches.get(typeUrl);
    const status = configStatus(w);
    const oneof = oneofField[shortType(typeUrl)];
    if (oneof) perXds.push({ status, [oneof]: {} });
    const sent = w?.lastSent;
    if (!sent || sent.names.length === 0) { generic.push({ type_url: typeUrl, config_status: status }); continue; }
    const version = w?.versionAcked ?? w?.versionSent ?? sent.version;
    sent.names.forEach((name, i) => {
      const g: Record<string, unknown> = {
        type_url: typeUrl, name, version_info: version, last_updated: timestamp(w?.lastSentAt),
        config_status: status, client_status: CLIENT_STATUS[status],
      };
      if (status === 'ERROR' && w?.nackError !== undefined) g.error_state = { details: w.nackError, last_update_attempt: timestamp(w.lastSentAt) };
      if (includeContents) {
        const any = messageType('google.protobuf.Any').decode(anyBytesOfEntry(sent.entries[i]!)) as unknown as { type_url: string; value: Uint8Array };
        g.xds_config = { type_url: any.type_url, value: any.value };
      }
      generic.push(g);
    });
  }
  return { node: { id: con.proxy.id, cluster: con.proxy.clusterId }, xds_config: perXds, generic_xds_configs: generic };
}

/** ClientConfig, encoded (the Any value for `istio.io/debug/syncz`). */
export function encodeClientConfig(con: ConnectionView, includeContents: boolean): Uint8Array {
  statusTypes();
  const t = messageType('envoy.service.status.v3.ClientConfig');
  return t.encode(t.fromObject(clientConfig(con, includeContents))).finish();
}

export interface CsdsSource { readonly ads: { readonly connections: Iterable<object> } }

function respond(src: CsdsSource, raw: ClientStatusRequest): Buffer {
  statusTypes();
  const cons = proxyConnections([...src.ads.connections] as ConnectionView[]).filter((c) => matchesNode(c, raw.node_matchers ?? []));
  const config = cons.map((c) => clientConfig(c, raw.exclude_resource_contents !== true));
  const t = messageType('envoy.service.status.v3.ClientStatusResponse');
  return Buffer.from(t.encode(t.fromObject({ config })).finish());
}

function decodeRequest(b: Buffer): ClientStatusRequest {
  statusTypes();
  const t = messageType('envoy.service.status.v3.ClientStatusRequest');
  return t.toObject(t.decode(b), { defaults: false }) as ClientStatusRequest;
}

const identity = (b: Buffer): Buffer => b;

export const CSDS_SERVICE: grpc.ServiceDefinition = {
  StreamClientStatus: {
    path: '/envoy.service.status.v3.ClientStatusDiscoveryService/StreamClientStatus',
    requestStream: true, responseStream: true,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
  FetchClientStatus: {
    path: '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus',
    requestStream: false, responseStream: false,
    requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
  },
};

function toStatus(e: unknown): Partial<grpc.StatusObject> {
  return { code: e instanceof CsdsError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL, details: (e as Error).message };
}

export function registerCsds(server: grpc.Server, src: CsdsSource): void {
  server.addService(CSDS_SERVICE, {
    FetchClientStatus: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      try { cb(null, respond(src, decodeRequest(call.request))); } catch (e) { cb(toStatus(e) as grpc.ServiceError); }
    },
    StreamClientStatus: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => {
        try { call.write(respond(src, decodeRequest(b))); } catch (e) { call.emit('error', toStatus(e)); }
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
}
