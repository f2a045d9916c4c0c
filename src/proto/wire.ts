/**
 * A minimal protobuf wire-format reader for hot paths (the load harness's responses, the server's DiscoveryRequests):
 * it finds fields by number in encoded bytes without decoding whole messages (protobufjs would allocate an object
 * tree per message). Only what ADS needs to read: strings, nested messages and varints.
 */

export interface WireField {
  field: number;
  wireType: number;
  /** For varints the value; for length-delimited fields the payload's start offset. */
  value: number;
  /** Payload end (length-delimited) or the offset after the varint. */
  end: number;
}

export class WireError extends Error {
  readonly code = 'ERR_WIRE';
}

function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length) throw new WireError('truncated varint');
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return [result, pos];
    mul *= 128;
    if (mul > 2 ** 63) throw new WireError('varint too long');
  }
}

/** Iterate over the fields of a message in buf[start, end) (WireCursor's reading, one object per field). */
export function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<WireField> {
  const c = new WireCursor(buf, start, end);
  while (c.next()) yield { field: c.field, wireType: c.wireType, value: c.value, end: c.end };
}

/**
 * The reader without a generator or an object per field (the server's per-request path): next() advances to the
 * following field and leaves its number, wire type, value and end in the cursor's own properties.
 */
export class WireCursor {
  /** Where the current field's tag starts. */
  start = 0;
  field = 0;
  wireType = 0;
  /** As WireField.value: a varint's value, or a fixed or length-delimited payload's start. */
  value = 0;
  /** As WireField.end. */
  end = 0;
  private pos: number;

  constructor(readonly buf: Uint8Array, start = 0, private readonly limit = buf.length) {
    this.pos = start;
  }

  next(): boolean {
    if (this.pos >= this.limit) return false;
    const buf = this.buf;
    let pos = this.start = this.pos;
    let tag = buf[pos++]!;
    if (tag >= 0x80) [tag, pos] = readVarint(buf, pos - 1);
    this.field = Math.floor(tag / 8);
    const wireType = this.wireType = tag & 7;
    switch (wireType) {
      case 0: {
        if (pos < buf.length && buf[pos]! < 0x80) { this.value = buf[pos]!; pos++; } else [this.value, pos] = readVarint(buf, pos);
        this.end = pos;
        break;
      }
      case 1: this.value = pos; this.end = pos += 8; break;
      case 5: this.value = pos; this.end = pos += 4; break;
      case 2: {
        let len: number;
        if (pos < buf.length && buf[pos]! < 0x80) len = buf[pos++]!; else [len, pos] = readVarint(buf, pos);
        if (pos + len > this.limit) throw new WireError(`field ${this.field}: length ${len} past the end of the message`);
        this.value = pos;
        this.end = pos += len;
        break;
      }
      default: throw new WireError(`unsupported wire type ${wireType} (field ${this.field})`);
    }
    if (pos > this.limit) throw new WireError(`field ${this.field}: past the end of the message`);
    this.pos = pos;
    return true;
  }

  /** The current length-delimited field as UTF-8. */
  str(): string {
    return str(this.buf, this);
  }
}

export function str(buf: Uint8Array, f: WireField): string {
  // A Buffer decodes its own range without a view object (requests and responses are Buffers).
  if (Buffer.isBuffer(buf)) return buf.toString('utf8', f.value, f.end);
  return Buffer.from(buf.buffer, buf.byteOffset + f.value, f.end - f.value).toString('utf8');
}

/** The first occurrence of a length-delimited field, or undefined. */
export function firstField(buf: Uint8Array, field: number, start = 0, end = buf.length): WireField | undefined {
  for (const f of fields(buf, start, end)) if (f.field === field && f.wireType === 2) return f;
  return undefined;
}

export function varint(buf: Uint8Array, field: number, start = 0, end = buf.length): number | undefined {
  for (const f of fields(buf, start, end)) if (f.field === field && f.wireType === 0) return f.value;
  return undefined;
}
