/**
 * Strict encoding of plain objects into Envoy protobuf bytes.
 *
 * protobufjs' fromObject() silently drops keys it does not know; a typo in a builder would then ship a resource
 * without the field. normalize() walks the object against the message type first and throws on any unknown field or
 * enum value, and turns `{ '@type': URL, ...fields }` into a packed google.protobuf.Any.
 */
import protobuf from 'protobufjs';
import { envoyRoot } from './envoy-protos.js';
import { TYPE_PREFIX } from './type-urls.js';

export class EncodeError extends Error {
  readonly code = 'ERR_ENCODE';
}

/** A message written as JSON-like data with proto field names; Any values carry an '@type' key. */
export type ProtoObject = { [field: string]: unknown };

const typeCache = new Map<string, protobuf.Type>();

export function messageType(fullName: string): protobuf.Type {
  let t = typeCache.get(fullName);
  if (!t) {
    t = envoyRoot().lookupType(fullName);
    typeCache.set(fullName, t);
  }
  return t;
}

function typeFromUrl(typeUrl: string): protobuf.Type {
  if (!typeUrl.startsWith(TYPE_PREFIX)) throw new EncodeError(`unsupported Any type URL ${typeUrl}`);
  return messageType(typeUrl.slice(TYPE_PREFIX.length));
}

/**
 * Where in the object a value sits, for error messages only: a linked path built as the walk descends and turned
 * into text (`Cluster.transport_socket.typed_config`) only when an error is thrown — building the string for every
 * field cost more than the rest of the walk.
 */
type Path = string | { up: Path; key: string | number; index?: boolean };

function pathText(p: Path): string {
  if (typeof p === 'string') return p;
  return p.index ? `${pathText(p.up)}[${p.key}]` : `${pathText(p.up)}.${p.key}`;
}

/** What normalize needs to know of one field, worked out once per field (reflection getters such as fullName walk
 * the type tree on every call). */
interface FieldPlan {
  field: protobuf.Field;
  /** A nested message (not Any): normalized recursively. */
  message?: protobuf.Type;
  any?: boolean;
  /** Enum name → number. */
  enumValues?: Record<string, number>;
  /** The conversion protobufjs' fromObject applies to this scalar type (so its encoder can be called directly). */
  scalar?: (v: unknown) => unknown;
}

const toNumber = (v: unknown): unknown => Number(v);
const toInt32 = (v: unknown): unknown => (v as number) | 0;
const toUint32 = (v: unknown): unknown => (v as number) >>> 0;
const toBool = (v: unknown): unknown => Boolean(v);
const toStr = (v: unknown): unknown => (typeof v === 'string' ? v : String(v));
const SCALARS: Record<string, (v: unknown) => unknown> = {
  double: toNumber, float: toNumber, int32: toInt32, sint32: toInt32, sfixed32: toInt32,
  uint32: toUint32, fixed32: toUint32, bool: toBool, string: toStr,
};

const plans = new WeakMap<protobuf.Type, Map<string, FieldPlan | null>>();

function fieldPlan(type: protobuf.Type, key: string): FieldPlan | undefined {
  let m = plans.get(type);
  if (!m) plans.set(type, (m = new Map()));
  let fp = m.get(key);
  if (fp === undefined) {
    const field = type.fields[key];
    if (!field) { m.set(key, null); return undefined; }
    if (!field.resolved) field.resolve();
    const rt = field.resolvedType;
    fp = { field };
    if (rt instanceof protobuf.Type) {
      if (rt.fullName === '.google.protobuf.Any') fp.any = true; else fp.message = rt;
    } else if (rt instanceof protobuf.Enum) {
      fp.enumValues = rt.values;
    } else {
      // 64-bit integers and bytes are passed as given: protobufjs' writer takes numbers, strings and Longs for the
      // former and base64 strings or byte arrays for the latter, as its fromObject would produce.
      fp.scalar = SCALARS[field.type];
    }
    m.set(key, fp);
  }
  return fp ?? undefined;
}

