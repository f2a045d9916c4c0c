/**
 * The endpoints part of the snapshot as a flatbuffer in a SharedArrayBuffer, read in place by workers: a task that
 * needs three services' endpoints decodes those three (binary search by hostname), not the whole mesh. This is
 * the part that changes on every endpoint-only push and the bulk of a large mesh's snapshot.
 */
import * as flatbuffers from 'flatbuffers';
import { HostEndpoints, Endpoint as FbEndpoint, Label } from './fb/snapshot_generated.js';
import type { Endpoint } from './service.js';
import type { SnapshotPart } from './snapshot-codec.js';

/** Where PushContext reads endpoints from: plain objects on the main thread, the flatbuffer in workers. */
export interface EndpointSource {
  endpoints(hostname: string): readonly Endpoint[];
  version(hostname: string): string;
}

/** A builder that writes each distinct string once (labels, namespaces, zones repeat across thousands of endpoints). */
class Strings {
  private readonly offsets = new Map<string, number>();
  constructor(private readonly b: flatbuffers.Builder) {}
  get(s: string): number {
    let o = this.offsets.get(s);
    if (o === undefined) { o = this.b.createString(s); this.offsets.set(s, o); }
    return o;
  }
}

function labels(b: flatbuffers.Builder, str: Strings, l: Record<string, string>): number[] {
  return Object.keys(l).sort().map((k) => Label.createLabel(b, str.get(k), str.get(l[k]!)));
}

/** One service's endpoints as a standalone flatbuffer (a HostEndpoints root). */
function encodeHost(hostname: string, version: string, eps: readonly Endpoint[]): Uint8Array {
  const b = new flatbuffers.Builder(256 + eps.length * 256);
  const str = new Strings(b);
  const offsets = eps.map((e) => {
    const lv = FbEndpoint.createLabelsVector(b, labels(b, str, e.labels));
    return FbEndpoint.createEndpoint(b, str.get(e.address), e.port, str.get(e.servicePortName), lv,
      str.get(e.locality.region), str.get(e.locality.zone), str.get(e.locality.subzone), e.healthy,
      e.serviceAccount === undefined ? 0 : str.get(e.serviceAccount), str.get(e.namespace),
      e.workloadName === undefined ? 0 : str.get(e.workloadName), str.get(e.clusterId));
  });
  b.finish(HostEndpoints.createHostEndpoints(b, str.get(hostname), str.get(version), HostEndpoints.createEndpointsVector(b, offsets)));
  return b.asUint8Array();
}

/**
 * Writes the endpoints part: [u32 index length][index JSON: sorted [hostname, version, offset, length]…] then one
 * standalone flatbuffer per service. Each service's buffer is cached by its endpoint version, so an endpoint-only
 * push re-encodes only the services that changed and copies the rest (structural sharing at the snapshot level).
 * Workloads are not written: workers never read them (scopes are computed on the main thread).
 */
export class FlatEndpointsEncoder {
  private hosts = new Map<string, { version: string; bytes: Uint8Array }>();
  encodedHosts = 0;

  encode(version: string, endpoints: Record<string, Endpoint[]>, versions: Record<string, string>): SnapshotPart {
    const next = new Map<string, { version: string; bytes: Uint8Array }>();
    const names = Object.keys(endpoints).sort();
    for (const h of names) {
      const v = versions[h] ?? '0';
      let e = this.hosts.get(h);
      if (!e || e.version !== v) { e = { version: v, bytes: encodeHost(h, v, endpoints[h]!) }; this.encodedHosts++; }
      next.set(h, e);
    }
    this.hosts = next;
    let offset = 0;
    const index = names.map((h) => { const e = next.get(h)!; const entry = [h, e.version, offset, e.bytes.length]; offset += e.bytes.length; return entry; });
    const indexBytes = Buffer.from(JSON.stringify(index));
    const head = 4 + indexBytes.length;
    const total = head + offset;
    const buffer = new SharedArrayBuffer(total);
    const view = Buffer.from(buffer);
    view.writeUInt32LE(indexBytes.length, 0);
    view.set(indexBytes, 4);
    let at = head;
    for (const h of names) { const b = next.get(h)!.bytes; view.set(b, at); at += b.length; }
    return { version, buffer, length: total };
  }
}

function readLabels(n: number, at: (i: number) => Label | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) { const l = at(i)!; out[l.key()!] = l.value() ?? ''; }
  return out;
}

function byteBuffer(part: SnapshotPart, offset: number, length: number): flatbuffers.ByteBuffer {
  const bb = new flatbuffers.ByteBuffer(new Uint8Array(part.buffer, offset, length));
  // TextDecoder refuses views on shared memory; Buffer#toString reads them in place.
  (bb as unknown as { text_decoder_: { decode(u: Uint8Array): string } }).text_decoder_ = {
    decode: (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('utf8'),
  };
  return bb;
}

/**
 * Lazy, memoised reader over the endpoints part in shared memory: only the services asked for are decoded. Given
 * the source of the snapshot before, a service whose endpoint version (a content hash) is unchanged takes the
 * endpoints that source decoded instead of decoding them again: after a full push most services keep theirs.
 * Only that source's own memo is kept (not the source), so memory stays at two snapshots' worth.
 */
export class FlatEndpointSource implements EndpointSource {
  private readonly index = new Map<string, [version: string, offset: number, length: number]>();
  private readonly memo = new Map<string, { version: string; endpoints: Endpoint[] }>();
  private readonly dataStart: number;
  private readonly before: Map<string, { version: string; endpoints: Endpoint[] }> | undefined;

  constructor(private readonly part: SnapshotPart, previous?: FlatEndpointSource) {
    this.before = previous?.memo;
    const view = Buffer.from(part.buffer, 0, part.length);
    const indexLen = view.readUInt32LE(0);
    const entries = JSON.parse(view.toString('utf8', 4, 4 + indexLen)) as Array<[string, string, number, number]>;
    this.dataStart = 4 + indexLen;
    for (const [h, v, o, l] of entries) this.index.set(h, [v, o, l]);
  }

  version(hostname: string): string {
    return this.index.get(hostname)?.[0] ?? '0';
  }

  endpoints(hostname: string): readonly Endpoint[] {
    const cached = this.memo.get(hostname);
    if (cached) return cached.endpoints;
    const at = this.index.get(hostname);
    const version = at?.[0] ?? '0';
    const before = this.before?.get(hostname);
    if (before && before.version === version) {
      this.memo.set(hostname, before);
      return before.endpoints;
    }
    const out: Endpoint[] = [];
    if (at) {
      const h = HostEndpoints.getRootAsHostEndpoints(byteBuffer(this.part, this.dataStart + at[1], at[2]));
      const e = new FbEndpoint();
      for (let i = 0; i < h.endpointsLength(); i++) {
        h.endpoints(i, e);
        out.push({
          address: e.address()!, port: e.port(), servicePortName: e.servicePortName() ?? '',
          labels: readLabels(e.labelsLength(), (j) => e.labels(j)),
          locality: { region: e.region() ?? '', zone: e.zone() ?? '', subzone: e.subzone() ?? '' },
          healthy: e.healthy(), serviceAccount: e.serviceAccount() ?? undefined, namespace: e.namespace() ?? '',
          workloadName: e.workloadName() ?? undefined, clusterId: e.clusterId() ?? '',
        });
      }
    }
    this.memo.set(hostname, { version, endpoints: out });
    return out;
  }
}
