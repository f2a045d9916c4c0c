/**
 * The floor: a grpc-js ADS server that computes nothing. It replays the response bytes a meshpilot run sent
 * (recorded by `meshpilot load --record DIR`: unique bodies deduplicated by hash, plus which proxy got which body at
 * connect and during each churn event) to the same streams, so "meshpilot / floor" measures what the control plane
 * costs beyond delivering the same bytes. Churn events are triggered over HTTP (`POST /event?i=K`) by the harness
 * in replay mode; their pushes are paced — at most `--in-flight` unACKed pushes at a time — as DESIGN.md's
 * measurement found pacing faster and flatter in memory than writing everything in one loop.
 *
 *   node dist/bench/floor-server.js --recording DIR [--port 0] [--control-port 0] [--in-flight 100]
 * prints one JSON line {"port":…,"controlPort":…} on stdout when ready.
 */
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { lengthDelimited } from '../src/proto/discovery.js';
import { loadRecording, type ProxyRecording } from '../src/load/recorder.js';
import { fields, str } from '../src/proto/wire.js';
import { listenGrpc } from '../src/xds/listen.js';

interface FloorStream {
  call: grpc.ServerDuplexStream<Buffer, Buffer>;
  rec: ProxyRecording;
  nonce: number;
  /** Nonce of the paced push this stream has not ACKed yet. */
  pending: string | undefined;
  /** Paced pushes not yet written (one in flight per stream, as istiod's push queue). */
  queue: Buffer[];
  inReady: boolean;
  closed: boolean;
}

const { values: args } = parseArgs({
  options: {
    recording: { type: 'string' },
    port: { type: 'string', default: '0' },
    'control-port': { type: 'string', default: '0' },
    'in-flight': { type: 'string', default: '100' },
  },
});
if (!args.recording) {
  process.stderr.write('floor-server: --recording DIR is required\n');
  process.exit(2);
}
const maxInFlight = Number(args['in-flight']);
const { recording, bodies } = loadRecording(args.recording);
const byNode = new Map(recording.proxies.map((p) => [p.nodeId, p]));
const streams = new Map<string, FloorStream>();
let inFlight = 0;
/** Streams with queued pushes and none in flight, in FIFO order. */
let ready: FloorStream[] = [];
let readyHead = 0;

/** Request fields the floor needs: node id (2 → 1), type_url (4), response_nonce (5). */
function readRequest(buf: Buffer): { nodeId?: string; typeUrl: string; nonce: string } {
  let nodeId: string | undefined;
  let typeUrl = '';
  let nonce = '';
  for (const f of fields(buf)) {
    if (f.wireType !== 2) continue;
    if (f.field === 2) {
      for (const g of fields(buf, f.value, f.end)) if (g.field === 1 && g.wireType === 2) nodeId = str(buf, g);
    } else if (f.field === 4) typeUrl = str(buf, f);
    else if (f.field === 5) nonce = str(buf, f);
  }
  return { nodeId, typeUrl, nonce };
}

function send(s: FloorStream, body: Buffer): string {
  const nonce = String(++s.nonce);
  s.call.write(Buffer.concat([body, lengthDelimited(5, Buffer.from(nonce))]));
  return nonce;
}

function markReady(s: FloorStream): void {
  if (s.inReady || s.closed || s.pending !== undefined || s.queue.length === 0) return;
  s.inReady = true;
  ready.push(s);
}

function enqueue(s: FloorStream, body: Buffer): void {
  s.queue.push(body);
  markReady(s);
}

function pump(): void {
  while (inFlight < maxInFlight && readyHead < ready.length) {
    const s = ready[readyHead++]!;
    s.inReady = false;
    if (s.closed || s.pending !== undefined || s.queue.length === 0) continue;
    s.pending = send(s, s.queue.shift()!);
    inFlight++;
  }
  if (readyHead === ready.length) { ready = []; readyHead = 0; }
}

function onRequest(call: grpc.ServerDuplexStream<Buffer, Buffer>, ref: { s?: FloorStream }, buf: Buffer): void {
  const req = readRequest(buf);
  if (!ref.s) {
    const rec = req.nodeId ? byNode.get(req.nodeId) : undefined;
    if (!rec) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `node ${req.nodeId ?? '(none)'} is not in the recording` });
      return;
    }
    ref.s = { call, rec, nonce: 0, pending: undefined, queue: [], inReady: false, closed: false };
    streams.set(rec.nodeId, ref.s);
  }
  const s = ref.s;
  if (req.nonce === '') {
    // First request for a type: answer with what the recorded server last sent this proxy for it.
    const h = s.rec.connect[req.typeUrl];
    const body = h ? bodies.get(h) : undefined;
    if (body) send(s, body);
    return;
  }
  if (s.pending !== undefined && req.nonce === s.pending) {
    s.pending = undefined;
    inFlight--;
    markReady(s);
    pump();
  }
}

const server = new grpc.Server({ 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
server.addService({
  StreamAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true, responseStream: true,
    requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b,
  },
}, {
  StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const ref: { s?: FloorStream } = {};
    call.on('data', (b: Buffer) => onRequest(call, ref, b));
    const close = (): void => {
      if (!ref.s || ref.s.closed) return;
      ref.s.closed = true;
      if (ref.s.pending !== undefined) { inFlight--; ref.s.pending = undefined; pump(); }
      streams.delete(ref.s.rec.nodeId);
    };
    call.on('end', () => { close(); call.end(); });
    call.on('error', close);
    call.on('cancelled', close);
  },
});

const control = http.createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'POST' && u.pathname === '/event') {
    const i = Number(u.searchParams.get('i'));
    if (!Number.isInteger(i) || i < 0 || i >= recording.events.length) {
      res.writeHead(400).end(`event index must be 0..${recording.events.length - 1}\n`);
      return;
    }
    let n = 0;
    for (const s of streams.values()) {
      for (const [, h] of s.rec.events[i] ?? []) {
        const body = bodies.get(h);
        if (body) { enqueue(s, body); n++; }
      }
    }
    pump();
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ event: i, pushes: n })}\n`);
    return;
  }
  res.writeHead(404).end();
});

// The same listener as meshpilot's (system accept backlog), so the floor is never slowed by SYN drops it would not have.
listenGrpc(server, '127.0.0.1', Number(args.port), grpc.ServerCredentials.createInsecure()).catch((err: Error) => {
  process.stderr.write(`floor-server: ${err.message}\n`);
  process.exit(1);
}).then(({ port }) => {
  control.listen(Number(args['control-port']), '127.0.0.1', () => {
    const addr = control.address();
    const controlPort = typeof addr === 'object' && addr ? addr.port : 0;
    process.stdout.write(`${JSON.stringify({ port, controlPort, proxies: byNode.size, bodies: bodies.size, events: recording.events.length })}\n`);
  });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { server.forceShutdown(); control.close(); process.exit(0); });
