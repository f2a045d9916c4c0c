/**
 * DiscoveryRequest decoding and DiscoveryResponse framing.
 *
 * A response is assembled from cached, already-encoded resource entries: field 2 (repeated Any) is written as
 * tag + length + the cached Any bytes, so the main thread never re-encodes a resource.
 * Field numbers follow envoy/service/discovery/v3/discovery.proto.
 */
import { messageType, structToJson } from './encode.js';
import { WireCursor } from './wire.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE } from './type-urls.js';

export interface NodeInfo {
  id: string;
  cluster: string;
  metadata: Record<string, unknown>;
  userAgentName?: string;
  userAgentVersion?: string;
}

export interface DiscoveryRequest {
  versionInfo: string;
  node?: NodeInfo;
  resourceNames: string[];
  /**
   * resource_names as they were on the wire (a view into the request), when its entries were contiguous: a stream
   * keeps a copy with the names it decoded, so an ACK repeating the same bytes reuses them (see NamesMemo).
   */
  namesRaw?: Buffer;
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

interface RawRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string; user_agent_version?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

export function decodeNode(n: RawRequest['node']): NodeInfo | undefined {
  if (!n) return undefined;
  return {
    id: n.id ?? '',
    cluster: n.cluster ?? '',
    metadata: structToJson(n.metadata),
    userAgentName: n.user_agent_name,
    userAgentVersion: n.user_agent_version,
  };
}

/** A stream's last resource_names for a type: their wire bytes and the names decoded from them. */
export interface NamesMemo {
  raw: Buffer;
  names: string[];
}

/** The type URLs ADS serves, as bytes: a request's type_url that equals one is read as the constant string. */
const KNOWN_TYPE_URLS = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE].map((t) => ({ t, b: Buffer.from(t) }));

function typeUrlAt(buf: Buffer, start: number, end: number): string {
  const len = end - start;
  for (const k of KNOWN_TYPE_URLS) if (k.b.length === len && buf.compare(k.b, 0, len, start, end) === 0) return k.t;
  return buf.toString('utf8', start, end);
}

/**
 * A DiscoveryRequest read straight off the wire. The node (field 2) — with its metadata Struct, the bulk of the
 * message, which Envoy repeats on every request unless set_node_on_first_message_only — is decoded only when read:
 * a stream reads it once, on its first request, and every ACK after that skips it. Resource names are decoded when
 * first read too, unless reuseNames() found them equal, byte for byte, to names the stream already holds (every ACK
 * repeats its names). Known type URLs are the constant strings (no copy to allocate and hash).
 */
export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequest {
  return new WireRequest(buf);
}

/**
 * The request object decodeDiscoveryRequest returns: one class, so the lazily decoded fields are accessors on its
 * prototype (per-object accessors would turn every request into a slow dictionary-mode object).
 */
class WireRequest implements DiscoveryRequest {
  versionInfo = '';
  typeUrl = '';
  responseNonce = '';
  errorDetail: DiscoveryRequest['errorDetail'] = undefined;
  namesRaw: Buffer | undefined = undefined;
  private names: string[] | undefined = undefined;
  private nodeInfo: NodeInfo | undefined = undefined;
  private nodeStart = -1;
  private nodeEnd = -1;
  private namesStart = -1;
  private namesEnd = -1;

  constructor(private readonly buf: Buffer) {
    // The resource_names entries: one contiguous run [namesStart, namesEnd), or scattered among other fields.
    let namesStart = -1, namesEnd = -1, scattered = false;
    const c = new WireCursor(buf);
    while (c.next()) {
      if (c.wireType !== 2) continue; // every field ADS reads here is length-delimited
      switch (c.field) {
        case 1: this.versionInfo = c.str(); break;
        case 2: this.nodeStart = c.value; this.nodeEnd = c.end; break;
        case 3:
          if (namesStart < 0) namesStart = c.start;
          else if (c.start !== namesEnd) scattered = true;
          namesEnd = c.end;
          break;
        case 4: this.typeUrl = typeUrlAt(buf, c.value, c.end); break;
        case 5: this.responseNonce = c.str(); break;
        case 6: this.errorDetail = decodeStatus(buf, c.value, c.end); break;
        default: break; // dynamic parameter constraints, resource locators: not used
      }
    }
    if (namesStart < 0) this.names = [];
    else if (scattered) this.names = namesIn(buf, 0, buf.length);
    else {
      this.namesRaw = buf.subarray(namesStart, namesEnd);
      this.namesStart = namesStart;
      this.namesEnd = namesEnd;
    }
  }

