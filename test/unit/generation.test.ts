/** The worker pool and the inline path produce byte-identical resources; the cache shares bytes across proxies. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ConfigStore } from '../../src/config/store.js';
import { parseManifests } from '../../src/sources/file/parse.js';
import { PushEngine } from '../../src/push/push-engine.js';
import { createGenerationPool, type GenerationPool } from '../../src/push/generation-pool.js';
import { generateResources } from '../../workers/networking/generate-resources.js';
import { parseProxy } from '../../src/model/proxy.js';
import { PUSH_ORDER, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { SDS_CAPABLE_METADATA } from '../../src/model/scope.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/model/snapshot-codec.js';
import { TEST_MESH } from '../helpers/context.js';
import { PushContext } from '../../src/model/push-context.js';
import { serviceIdentities } from '../../workers/networking/security/tls-context.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/bookinfo');

function bookinfoStore(): ConfigStore {
  const store = new ConfigStore();
  for (const f of fs.readdirSync(root)) for (const d of parseManifests(f, fs.readFileSync(path.join(root, f), 'utf8')).docs) store.upsert(d.resource, f);
  return store;
}

const pools: Array<ReturnType<typeof createGenerationPool>> = [];
after(async () => { for (const p of pools) await p.close(); });

function engineOn(pool: GenerationPool, store: ConfigStore, inlineMax?: number, wakeGenerationLoad?: number): PushEngine {
  const e = new PushEngine({ store, pool, inlineMax, wakeGenerationLoad, clusterId: 'Kubernetes', log: pino({ level: 'silent' }), pushConcurrency: 10, mesh: TEST_MESH });
  e.rebuild();
  return e;
}

function engine(workers: number, store = bookinfoStore()): PushEngine {
  const pool = createGenerationPool(workers);
  pools.push(pool);
  // inlineMax 0: every batch goes to the pool, so the worker path is what is compared with the inline one.
  return engineOn(pool, store, 0);
}

const proxies = [
  parseProxy('sidecar~10.244.1.10~productpage-v1-6b7f6db6c9-x2k4p.default~default.svc.cluster.local', {}),
  parseProxy('sidecar~10.244.1.12~reviews-v1-545db77b95-2xtnn.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' }),
  parseProxy('sidecar~10.0.0.1~client.default~default.svc.cluster.local', { GENERATOR: 'grpc' }),
];

async function everything(e: PushEngine): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const p of proxies) {
    for (const t of PUSH_ORDER) {
      // Envoy: wildcard CDS/LDS, and EDS/RDS for everything it was given; gRPC names what it wants.
      const names = p.generator === 'grpc'
        ? (t === ROUTE_TYPE || t === LISTENER_TYPE ? ['reviews.default.svc.cluster.local:9080'] : ['outbound|9080||reviews.default.svc.cluster.local', 'outbound|9080|v1|reviews.default.svc.cluster.local'])
        : undefined;
      const r = await e.compute(p, t, names);
      r.names.forEach((n, i) => out.set(`${p.id} ${t} ${n}`, r.entries[i]!));
    }
  }
  return out;
}

test('worker pool and inline generation are byte-identical', async () => {
  const a = await everything(engine(0));
  const b = await everything(engine(2));
  assert.ok(a.size > 30, `a realistic number of resources (${a.size})`);
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, v] of a) assert.ok(v.equals(b.get(k)!), `${k} identical`);
});

test('proxies with the same scope share one computation and the same bytes', async () => {
  const e = engine(0);
  const p1 = parseProxy('sidecar~10.9.0.1~a-1.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' });
  const p2 = parseProxy('sidecar~10.9.0.2~a-2.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' });
  const r1 = await e.compute(p1, PUSH_ORDER[0], undefined);
  const before = e.stats.generated;
  const r2 = await e.compute(p2, PUSH_ORDER[0], undefined);
  assert.equal(e.stats.generated, before, 'second proxy generated nothing');
  assert.equal(r1.version, r2.version);
  r1.entries.forEach((b, i) => assert.equal(b, r2.entries[i], 'same Buffer object, not a copy'));
  // A rebuild with no config change regenerates nothing: every resource is a cache hit.
  e.rebuild();
  const misses = e.cache.misses;
  await e.compute(p1, PUSH_ORDER[0], undefined);
  assert.equal(e.cache.misses, misses);
});

test('a sidecar getting SDS secrets and a plaintext one share CDS, EDS and RDS, but not their inbound listener', async () => {
  const e = engine(0);
  const labels = { LABELS: { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio' } };
  const plain = parseProxy('sidecar~10.244.1.12~reviews-v1-a.default~default.svc.cluster.local', labels);
  const sds = parseProxy('sidecar~10.244.1.13~reviews-v1-b.default~default.svc.cluster.local', { ...labels, [SDS_CAPABLE_METADATA]: 'true' });
  for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE]) {
    assert.equal(await e.compute(plain, t, undefined), await e.compute(sds, t, undefined), `${t}: one shared computation`);
  }
  const [lp, ls] = [await e.compute(plain, LISTENER_TYPE, undefined), await e.compute(sds, LISTENER_TYPE, undefined)];
  assert.notEqual(lp.version, ls.version, 'the inbound listener differs (an mTLS chain only with SDS)');
});

test('snapshot codec: both endpoint formats read back the same endpoints; endpoint-only updates keep the config part', () => {
  const e = engine(0);
  const data = e.pushContext.data;
  for (const format of ['flat', 'json'] as const) {
    const ref = encodeSnapshot(data, 'c1', undefined, format);
    assert.ok(ref.config.buffer instanceof SharedArrayBuffer && ref.endpoints.buffer instanceof SharedArrayBuffer);
    const decoded = decodeSnapshot(ref);
    for (const svc of data.services) {
      assert.deepEqual(JSON.parse(JSON.stringify(decoded.ctx.endpoints(svc.hostname))), JSON.parse(JSON.stringify(e.pushContext.endpoints(svc.hostname))), `${format} ${svc.hostname}`);
      assert.equal(decoded.ctx.endpointVersion(svc.hostname), e.pushContext.endpointVersion(svc.hostname));
    }
    assert.deepEqual(decoded.ctx.services, JSON.parse(JSON.stringify(data.services)));
    const next = encodeSnapshot({ ...data, version: 'v2', endpoints: {} }, 'c1', ref, format);
    assert.equal(next.config, ref.config, 'same config part object: not rewritten');
    const again = decodeSnapshot(next, decoded.config);
    assert.equal(again.config, decoded.config, 'worker reuses its decoded config part');
    assert.deepEqual(again.ctx.endpoints('reviews.default.svc.cluster.local'), []);
    assert.notEqual(encodeSnapshot(data, 'c2', ref, format).config, ref.config, 'a new config version is rewritten');
  }
});

test('snapshot codec: a worker keeps the endpoints it decoded for services whose endpoint version is unchanged, and decodes changed ones', () => {
  const e = engine(0);
  const data = e.pushContext.data;
  const reviews = 'reviews.default.svc.cluster.local', ratings = 'ratings.default.svc.cluster.local';
  const first = decodeSnapshot(encodeSnapshot(data, 'c1', undefined, 'flat'));
  const r1 = first.ctx.endpoints(reviews), t1 = first.ctx.endpoints(ratings);
  assert.ok(r1.length > 0 && t1.length > 0);
  // reviews' endpoints change (one fewer, a new version); ratings' do not.
  const changed = { ...data, version: 'v2',
    endpoints: { ...data.endpoints, [reviews]: data.endpoints[reviews]!.slice(1) },
    endpointVersions: { ...data.endpointVersions, [reviews]: 'changed' } };
  const second = decodeSnapshot(encodeSnapshot(changed, 'c1', undefined, 'flat'), first.config, first.endpoints);
  assert.equal(second.ctx.endpoints(ratings), t1, 'unchanged version: the same decoded array');
  const r2 = second.ctx.endpoints(reviews);
  assert.notEqual(r2, r1);
  assert.equal(r2.length, r1.length - 1, 'changed version: decoded from the new snapshot');
  assert.deepEqual(JSON.parse(JSON.stringify(r2)), JSON.parse(JSON.stringify(data.endpoints[reviews]!.slice(1))));
});

test('service identities carried to a new context only while the endpoint version and trust domain are the same', () => {
  const e = engine(0);
  const data = e.pushContext.data;
  const reviews = 'reviews.default.svc.cluster.local';
  const svc = data.services.find((s) => s.hostname === reviews)!;
  const a = new PushContext(data);
  const ids = serviceIdentities(a, svc);
  assert.ok(ids.length > 0 && ids.every((id) => id.startsWith(`spiffe://${data.mesh.trustDomain}/`)), ids.join());
  assert.equal(serviceIdentities(new PushContext({ ...data, version: 'v2' }), svc), ids, 'same endpoints: carried over');
  const renamed = data.endpoints[reviews]!.map((ep) => ({ ...ep, serviceAccount: 'other' }));
  const c = new PushContext({ ...data, version: 'v3', endpoints: { ...data.endpoints, [reviews]: renamed },
    endpointVersions: { ...data.endpointVersions, [reviews]: 'renamed' } });
  assert.deepEqual(serviceIdentities(c, svc), [`spiffe://${data.mesh.trustDomain}/ns/default/sa/other`]);
  const d = new PushContext({ ...data, version: 'v4', mesh: { ...data.mesh, trustDomain: 'other.td' } });
  assert.ok(serviceIdentities(d, svc).every((id) => id.startsWith('spiffe://other.td/')), 'a new trust domain is not served from the memo');
});

test('batches are built inline when no core is spare for a worker (or every spare one, or every thread, has a task), and go to the pool when one is', async () => {
  const run = async (spareCores: number, inFlight = 0, threads = 4): Promise<number> => {
    let posted = 0;
    const pool = {
      threads, overheadMs: 0, spareCores, inFlight,
      async generate(ctx: Parameters<GenerationPool['generate']>[0], _s: unknown, scope: Parameters<GenerationPool['generate']>[2], typeUrl: string, names: string[]) {
        posted++;
        return generateResources(ctx, scope, typeUrl, names);
      },
      async close() {},
    } satisfies GenerationPool;
    const e = engineOn(pool, bookinfoStore());
    const r = await e.compute(proxies[0]!, PUSH_ORDER[0], undefined);
    assert.ok(r.names.length > 4, `a batch above the inline minimum (${r.names.length} clusters)`);
    return posted;
  };
  assert.equal(await run(0.2), 0, 'a fifth of a core spare: nothing posted to the pool');
  assert.ok(await run(1.5) > 0, 'a core and a half spare: the batch goes to the pool');
  // No more tasks in flight than spare cores, however many threads the pool has.
  assert.equal(await run(1.2, 1), 0, 'one spare core, one task already running: built inline');
  assert.ok(await run(2.2, 1) > 0, 'two spare cores, one task running: the batch goes to the pool');
  // Nor more than threads: a second task would wait behind the busy worker while the main thread could build it.
  assert.equal(await run(2.2, 1, 1), 0, 'one thread, busy: built inline however many cores are spare');
});

test('a batch worth a worker is built inline while threads start, and goes to a running thread', async () => {
  const run = async (running: number, spareCores: number, threads = 4, wakeLoad: number | null = 0): Promise<{ posted: number; woken: number[] }> => {
    let posted = 0;
    const woken: number[] = [];
    const pool = {
      threads, overheadMs: 0, spareCores, inFlight: 0, running,
      wake(want: number) { woken.push(want); },
      async generate(ctx: Parameters<GenerationPool['generate']>[0], _s: unknown, scope: Parameters<GenerationPool['generate']>[2], typeUrl: string, names: string[]) {
        posted++;
        return generateResources(ctx, scope, typeUrl, names);
      },
      async close() {},
    } satisfies GenerationPool;
    const e = engineOn(pool, bookinfoStore(), undefined, wakeLoad ?? undefined); // null: the engine's default
    await e.compute(proxies[0]!, PUSH_ORDER[0], undefined);
    if (posted === 0) assert.ok(e.generationLoad() > 0, 'inline generation counts toward the load');
    return { posted, woken };
  };
  assert.deepEqual(await run(0, 1.5), { posted: 0, woken: [2] }, 'no thread running: built inline, as many threads woken as spare cores');
  // By default a thread starts only once inline generation has taken half the main thread lately: one batch of
  // bookinfo's clusters (a few ms) does not start one.
  assert.deepEqual(await run(0, 1.5, 4, null), { posted: 0, woken: [] }, 'little generation lately: no thread started');
  assert.deepEqual(await run(0, 0.2), { posted: 0, woken: [] }, 'no spare core: nothing woken');
  const warm = await run(1, 1.5);
  assert.ok(warm.posted > 0 && warm.woken.length === 0, `a running thread takes the batch (${JSON.stringify(warm)})`);
});

test('worker threads start on demand, one at a time, and stop when idle', async () => {
  const pool = createGenerationPool(2, 1500);
  pools.push(pool);
  const running = (): number | undefined => pool.running;
  const until = async (n: number): Promise<void> => {
    const t0 = Date.now();
    while (running() !== n && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
  };
  assert.equal(running(), 0, 'no thread before the first batch');
  await pool.ready?.();
  pool.wake?.(2);
  pool.wake?.(2);
  await until(1);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(running(), 1, 'one thread loaded: a second wake while one was starting started no other');
  // A real task on a running thread, byte-identical to inline.
  const store = bookinfoStore();
  const e = engineOn(pool, store, 0);
  const inline = engineOn(createGenerationPool(0), store, 0);
  const [a, b] = [await e.compute(proxies[0]!, CLUSTER_TYPE, undefined), await inline.compute(proxies[0]!, CLUSTER_TYPE, undefined)];
  assert.ok(a.entries.length > 4 && a.entries.every((x, i) => x.equals(b.entries[i]!)), 'the thread built the same bytes');
  await until(0);
  assert.equal(running(), 0, 'idle threads stopped');
});

test('a worker failing outside a task is reported, not fatal', async () => {
  const seen: string[] = [];
  const pool = createGenerationPool(1, 1000, (err) => seen.push(err.message));
  pools.push(pool);
  // What piscina does when a thread fails with no task on it (src/push/generation-pool.ts listens for it).
  (pool as unknown as { piscina: import('node:events').EventEmitter }).piscina.emit('error', new Error('thread died'));
  assert.deepEqual(seen, ['thread died']);
});