/**
 * One field value; `parent`, `key` and `index` say where it sits. The path object is made only when a message
 * value needs it as its own parent, or for an error (one per scalar field was most of normalize's allocation).
 */
function normalizeValue(fp: FieldPlan, value: unknown, parent: Path, key: string | number, index: boolean): unknown {
  if (fp.message || fp.any) {
    const at: Path = { up: parent, key, index };
    if (typeof value !== 'object' || value === null) {
      throw new EncodeError(`${pathText(at)}: expected ${(fp.field.resolvedType as protobuf.Type).fullName} object`);
    }
    return fp.any ? packAny(value as ProtoObject, at) : normalize(fp.message!, value as ProtoObject, at);
  }
  if (value === null) return value;
  if (fp.enumValues) {
    if (typeof value !== 'string') return value;
    const n = fp.enumValues[value];
    if (n === undefined || !Object.prototype.hasOwnProperty.call(fp.enumValues, value)) {
      throw new EncodeError(`${pathText({ up: parent, key, index })}: unknown enum value ${value} for ${(fp.field.resolvedType as protobuf.Enum).fullName}`);
    }
    return n;
  }
  return fp.scalar ? fp.scalar(value) : value;
}

/**
 * Check `obj` against `type` and return what protobufjs' encoder takes directly: enum names as numbers, scalars
 * converted as its fromObject converts them, Anys packed. (Encoding this object gives the bytes
 * `type.encode(type.fromObject(obj))` gives, without building message instances a second time.)
 */
function normalize(type: protobuf.Type, obj: ProtoObject, at: Path): ProtoObject {
  const out: ProtoObject = {};
  for (const key in obj) {
    const value = obj[key];
    if (value === undefined) continue;
    const fp = fieldPlan(type, key);
    if (!fp) throw new EncodeError(`${pathText(at)}: unknown field "${key}" in ${type.fullName}`);
    const field = fp.field;
    if (field.map) {
      if (value === null) continue;
      const m: Record<string, unknown> = {};
      const fat: Path = { up: at, key };
      for (const k in value as Record<string, unknown>) m[k] = normalizeValue(fp, (value as Record<string, unknown>)[k], fat, k, true);
      out[key] = m;
    } else if (field.repeated) {
      if (!Array.isArray(value)) throw new EncodeError(`${pathText({ up: at, key })}: expected a list`);
      const list = new Array<unknown>(value.length);
      const fat: Path = { up: at, key };
      for (let i = 0; i < value.length; i++) list[i] = normalizeValue(fp, value[i], fat, i, true);
      out[key] = list;
    } else {
      out[key] = normalizeValue(fp, value, at, key, false);
    }
  }
  return out;
}

function packAny(obj: ProtoObject, at: Path): ProtoObject {
  const { '@type': typeUrl, ...fields } = obj;
  if (typeof typeUrl !== 'string') {
    if ('type_url' in obj && 'value' in obj) return obj;
    throw new EncodeError(`${pathText(at)}: Any without @type`);
  }
  return { type_url: typeUrl, value: encodeMessage(typeFromUrl(typeUrl), fields, at) };
}

/**
 * Compile protobufjs' encoders (and the rest of each type's generated code) for these types and every message type
 * they reach, now rather than on first use: a generation worker does it while loading, so its first tasks in a
 * connect storm do not pay for it while the main thread waits. Returns how many types were set up.
 */
export function precompileTypes(typeUrls: readonly string[]): number {
  const seen = new Set<protobuf.Type>();
  const stack = typeUrls.map((u) => typeFromUrl(u));
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    for (const f of t.fieldsArray) {
      if (!f.resolved) f.resolve();
      if (f.resolvedType instanceof protobuf.Type && !seen.has(f.resolvedType)) stack.push(f.resolvedType);
    }
  }
  for (const t of seen) t.setup();
  return seen.size;
}

