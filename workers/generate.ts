/**
 * The piscina worker: decodes the shared PushContext snapshot once per version (the config part once per config
 * version), then builds and encodes resources for each task. Pure: no I/O, no state beyond decoded snapshots.
 */
import { decodeSnapshot, type SnapshotRef, type DecodedConfig } from '../src/model/snapshot-codec.js';
import type { PushContext } from '../src/model/push-context.js';
import type { FlatEndpointSource } from '../src/model/snapshot-flat.js';
import type { ProxyScope } from '../src/model/scope.js';
import { parentPort } from 'node:worker_threads';
import { envoyRoot } from '../src/proto/envoy-protos.js';
import { precompileTypes } from '../src/proto/encode.js';
import * as typeUrls from '../src/proto/type-urls.js';
import { WORKER_LOADED } from '../src/push/worker-loaded.js';
import { generateResources, type GeneratedResource } from './networking/generate-resources.js';

/** One batch: a scope group's missing resources of one type. */
export interface GenerateItem {
  scope: ProxyScope;
  typeUrl: string;
  names: string[];
}

/** Batches of one context, posted together (src/push/generation-pool.ts). */
export interface GenerateTask {
  snapshot: SnapshotRef;
  items: GenerateItem[];
}

/** Pushes can overlap (a new version starts while the last one's tasks drain): keep the two newest. */
const KEEP = 2;
const contexts = new Map<string, PushContext>();
let lastConfig: DecodedConfig | undefined;
let lastEndpoints: FlatEndpointSource | undefined;

function contextFor(ref: SnapshotRef): PushContext {
  let ctx = contexts.get(ref.version);
  if (!ctx) {
    const decoded = decodeSnapshot(ref, lastConfig, lastEndpoints);
    lastConfig = decoded.config;
    lastEndpoints = decoded.endpoints;
    ctx = decoded.ctx;
    contexts.set(ref.version, ctx);
    while (contexts.size > KEEP) contexts.delete(contexts.keys().next().value!);
  }
  return ctx;
}

envoyRoot(); // load protos when the worker starts, not on its first task
// ... and compile the encoders of every resource type and of the typed configs they carry (~0.1 s per worker).
precompileTypes((Object.values(typeUrls) as unknown[]).filter((v): v is string => typeof v === 'string' && v.startsWith(typeUrls.TYPE_PREFIX) && v.length > typeUrls.TYPE_PREFIX.length));
// Tell the pool this thread has loaded (src/push/generation-pool.ts counts running threads by it; until then a batch
// worth a worker is built on the main thread).
parentPort?.postMessage({ [WORKER_LOADED]: true });

/** Each item's resources, and how long the worker spent on them (decode included): the pool's overhead is the rest. */
export interface GenerateResult { resources: GeneratedResource[][]; ms: number }

/** `null` only starts the thread (the pool's wake): by the time it returns, the protos and encoders are loaded. */
export default function generate(task: GenerateTask | null): GenerateResult | null {
  if (task === null) return null;
  const t0 = performance.now();
  const ctx = contextFor(task.snapshot);
  const resources = task.items.map((it) => generateResources(ctx, it.scope, it.typeUrl, it.names));
  return { resources, ms: performance.now() - t0 };
}