  get resourceNames(): string[] {
    return this.names ??= namesIn(this.buf, this.namesStart, this.namesEnd);
  }

  set resourceNames(v: string[]) {
    this.names = v;
  }

  get node(): NodeInfo | undefined {
    if (this.nodeStart >= 0) {
      this.nodeInfo = decodeNodeWire(this.buf, this.nodeStart, this.nodeEnd);
      this.nodeStart = -1;
    }
    return this.nodeInfo;
  }

  set node(v: NodeInfo | undefined) {
    this.nodeInfo = v;
    this.nodeStart = -1;
  }

  /** Whether the names have been decoded or assigned (tests). */
  get namesDecoded(): boolean {
    return this.names !== undefined;
  }

  /** Whether the node has been decoded or assigned (tests). */
  get nodeDecoded(): boolean {
    return this.nodeStart < 0;
  }
}

/** The resource_names (field 3) in buf[start, end). */
function namesIn(buf: Buffer, start: number, end: number): string[] {
  const names: string[] = [];
  const n = new WireCursor(buf, start, end);
  while (n.next()) if (n.field === 3 && n.wireType === 2) names.push(n.str());
  return names;
}

/**
 * When the request's resource_names are, byte for byte, the ones a stream kept for this type (`memo`), take the
 * kept names instead of decoding them. Returns whether it did.
 */
export function reuseNames(req: DiscoveryRequest, memo: NamesMemo | undefined): boolean {
  const raw = req.namesRaw;
  if (!raw || !memo || memo.raw.length !== raw.length || !memo.raw.equals(raw)) return false;
  req.resourceNames = memo.names;
  return true;
}

/**
 * envoy.config.core.v3.Node straight from the wire, as decodeNode(protobufjs decode) gives it: id 1, cluster 2,
 * metadata 3 (google.protobuf.Struct), user_agent_name 6, user_agent_version 7. A connect storm decodes one per
 * proxy; protobufjs built a message tree first (~20 µs per node with Istio's metadata).
 */
export function decodeNodeWire(buf: Buffer, start: number, end: number): NodeInfo {
  const n: NodeInfo = { id: '', cluster: '', metadata: {}, userAgentName: '', userAgentVersion: '' };
  const c = new WireCursor(buf, start, end);
  while (c.next()) {
    if (c.wireType !== 2) continue;
    switch (c.field) {
      case 1: n.id = c.str(); break;
      case 2: n.cluster = c.str(); break;
      case 3: n.metadata = decodeStructWire(buf, c.value, c.end, n.metadata); break;
      case 6: n.userAgentName = c.str(); break;
      case 7: n.userAgentVersion = c.str(); break;
      default: break;
    }
  }
  return n;
}

/** google.protobuf.Struct as plain JSON: fields 1 (map<string, Value>); a repeated Struct field merges. */
function decodeStructWire(buf: Buffer, start: number, end: number, into: Record<string, unknown> = {}): Record<string, unknown> {
  const c = new WireCursor(buf, start, end);
  while (c.next()) {
    if (c.field !== 1 || c.wireType !== 2) continue;
    let key = '';
    let value: unknown = null;
    const e = new WireCursor(buf, c.value, c.end);
    while (e.next()) {
      if (e.field === 1 && e.wireType === 2) key = e.str();
      else if (e.field === 2 && e.wireType === 2) value = decodeValueWire(buf, e.value, e.end);
    }
    into[key] = value;
  }
  return into;
}