/** Encode `obj` as message `type`, strictly. */
export function encodeMessage(type: protobuf.Type, obj: ProtoObject, at: Path = type.name): Uint8Array {
  return type.encode(normalize(type, obj, at)).finish();
}

/** Encode `{ '@type': URL, ...fields }` as a google.protobuf.Any message (the bytes of the Any itself). */
export function encodeAny(obj: ProtoObject & { '@type': string }): Uint8Array {
  const anyType = messageType('google.protobuf.Any');
  const packed = packAny(obj, obj['@type'].slice(obj['@type'].lastIndexOf('.') + 1));
  return anyType.encode(packed).finish();
}

/** A google.protobuf.Any around an already-encoded message (assembled from cached parts). */
export function encodeAnyBytes(typeUrl: string, value: Uint8Array): Uint8Array {
  return messageType('google.protobuf.Any').encode({ type_url: typeUrl, value }).finish();
}

/** Decode an Any's bytes back into a JSON object with '@type' (for debug output and tests). */
export function decodeAny(bytes: Uint8Array): ProtoObject {
  const anyType = messageType('google.protobuf.Any');
  const any = anyType.decode(bytes) as unknown as { type_url: string; value: Uint8Array };
  const t = typeFromUrl(any.type_url);
  return { '@type': any.type_url, ...toJson(t, t.decode(any.value)) };
}

/** protobufjs message → JSON-like object (enums as names, longs as strings, nested Any expanded). */
export function toJson(type: protobuf.Type, msg: protobuf.Message): ProtoObject {
  const plain = type.toObject(msg, { enums: String, longs: String, bytes: String, defaults: false, oneofs: false });
  return expandAnys(type, plain as ProtoObject);
}

function expandAnys(type: protobuf.Type, obj: ProtoObject): ProtoObject {
  for (const [key, value] of Object.entries(obj)) {
    const field = type.fields[key];
    if (!field) continue;
    field.resolve();
    const rt = field.resolvedType;
    if (!(rt instanceof protobuf.Type)) continue;
    const conv = (v: unknown): unknown => {
      if (rt.fullName === '.google.protobuf.Any') {
        const a = v as { type_url: string; value: string };
        let inner: protobuf.Type;
        // A type the bundled protos lack (another control plane's, e.g. udpa.type.v1.TypedStruct): kept as bytes.
        try { inner = typeFromUrl(a.type_url); } catch { return { '@type': a.type_url, value: a.value }; }
        return { '@type': a.type_url, ...toJson(inner, inner.decode(Buffer.from(a.value ?? '', 'base64'))) };
      }
      return expandAnys(rt, v as ProtoObject);
    };
    if (field.map) {
      obj[key] = Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, conv(v)]));
    } else if (Array.isArray(value)) obj[key] = value.map(conv);
    else obj[key] = conv(value);
  }
  return obj;
}

/** google.protobuf.Duration from milliseconds. */
export function duration(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/**
 * Convert a google.protobuf.Struct (as decoded by protobufjs) to plain JSON. protobufjs defines the well-known
 * Struct/Value types itself, with camelCase field names (stringValue, ...), unlike the keepCase Envoy types.
 */
export function structToJson(s: unknown): Record<string, unknown> {
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  const val = v as Record<string, unknown>;
  if (val == null) return null;
  // Own properties only: decoded protobufjs messages inherit every oneof member's default ('' for stringValue)
  // from their prototype, so `in` would read a nested Struct (node metadata LABELS) as ''.
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(val, k);
  if (has('stringValue')) return val.stringValue;
  if (has('numberValue')) return val.numberValue;
  if (has('boolValue')) return val.boolValue;
  if (has('structValue')) return structToJson(val.structValue);
  if (has('listValue')) return ((val.listValue as { values?: unknown[] }).values ?? []).map(valueToJson);
  return null;
}

/** Plain JSON → google.protobuf.Struct shape for encoding (node metadata in tests and the load harness). */
export function jsonToStruct(obj: Record<string, unknown>): ProtoObject {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): unknown {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}
