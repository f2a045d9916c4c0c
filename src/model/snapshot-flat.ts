/**
 * The endpoints part of the snapshot as a flatbuffer in a SharedArrayBuffer, read in place by workers: a task that
 * needs three services' endpoints decodes those three (binary search by hostname), not the whole mesh. This is
 * the part that changes on every endpoint-only push and the bulk of a large mesh's snapshot.
 */
import * as flatbuffers from 'flatbuffers';
import { EndpointsPart, HostEndpoints, Endpoint as FbEndpoint, Label, Workload as FbWorkload } from './fb/snapshot_generated.js';
import type { Endpoint } from './service.js';
import type { Workload } from './push-context.js';
import type { SnapshotPart } from './snapshot-codec.js';

/** Where PushContext reads endpoints from: plain objects on the main thread, the flatbuffer in workers. */
export interface EndpointSource {
  endpoints(hostname: string): readonly Endpoint[];
  version(hostname: string): string;
}

function labels(b: flatbuffers.Builder, l: Record<string, string>): number[] {
  return Object.keys(l).sort().map((k) => Label.createLabel(b, b.createString(k), b.createString(l[k]!)));
}

export function encodeEndpointsFlat(
  version: string, endpoints: Record<string, Endpoint[]>, versions: Record<string, string>, workloads: Workload[],
): SnapshotPart {
  const b = new flatbuffers.Builder(1024 * 64);
  const hosts = Object.keys(endpoints).sort(); // sorted: readers binary-search by hostname
  const hostOffsets = hosts.map((h) => {
    const eps = endpoints[h]!.map((e) => {
      const lv = FbEndpoint.createLabelsVector(b, labels(b, e.labels));
      return FbEndpoint.createEndpoint(b, b.createString(e.address), e.port, b.createString(e.servicePortName), lv,
        b.createString(e.locality.region), b.createString(e.locality.zone), b.createString(e.locality.subzone), e.healthy,
        e.serviceAccount === undefined ? 0 : b.createString(e.serviceAccount), b.createString(e.namespace),
        e.workloadName === undefined ? 0 : b.createString(e.workloadName), b.createString(e.clusterId));
    });
    return HostEndpoints.createHostEndpoints(b, b.createString(h), b.createString(versions[h] ?? '0'), HostEndpoints.createEndpointsVector(b, eps));
  });
  const wl = [...workloads].sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0)).map((w) =>
    FbWorkload.createWorkload(b, b.createString(w.ip), b.createString(w.name), b.createString(w.namespace),
      FbWorkload.createLabelsVector(b, labels(b, w.labels)), w.serviceAccount === undefined ? 0 : b.createString(w.serviceAccount),
      b.createString(w.locality)));
  b.finish(EndpointsPart.createEndpointsPart(b, EndpointsPart.createHostsVector(b, hostOffsets), EndpointsPart.createWorkloadsVector(b, wl)));
  const bytes = b.asUint8Array();
  const buffer = new SharedArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return { version, buffer, length: bytes.length };
}

function readLabels(n: number, at: (i: number) => Label | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) { const l = at(i)!; out[l.key()!] = l.value() ?? ''; }
  return out;
}

/** Lazy, memoised reader over a flatbuffer in shared memory. */
export class FlatEndpointSource implements EndpointSource {
  private readonly root: EndpointsPart;
  private readonly memo = new Map<string, Endpoint[]>();

  constructor(part: SnapshotPart) {
    const bb = new flatbuffers.ByteBuffer(new Uint8Array(part.buffer, 0, part.length));
    // TextDecoder refuses views on shared memory; Buffer#toString reads them in place.
    (bb as unknown as { text_decoder_: { decode(u: Uint8Array): string } }).text_decoder_ = {
      decode: (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('utf8'),
    };
    this.root = EndpointsPart.getRootAsEndpointsPart(bb);
  }

  private find(hostname: string): HostEndpoints | undefined {
    let lo = 0, hi = this.root.hostsLength() - 1;
    const h = new HostEndpoints();
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const name = this.root.hosts(mid, h)!.hostname()!;
      if (name === hostname) return h;
      if (name < hostname) lo = mid + 1; else hi = mid - 1;
    }
    return undefined;
  }

  version(hostname: string): string {
    return this.find(hostname)?.version() ?? '0';
  }

  endpoints(hostname: string): readonly Endpoint[] {
    const cached = this.memo.get(hostname);
    if (cached) return cached;
    const h = this.find(hostname);
    const out: Endpoint[] = [];
    const e = new FbEndpoint();
    for (let i = 0; h && i < h.endpointsLength(); i++) {
      h.endpoints(i, e);
      out.push({
        address: e.address()!, port: e.port(), servicePortName: e.servicePortName() ?? '',
        labels: readLabels(e.labelsLength(), (j) => e.labels(j)),
        locality: { region: e.region() ?? '', zone: e.zone() ?? '', subzone: e.subzone() ?? '' },
        healthy: e.healthy(), serviceAccount: e.serviceAccount() ?? undefined, namespace: e.namespace() ?? '',
        workloadName: e.workloadName() ?? undefined, clusterId: e.clusterId() ?? '',
      });
    }
    this.memo.set(hostname, out);
    return out;
  }

  workloads(): Workload[] {
    const out: Workload[] = [];
    const w = new FbWorkload();
    for (let i = 0; i < this.root.workloadsLength(); i++) {
      this.root.workloads(i, w);
      out.push({
        ip: w.ip()!, name: w.name() ?? '', namespace: w.namespace() ?? '', labels: readLabels(w.labelsLength(), (j) => w.labels(j)),
        serviceAccount: w.serviceAccount() ?? undefined, locality: w.locality() ?? '',
      });
    }
    return out;
  }
}