/**
 * google.protobuf.Value: null 1, number 2 (double), string 3, bool 4, struct 5, list 6 (ListValue: values 1).
 * Of a oneof given twice on the wire the last wins; no kind at all reads as null (as structToJson).
 */
function decodeValueWire(buf: Buffer, start: number, end: number): unknown {
  let v: unknown = null;
  const c = new WireCursor(buf, start, end);
  while (c.next()) {
    switch (c.field) {
      case 1: v = null; break;
      case 2: if (c.wireType === 1) v = buf.readDoubleLE(c.value); break;
      case 3: if (c.wireType === 2) v = c.str(); break;
      case 4: if (c.wireType === 0) v = c.value !== 0; break;
      case 5: if (c.wireType === 2) v = decodeStructWire(buf, c.value, c.end); break;
      case 6: if (c.wireType === 2) v = decodeListWire(buf, c.value, c.end); break;
      default: break;
    }
  }
  return v;
}

/** google.protobuf.ListValue: values 1. */
function decodeListWire(buf: Buffer, start: number, end: number): unknown[] {
  const list: unknown[] = [];
  const l = new WireCursor(buf, start, end);
  while (l.next()) if (l.field === 1 && l.wireType === 2) list.push(decodeValueWire(buf, l.value, l.end));
  return list;
}

/** google.rpc.Status: code (1, varint), message (2). */
function decodeStatus(buf: Buffer, start: number, end: number): { code: number; message: string } {
  let code = 0, message = '';
  const g = new WireCursor(buf, start, end);
  while (g.next()) {
    if (g.field === 1 && g.wireType === 0) code = g.value | 0;
    else if (g.field === 2 && g.wireType === 2) message = g.str();
  }
  return { code, message };
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) { n = Math.floor(n / 128); len++; }
  return len;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) { buf[offset++] = (n & 0x7f) | 0x80; n = Math.floor(n / 128); }
  buf[offset++] = n;
  return offset;
}

/** Tag + length prefix + payload for a length-delimited field. */
export function lengthDelimited(fieldNumber: number, payload: Uint8Array): Buffer {
  const tag = (fieldNumber << 3) | 2;
  const out = Buffer.allocUnsafe(varintLength(tag) + varintLength(payload.length) + payload.length);
  let o = writeVarint(out, 0, tag);
  o = writeVarint(out, o, payload.length);
  out.set(payload, o);
  return out;
}

/** The cached form of one resource inside a DiscoveryResponse: field 2 (resources) wrapping the Any bytes. */
export function resourceEntry(anyBytes: Uint8Array): Buffer {
  return lengthDelimited(2, anyBytes);
}

/** Frame a DiscoveryResponse from pre-encoded resource entries (see resourceEntry) into a buffer of its own. */
export function frameDiscoveryResponse(
  versionInfo: string, entries: readonly Buffer[], typeUrl: string, nonce: string,
): Buffer {
  return framed(new PendingResponse(versionInfo, entries, typeUrl, nonce));
}

function framed(p: PendingResponse): Buffer {
  return p.writeTo(Buffer.allocUnsafe(p.length));
}

/**
 * A DiscoveryResponse framed only when grpc-js serializes it (serializeResponse, the ADS method's
 * responseSerialize): into a buffer reused for every response, which grpc-js copies into its own frame (with the
 * 5-byte gRPC prefix) right after serializing, in the same synchronous call. Framing each response into a fresh
 * buffer that grpc-js then copied again cost ~200 ms of main thread in a 5,000-proxy storm (allocation and page
 * faults) against ~80 ms for grpc-js's own copy.
 */
