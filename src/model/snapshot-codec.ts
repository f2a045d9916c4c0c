/**
 * Hands a PushContext to workers without a per-task copy: the data is serialised once per push into a
 * SharedArrayBuffer, every task carries only a reference to it (SharedArrayBuffers are shared, not cloned, by
 * postMessage), and each worker decodes it once per version. The flatbuffers encoding arrives with the
 * push-engine issue and is benchmarked against this one.
 */
import type { PushContextData } from './push-context.js';

export interface SnapshotRef {
  version: string;
  buffer: SharedArrayBuffer;
  length: number;
}

export function encodeSnapshot(data: PushContextData): SnapshotRef {
  const bytes = Buffer.from(JSON.stringify(data));
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return { version: data.version, buffer, length: bytes.length };
}

const decoder = new TextDecoder();

export function decodeSnapshot(ref: SnapshotRef): PushContextData {
  // TextDecoder refuses views on shared memory; copy into a private buffer first (one copy per worker per version).
  const view = new Uint8Array(ref.buffer, 0, ref.length);
  return JSON.parse(decoder.decode(view.slice())) as PushContextData;
}
