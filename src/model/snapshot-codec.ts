/**
 * Hands a PushContext to workers without a per-task copy. The snapshot is written into SharedArrayBuffers once per
 * push; every task carries only references to them (SharedArrayBuffers are shared, not cloned, by postMessage).
 * Two parts:
 * - config (services, Istio configs): JSON, decoded once per config version by each worker — it changes rarely;
 * - endpoints (the bulk of a large mesh, rewritten on every endpoint-only push): a flatbuffer that workers read in
 *   place, decoding only the services a task touches ("flat", the default), or JSON decoded whole ("json", kept
 *   for the benchmark in bench/snapshot.ts that compares both against structured clone).
 */
import type { PushContextData } from './push-context.js';
import { PushContext } from './push-context.js';
import { FlatEndpointsEncoder, FlatEndpointSource } from './snapshot-flat.js';

export interface SnapshotPart { version: string; buffer: SharedArrayBuffer; length: number }

export type EndpointsFormat = 'flat' | 'json';

export interface SnapshotRef {
  version: string;
  config: SnapshotPart;
  endpoints: SnapshotPart;
  endpointsFormat: EndpointsFormat;
}

export type EndpointsPartData = Pick<PushContextData, 'endpoints' | 'endpointVersions' | 'workloads'>;
export type ConfigPartData = Omit<PushContextData, 'endpoints' | 'endpointVersions' | 'workloads' | 'version'>;

function writeJson(version: string, value: unknown): SnapshotPart {
  const bytes = Buffer.from(JSON.stringify(value));
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return { version, buffer, length: bytes.length };
}

function readJson<T>(part: SnapshotPart): T {
  // Buffer#toString reads shared memory in place (TextDecoder refuses it).
  return JSON.parse(Buffer.from(part.buffer, 0, part.length).toString('utf8')) as T;
}

/**
 * Encode; when `reuse` is given and its config part has the same config version, only endpoints are written.
 * Pass the same `flat` encoder across pushes so unchanged services' endpoint buffers are reused, not re-encoded.
 */
export function encodeSnapshot(
  data: PushContextData, configVersion: string, reuse?: SnapshotRef, format: EndpointsFormat = 'flat',
  flat: FlatEndpointsEncoder = new FlatEndpointsEncoder(),
): SnapshotRef {
  const { endpoints, endpointVersions, workloads, version, ...config } = data;
  return {
    version,
    config: reuse && reuse.config.version === configVersion ? reuse.config : writeJson(configVersion, config),
    endpoints: format === 'flat'
      ? flat.encode(version, endpoints, endpointVersions)
      : writeJson(version, { endpoints, endpointVersions, workloads }),
    endpointsFormat: format,
  };
}

export interface DecodedConfig { version: string; data: ConfigPartData }

/**
 * Decode into a PushContext, reusing an already decoded config part of the same version and, from the flat
 * endpoints of the snapshot decoded before (`previous`), the endpoints of services whose version is unchanged.
 */
export function decodeSnapshot(ref: SnapshotRef, cachedConfig?: DecodedConfig, previous?: FlatEndpointSource): { ctx: PushContext; config: DecodedConfig; endpoints?: FlatEndpointSource } {
  const config = cachedConfig && cachedConfig.version === ref.config.version
    ? cachedConfig
    : { version: ref.config.version, data: readJson<ConfigPartData>(ref.config) };
  if (ref.endpointsFormat === 'flat') {
    const source = new FlatEndpointSource(ref.endpoints, previous);
    // Workers never read workloads (scopes are computed on the main thread); endpoints come from the flatbuffer.
    const data: PushContextData = { ...config.data, endpoints: {}, endpointVersions: {}, workloads: [], version: ref.version };
    return { ctx: new PushContext(data, source), config, endpoints: source };
  }
  const eps = readJson<EndpointsPartData>(ref.endpoints);
  return { ctx: new PushContext({ ...config.data, ...eps, version: ref.version }), config };
}