export class PendingResponse {
  readonly length: number;
  /**
   * A DiscoveryResponse, or with `removed` a DeltaDiscoveryResponse (the same field numbers: system_version_info 1,
   * resources 2, type_url 4, nonce 5, then removed_resources 6).
   */
  constructor(readonly versionInfo: string, readonly entries: readonly Buffer[], readonly typeUrl: string, readonly nonce: string,
    readonly removed: readonly string[] = []) {
    let n = fieldLength(1, Buffer.byteLength(versionInfo)) + fieldLength(4, Buffer.byteLength(typeUrl)) + fieldLength(5, Buffer.byteLength(nonce));
    for (const e of entries) n += e.length;
    for (const r of removed) n += fieldLength(6, Buffer.byteLength(r));
    this.length = n;
  }

  /** The framed bytes, into `out` from offset 0 (out.length >= this.length). */
  writeTo(out: Buffer): Buffer {
    let o = writeString(out, 0, 1, this.versionInfo);
    for (const e of this.entries) o += e.copy(out, o);
    o = writeString(out, o, 4, this.typeUrl);
    o = writeString(out, o, 5, this.nonce);
    for (const r of this.removed) o = writeString(out, o, 6, r);
    return out.subarray(0, o);
  }
}

function fieldLength(fieldNumber: number, payloadLength: number): number {
  return varintLength((fieldNumber << 3) | 2) + varintLength(payloadLength) + payloadLength;
}

function writeString(out: Buffer, offset: number, fieldNumber: number, value: string): number {
  let o = writeVarint(out, offset, (fieldNumber << 3) | 2);
  o = writeVarint(out, o, Buffer.byteLength(value));
  return o + out.write(value, o);
}

/** Responses up to this size are framed into the reused buffer; larger ones get their own (not kept). */
const SCRATCH_MAX = 1 << 20;
let scratch = Buffer.allocUnsafe(1 << 16);

/**
 * The ADS responseSerialize: framed bytes pass through; a PendingResponse is framed into the reused buffer. The
 * result is valid until the next call, which is all grpc-js needs: it copies it before returning (test/unit/
 * pending-response.test.ts proves that with real streams, as every e2e test does with real clients).
 */
export function serializeResponse(v: Buffer | PendingResponse): Buffer {
  if (!(v instanceof PendingResponse)) return v;
  if (v.length > SCRATCH_MAX) return framed(v);
  if (scratch.length < v.length) scratch = Buffer.allocUnsafe(Math.min(SCRATCH_MAX, Math.max(v.length, scratch.length * 2)));
  return v.writeTo(scratch);
}

export interface DeltaDiscoveryRequest {
  node?: NodeInfo;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

export function decodeDeltaDiscoveryRequest(buf: Buffer): DeltaDiscoveryRequest {
  const t = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const raw = t.decode(buf) as unknown as {
    node?: RawRequest['node']; type_url?: string; resource_names_subscribe?: string[]; resource_names_unsubscribe?: string[];
    initial_resource_versions?: Record<string, string>; response_nonce?: string; error_detail?: { code?: number; message?: string };
  };
  return {
    node: decodeNode(raw.node),
    typeUrl: raw.type_url ?? '',
    subscribe: raw.resource_names_subscribe ?? [],
    unsubscribe: raw.resource_names_unsubscribe ?? [],
    initialResourceVersions: raw.initial_resource_versions ?? {},
    responseNonce: raw.response_nonce ?? '',
    errorDetail: raw.error_detail ? { code: raw.error_detail.code ?? 0, message: raw.error_detail.message ?? '' } : undefined,
  };
}

/**
 * A delta Resource {version = 1, resource = 2, name = 3} wrapped as DeltaDiscoveryResponse field 2. The cached SotW
 * entry is already field 2 + the Any bytes, which is exactly Resource.resource: no re-encoding here either.
 */
export function deltaResourceEntry(name: string, version: string, sotwEntry: Buffer): Buffer {
  return lengthDelimited(2, Buffer.concat([lengthDelimited(1, Buffer.from(version)), sotwEntry, lengthDelimited(3, Buffer.from(name))]));
}

export function frameDeltaResponse(
  systemVersion: string, resources: readonly Buffer[], typeUrl: string, removed: readonly string[], nonce: string,
): Buffer {
  return framed(new PendingResponse(systemVersion, resources, typeUrl, nonce, removed));
}
