/**
 * gRPC's length-prefixed message framing over a raw HTTP/2 stream (1 byte compressed flag, 4 bytes big-endian
 * length): the harness speaks it itself rather than through grpc-js, whose per-message copies made a grpc-js
 * client the bottleneck from ~20 KB responses up (see DESIGN.md, Performance targets).
 */

export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

export class GrpcFrameError extends Error {
  readonly code = 'ERR_GRPC_FRAME';
}

/** Reassembles messages from DATA chunks; a message that arrives in one chunk is a view, not a copy. */
export class GrpcFrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1;

  constructor(private readonly onMessage: (msg: Buffer) => void, private readonly maxMessage = 256 * 1024 * 1024) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 5) return;
        const head = this.take(5);
        if (head[0] !== 0) throw new GrpcFrameError('compressed gRPC messages are not supported (no grpc-encoding was offered)');
        this.need = head.readUInt32BE(1);
        if (this.need > this.maxMessage) throw new GrpcFrameError(`message of ${this.need} bytes exceeds ${this.maxMessage}`);
      }
      if (this.buffered < this.need) return;
      const msg = this.take(this.need);
      this.need = -1;
      this.onMessage(msg);
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
