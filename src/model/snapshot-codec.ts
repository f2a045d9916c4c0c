/**
 * Hands a PushContext to workers without a per-task copy. The snapshot is written into SharedArrayBuffers once per
 * push; every task carries only references to them (SharedArrayBuffers are shared, not cloned, by postMessage),
 * and each worker decodes each part once per version. It is split in two parts so an endpoint-only push (incremental
 * EDS) rewrites only the endpoints part and workers keep their decoded config part.
 */
import type { PushContextData } from './push-context.js';

export interface SnapshotPart { version: string; buffer: SharedArrayBuffer; length: number }

export interface SnapshotRef {
  version: string;
  config: SnapshotPart;
  endpoints: SnapshotPart;
}

export type EndpointsPartData = Pick<PushContextData, 'endpoints' | 'endpointVersions' | 'workloads'>;
export type ConfigPartData = Omit<PushContextData, 'endpoints' | 'endpointVersions' | 'workloads' | 'version'>;

function writePart(version: string, value: unknown): SnapshotPart {
  const bytes = Buffer.from(JSON.stringify(value));
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return { version, buffer, length: bytes.length };
}

const decoder = new TextDecoder();

function readPart<T>(part: SnapshotPart): T {
  // TextDecoder refuses views on shared memory: copy into a private buffer first (once per worker per version).
  return JSON.parse(decoder.decode(new Uint8Array(part.buffer, 0, part.length).slice())) as T;
}

/** Encode; when `reuseConfig` is given and its config part is still valid, only the endpoints part is written. */
export function encodeSnapshot(data: PushContextData, configVersion: string, reuseConfig?: SnapshotRef): SnapshotRef {
  const { endpoints, endpointVersions, workloads, version, ...config } = data;
  return {
    version,
    config: reuseConfig && reuseConfig.config.version === configVersion ? reuseConfig.config : writePart(configVersion, config),
    endpoints: writePart(version, { endpoints, endpointVersions, workloads }),
  };
}

/** Decode, reusing an already decoded config part of the same version. */
export function decodeSnapshot(ref: SnapshotRef, cachedConfig?: { version: string; data: ConfigPartData }): { data: PushContextData; config: { version: string; data: ConfigPartData } } {
  const config = cachedConfig && cachedConfig.version === ref.config.version
    ? cachedConfig
    : { version: ref.config.version, data: readPart<ConfigPartData>(ref.config) };
  const eps = readPart<EndpointsPartData>(ref.endpoints);
  return { data: { ...config.data, ...eps, version: ref.version }, config };
}
