/**
 * Records what a server sent, for the floor server to replay: unique response bodies (nonce stripped, deduplicated
 * by hash) and, per proxy, which body it got at connect time (the last per type) and during each churn event.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fields } from '../proto/wire.js';
import type { ChurnChange } from './churn.js';

export interface ProxyRecording {
  nodeId: string;
  /** Type URL → body hash: the last response of each type before churn began. */
  connect: Record<string, string>;
  /** Per churn event, the responses (type URL, body hash) received until the next event began. */
  events: Array<Array<[string, string]>>;
}

export interface Recording {
  mode: 'sotw';
  proxies: ProxyRecording[];
  events: ChurnChange[];
}

export const RECORDING_FILE = 'recording.json';
export const BODIES_DIR = 'bodies';

/** A DiscoveryResponse without its nonce (field 5): the floor server adds its own. */
export function stripNonce(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  let prevEnd = 0;
  for (const f of fields(body)) {
    const fieldEnd = f.end;
    if (f.field === 5 && f.wireType === 2) {
      if (pos > prevEnd) parts.push(body.subarray(prevEnd, pos));
      prevEnd = fieldEnd;
    }
    pos = fieldEnd;
  }
  if (prevEnd === 0) return body;
  parts.push(body.subarray(prevEnd));
  return Buffer.concat(parts);
}

export class Recorder {
  private readonly bodies = new Map<string, Buffer>();
  private readonly proxies: ProxyRecording[] = [];
  private readonly events: ChurnChange[] = [];
  private phase = -1;

  addProxy(index: number, nodeId: string): void {
    this.proxies[index] = { nodeId, connect: {}, events: [] };
  }

  beginEvent(change: ChurnChange): void {
    this.events.push(change);
    this.phase = this.events.length - 1;
  }

  /**
   * `event`: the churn event whose change this response carries (its marker), when known. A response that arrives
   * late belongs to the change it delivers, not to whichever change happened to be made last: otherwise the floor
   * would replay it only on a later trigger.
   */
  record(index: number, typeUrl: string, body: Buffer, event?: number): void {
    const b = stripNonce(body);
    const hash = createHash('sha1').update(b).digest('hex');
    if (!this.bodies.has(hash)) this.bodies.set(hash, Buffer.from(b));
    const p = this.proxies[index]!;
    const phase = event ?? this.phase;
    // A proxy whose first response of a type came only after churn began (a slow connect storm) still needs it
    // when it connects to the floor.
    if (phase < 0 || p.connect[typeUrl] === undefined) p.connect[typeUrl] = hash;
    else (p.events[phase] ??= []).push([typeUrl, hash]);
  }

  get uniqueBodies(): number { return this.bodies.size; }

  save(dir: string): void {
    fs.mkdirSync(path.join(dir, BODIES_DIR), { recursive: true });
    for (const [h, b] of this.bodies) fs.writeFileSync(path.join(dir, BODIES_DIR, `${h}.bin`), b);
    for (const p of this.proxies) while (p.events.length < this.events.length) p.events.push([]);
    const rec: Recording = { mode: 'sotw', proxies: this.proxies.filter(Boolean), events: this.events };
    fs.writeFileSync(path.join(dir, RECORDING_FILE), JSON.stringify(rec));
  }
}

export function loadRecording(dir: string): { recording: Recording; bodies: Map<string, Buffer> } {
  const recording = JSON.parse(fs.readFileSync(path.join(dir, RECORDING_FILE), 'utf8')) as Recording;
  const bodies = new Map<string, Buffer>();
  for (const f of fs.readdirSync(path.join(dir, BODIES_DIR))) {
    if (f.endsWith('.bin')) bodies.set(f.slice(0, -4), fs.readFileSync(path.join(dir, BODIES_DIR, f)));
  }
  return { recording, bodies };
}
