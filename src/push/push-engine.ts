/**
 * The push engine (main thread): owns the current PushContext and its shared snapshot, turns debounced
 * PushRequests into pushes, and computes each proxy's responses through the resource cache and the generation
 * pool. Proxies with the same scope share one computation per (push version, type, requested names).
 *
 * istiod's push decision, here: a full push rebuilds the PushContext and offers every type to the proxies the
 * changed configs can affect (src/push/proxy-dependencies.ts; each connection sends only what changed for it); an
 * endpoint-only request skips the rebuild, swaps in new endpoints, and offers EDS only to proxies that watch a
 * changed service (incremental EDS); a request that changes nothing a proxy can observe pushes nothing.
 */
import { createHash } from 'node:crypto';
import type { ConfigStore } from '../config/store.js';
import { PushContext, type MeshSettings, type PushContextData } from '../model/push-context.js';
import { buildConfigLists, buildPushContextData, buildRegistryData, CONFIG_ONLY_KINDS } from '../model/build-push-context.js';
import type { ClusterRegistrySet } from '../model/registry/aggregate.js';
import { encodeSnapshot, type SnapshotRef } from '../model/snapshot-codec.js';
import { FlatEndpointsEncoder } from '../model/snapshot-flat.js';
import { SDS_CAPABLE_METADATA, scopeFor, scopeKey, type ProxyScope } from '../model/scope.js';
import { parseProxy, type Proxy } from '../model/proxy.js';
import { resourceEntry } from '../proto/discovery.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, PUSH_ORDER, ROUTE_TYPE, shortType } from '../proto/type-urls.js';
import { clusterCarriesEndpoints } from '../model/registry/service-entry.js';
import { planResources } from '../../workers/networking/generator.js';
import { generateResources } from '../../workers/networking/generate-resources.js';
import { parseClusterName } from '../../workers/networking/names.js';
import { serviceIdentities } from '../../workers/networking/security/tls-context.js';
import type { GenerationPool } from './generation-pool.js';
import { ResourceCache } from './resource-cache.js';
import { ProxyDependencies } from './proxy-dependencies.js';
import { ENDPOINT_KINDS } from '../config/kinds.js';
import { kindOfKey } from '../config/store.js';
import type { PushRequest } from './debounce.js';
import type { Logger } from '../log/logger.js';
import type { XdsMetrics } from '../monitoring/metrics.js';

export interface ComputedResponse {
  /** version_info: a digest of the cache keys of everything in the response, so equal content ⇒ equal version. */
  version: string;
  entries: Buffer[];
  names: string[];
  /** Each resource's cache key: everything it was built from. Equal key ⇒ identical bytes. */
  keys: string[];
}

export interface PushInfo { pushVersion: string; full: boolean; start: number }

/** What the engine needs from a connection (implemented in src/xds). */
export interface PushTarget {
  readonly proxy: Proxy;
  /** Watched types and their requested names (undefined = wildcard), in any order. */
  watched(): Array<{ typeUrl: string; names: string[] | undefined }>;
  /** The last response computed for a type (shared with every proxy of the same scope). */
  lastComputed(typeUrl: string): ComputedResponse | undefined;
  /**
   * Send what changed for one type. Resolves when the proxy has ACKed or NACKed it, or when nothing was sent,
   * or after the ACK timeout: the engine paces its fan-out on that.
   */
  deliver(typeUrl: string, res: ComputedResponse, info: PushInfo): Promise<void>;
  /** Scope key at the last push (the engine's, to notice scope changes). */
  scopeKey?: string;
  /** Scope at the last push: what the proxy's config depends on (src/push/proxy-dependencies.ts). */
  scope?: ProxyScope;
}

export interface PushEngineOptions {
  store: ConfigStore;
  pool: GenerationPool;
  mesh: MeshSettings;
  clusterId: string;
  /** Kubernetes clusters' registries (src/sources/kube), merged with the store's. */
  clusters?: ClusterRegistrySet;
  log: Logger;
  /** Max proxies being pushed (computed, sent, awaiting ACK) at once (PILOT_PUSH_THROTTLE). */
  pushConcurrency: number;
  /**
   * Batches of at most this many resources are generated on the main thread, not posted to a worker. Unset:
   * adaptive — a batch goes to the pool only when at least half a core is spare for it and building it inline
   * would cost more than the pool's measured overhead (so the pool never makes a push slower than inline
   * generation would).
   */
  inlineMax?: number;
  /** The share of the main thread inline generation must have taken lately before a worker thread is started (default WAKE_GENERATION_LOAD; tests set 0). */
  wakeGenerationLoad?: number;
  cache?: boolean;
  /** Share one computation among proxies of the same scope (off only to measure its gain). */
  share?: boolean;
  /** Full pushes go only to proxies the changed configs can affect (istiod's ProxyNeedsPush); off to measure. */
  dependencyFilter?: boolean;
  metrics?: XdsMetrics;
}

export interface PushStats {
  pushes: number; fullPushes: number; edsPushes: number; noPushes: number;
  generated: number; generationErrors: number; lastPushMs: number; proxiesPushed: number;
  /** Proxies a full push left out because none of its changes could affect them. */
  proxiesSkipped: number;
  pushContextInitMs: number;
}

/** Measured with bench/run.ts: below ~4 resources a worker round trip costs more than generating inline. */
const INLINE_MAX = 4;
/** First guess of inline generation cost per resource (ms), until measured (DESIGN.md: 7–18 µs to encode). */
const INLINE_MS_PER_RESOURCE = 0.015;
/** Below this many spare cores a worker has nowhere to run: batches are built inline (src/push/spare-cpu.ts). */
const MIN_SPARE_CORES = 0.5;
/**
 * A worker thread is started only once inline generation has taken at least this share of the main thread's time
 * (decayed over GENERATION_LOAD_MS). Starting one costs ~0.3 s of CPU (protos, encoders, its own JIT) and the
 * snapshot it reads ~0.1 s more on a 10,000-service mesh: bench/RESULTS.md, workers-large, where a connect storm
 * spent about a third of the main thread generating, started a thread and lost 13–24% to the inline path.
 */
const WAKE_GENERATION_LOAD = 0.5;
const GENERATION_LOAD_MS = 1000;

const versionMemo = new WeakMap<ComputedResponse, string[]>();
const indexMemo = new WeakMap<ComputedResponse, Map<string, number>>();
const hostsMemo = new WeakMap<ComputedResponse, Set<string>>();

function digest(parts: readonly string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 16);
}

/** Services whose endpoints differ between two contexts, and (when asked) whether the workload registry moved. */
function endpointChanges(old: Pick<PushContextData, 'endpointVersions' | 'workloads'>, fresh: Pick<PushContextData, 'endpointVersions' | 'workloads'>, compareWorkloads: boolean): { changedHosts: Set<string>; workloadsChanged: boolean } {
  const changedHosts = new Set<string>();
  const a = old.endpointVersions, b = fresh.endpointVersions;
  if (a !== b) {
    // Two passes over the records rather than a set of both key lists (20,000 strings at 10,000 services).
    for (const h in b) if (a[h] !== b[h]) changedHosts.add(h);
    for (const h in a) if (!Object.prototype.hasOwnProperty.call(b, h)) changedHosts.add(h);
  }
  const workloadsChanged = compareWorkloads && old.workloads !== fresh.workloads &&
    JSON.stringify(old.workloads) !== JSON.stringify(fresh.workloads);
  return { changedHosts, workloadsChanged };
}

/**
 * A proxy's scope and the keys its computations are shared by: `key` (the whole scope; listeners, and what a scope
 * change is detected by), `clusterKey` for CDS (without whether the proxy gets SDS secrets, which only inbound
 * listener chains read) and `outboundKey` for EDS and RDS (without that and without the inbound ports).
 */
interface ScopeEntry { scope: ProxyScope; key: string; clusterKey: string; outboundKey: string }

const namesKeys = new WeakMap<readonly string[], string>();

/** A request's names as a memo key; connections keep their names array, so it is computed once per array. */
function namesKey(names: readonly string[] | undefined): string {
  if (names === undefined) return '*';
  let k = namesKeys.get(names);
  if (k === undefined) { k = [...names].sort().join(','); namesKeys.set(names, k); }
  return k;
}

/** Per-resource versions (for delta xDS): a short digest of each resource's cache key. Memoised per response. */
export function resourceVersions(res: ComputedResponse): string[] {
  let v = versionMemo.get(res);
  if (!v) { v = res.keys.map((k) => digest([k])); versionMemo.set(res, v); }
  return v;
}

export function nameIndex(res: ComputedResponse): Map<string, number> {
  let m = indexMemo.get(res);
  if (!m) { m = new Map(res.names.map((n, i) => [n, i])); indexMemo.set(res, m); }
  return m;
}

/** A proxy's scope reads the workload registry: it has no labels of its own, or endpoints are locality-aware. */
function readsRegistry(proxy: Proxy, ctx: PushContext): boolean {
  return Object.keys(proxy.labels).length === 0 || ctx.localityAware;
}

/** Whether a service's identities (its endpoints' service accounts) differ between two contexts. */
function identitiesChanged(a: PushContext | undefined, b: PushContext, host: string): boolean {
  const x = a?.service(host), y = b.service(host);
  if (!a || !x || !y) return false;
  const p = serviceIdentities(a, x), q = serviceIdentities(b, y);
  return p.length !== q.length || p.some((id, i) => id !== q[i]);
}

/** The services an EDS (or CDS) response covers (to decide whether an endpoint change concerns a proxy). */
function edsHosts(res: ComputedResponse): Set<string> {
  let s = hostsMemo.get(res);
  if (!s) {
    s = new Set();
    for (const n of res.names) { const p = parseClusterName(n); if (p) s.add(p.host); }
    hostsMemo.set(res, s);
  }
  return s;
}

export class PushEngine {
  private ctx!: PushContext;
  /** The current context's snapshot for workers, encoded when a task first needs it (inline generation never does). */
  private snapshot!: () => SnapshotRef;
  private lastSnapshot: SnapshotRef | undefined;
  private seq = 0;
  private configSeq = 0;
  private readonly flatEncoder = new FlatEndpointsEncoder();
  private readonly targets = new Set<PushTarget>();
  /** This PushContext's responses: scope group → type → requested names (cleared when the context changes). */
  private readonly memo = new Map<string, Map<string, {
    byArray: Map<readonly string[] | undefined, Promise<ComputedResponse>>; byKey: Map<string, Promise<ComputedResponse>>;
  }>>();
  private readonly scopes = new Map<string, ScopeEntry>();
  /** Cache keys being generated, and the promise of their entry (undefined if generation failed). */
  private readonly inflight = new Map<string, Promise<Buffer | undefined>>();
  readonly cache: ResourceCache;
  readonly stats: PushStats = {
    pushes: 0, fullPushes: 0, edsPushes: 0, noPushes: 0, generated: 0, generationErrors: 0, lastPushMs: 0,
    proxiesPushed: 0, proxiesSkipped: 0, pushContextInitMs: 0,
  };

  constructor(private readonly opts: PushEngineOptions) {
    this.cache = new ResourceCache(opts.cache !== false);
  }

  /** Kubernetes clusters' registries, once the server has loaded them (read by the next rebuild). */
  attachClusters(clusters: ClusterRegistrySet): void {
    this.opts.clusters = clusters;
  }

  get pushContext(): PushContext { return this.ctx; }
  get connected(): number { return this.targets.size; }
  allTargets(): PushTarget[] { return [...this.targets]; }

  private nextVersion(): string {
    this.seq++;
    return `${new Date().toISOString()}/${this.seq}`;
  }

  private install(data: PushContextData): void {
    this.ctx = new PushContext(data);
    const configVersion = String(this.configSeq);
    let ref: SnapshotRef | undefined;
    // The config part is reused from whichever snapshot was encoded last when its config version is the same.
    this.snapshot = () => (ref ??= (this.lastSnapshot = encodeSnapshot(data, configVersion, this.lastSnapshot, 'flat', this.flatEncoder)));
    this.memo.clear();
    this.scopes.clear();
    this.cache.advance();
  }

  private collectScheduled = false;

  /**
   * Drop superseded cache entries once a push has been sent: the mark walks every connected proxy's responses
   * (15–25 ms at 5,000 proxies), which in the context step delayed the first push after a connect storm by as much.
   */
  private scheduleCollect(): void {
    if (this.collectScheduled || !this.cache.collectDue) return;
    this.collectScheduled = true;
    setImmediate(() => {
      this.collectScheduled = false;
      this.cache.collect(() => this.heldKeys());
    });
  }

  /** The cache keys of every response a connected proxy holds (each shared response once). */
  private *heldKeys(): Iterable<readonly string[]> {
    const seen = new Set<ComputedResponse>();
    for (const t of this.targets) {
      for (const type of PUSH_ORDER) {
        const res = t.lastComputed(type);
        if (res && !seen.has(res)) { seen.add(res); yield res.keys; }
      }
    }
  }

  get mesh(): MeshSettings { return this.opts.mesh; }

  /** A new mesh config: the next rebuild uses it (the caller requests the full push it needs). */
  setMesh(mesh: MeshSettings): void { this.opts.mesh = mesh; }

  /**
   * Build a new PushContext from the store (istiod's initPushContext). When every changed config is an Istio kind
   * that never reaches the service registry (`configsUpdated`, same mesh settings), services, endpoints and
   * workloads are taken from the current context instead of rebuilding and re-hashing the whole registry.
   */
  rebuild(configsUpdated?: Iterable<string>): PushContext {
    const t0 = performance.now();
    this.configSeq++;
    const keys = configsUpdated ? [...configsUpdated] : [];
    const configOnly = this.ctx !== undefined && this.ctx.data.mesh === this.opts.mesh && keys.length > 0 &&
      keys.every((k) => CONFIG_ONLY_KINDS.has(kindOfKey(k)));
    this.install(configOnly
      ? { ...this.ctx.data, ...buildConfigLists(this.opts.store, this.opts.mesh), version: this.nextVersion() }
      : buildPushContextData(this.opts.store, this.opts.mesh, this.nextVersion(), this.opts.clusterId, this.opts.clusters));
    this.stats.pushContextInitMs = performance.now() - t0;
    this.opts.metrics?.pushContextInit(this.stats.pushContextInitMs);
    return this.ctx;
  }

  /**
   * Incremental EDS: recompute endpoints and workloads only; services and Istio config (and the config part of the
   * shared snapshot) are kept. Returns the services whose endpoints changed.
   */
  refreshEndpoints(): { changedHosts: Set<string>; workloadsChanged: boolean } {
    const fresh = buildRegistryData(this.opts.store, this.opts.mesh, this.opts.clusterId, this.opts.clusters);
    const old = this.ctx.data;
    // The registry returns the very same services array while no Service changed (kube-registry.ts).
    const servicesChanged = fresh.services !== old.services && (fresh.services.length !== old.services.length ||
      fresh.services.some((s, i) => s.version !== old.services[i]!.version));
    if (servicesChanged) throw new Error('services changed in an endpoint-only push');
    const { changedHosts, workloadsChanged } = endpointChanges(old, fresh, true);
    if (changedHosts.size === 0 && !workloadsChanged) return { changedHosts, workloadsChanged };
    this.install({ ...old, endpoints: fresh.endpoints, endpointVersions: fresh.endpointVersions, workloads: fresh.workloads, version: this.nextVersion() });
    return { changedHosts, workloadsChanged };
  }

  /**
   * Before the xDS port opens: generate, through the normal path, what a sidecar of each namespace that has services
   * shares with every other sidecar there (outbound clusters, load assignments, listeners and routes), so a connect
   * storm after a restart finds them in the resource cache and the generators and encoders already compiled (in a
   * 5,000-proxy storm, cold code and generation were a quarter of the server's main-thread time); then, for each
   * service with a selector, its workloads' inbound side. A proxy whose scope matches a warmed one gets the very
   * result computed here (same scope key, same inputs). Stops at the time budget; whatever it did not reach is
   * generated on demand as before.
   */
  async warmUp(budgetMs: number, sdsVariants: readonly boolean[] = [false]): Promise<{ namespaces: number; of: number; workloads: number; resources: number; ms: number }> {
    const t0 = performance.now();
    const generated0 = this.stats.generated;
    // One batch at a time, awaited, before the port opens: the main thread has nothing else to do, so a worker
    // would only add its start-up and round trips (and keep its ~36 MB of RSS for a mesh that may never need it).
    this.warming = true;
    try {
      return await this.warmUpInline(t0, generated0, budgetMs, sdsVariants);
    } finally {
      this.warming = false;
    }
  }

  private warming = false;

  private async warmUpInline(t0: number, generated0: number, budgetMs: number, sdsVariants: readonly boolean[]): Promise<{ namespaces: number; of: number; workloads: number; resources: number; ms: number }> {
    const namespaces = [...new Set(this.ctx.services.map((s) => s.namespace))].sort();
    // Sidecars on the secure port with a verified certificate get SDS-backed TLS (a scope of their own): the ports
    // that are open decide which kinds of sidecar are warmed, the secure one first (where real sidecars connect).
    const sidecar = (ns: string, labels: Record<string, string>, sds: boolean): Proxy =>
      parseProxy(`sidecar~0.0.0.0~meshpilot-warmup.${ns}~${ns}.svc.${this.opts.mesh.domainSuffix}`,
        { NAMESPACE: ns, LABELS: { ...labels, 'security.istio.io/tlsMode': 'istio' }, ...(sds ? { [SDS_CAPABLE_METADATA]: 'true' } : {}) });
    const over = (): boolean => performance.now() - t0 > budgetMs;
    let done = 0, workloads = 0;
    for (const sds of sdsVariants) {
      for (const ns of namespaces) {
        if (over()) break;
        // A sidecar with the tlsMode label every injected pod carries, selected by no service (no inbound side).
        const proxy = sidecar(ns, { 'meshpilot.io/warmup': 'true' }, sds);
        for (const type of PUSH_ORDER) await this.compute(proxy, type, undefined);
        done++;
      }
    }
    // Then each selector service's workloads: a sidecar labelled with the selector has that service's inbound side
    // (clusters and listeners; EDS and RDS do not read it). Their pods' other labels matter only where routes or
    // security policies select on them, which the scope keeps; otherwise these share the real pods' scope group.
    for (const sds of sdsVariants) {
      for (const svc of this.ctx.services) {
        if (over()) break;
        if (!svc.selector || Object.keys(svc.selector).length === 0) continue;
        const proxy = sidecar(svc.namespace, svc.selector, sds);
        for (const type of [CLUSTER_TYPE, LISTENER_TYPE]) await this.compute(proxy, type, undefined);
        workloads++;
      }
    }
    const ms = performance.now() - t0;
    return { namespaces: done, of: namespaces.length * sdsVariants.length, workloads, resources: this.stats.generated - generated0, ms };
  }

  add(target: PushTarget): void { this.targets.add(target); }
  remove(target: PushTarget): void { this.targets.delete(target); }

  /** Per proxy object, per PushContext version: its scope and its latest request per type (the hot path of a push). */
  private readonly perProxy = new WeakMap<Proxy, {
    version: string; s: ScopeEntry;
    byType: Map<string, { names: readonly string[] | undefined; p: Promise<ComputedResponse> }>;
  }>();

  private proxyEntry(proxy: Proxy): NonNullable<ReturnType<typeof this.perProxy.get>> {
    let e = this.perProxy.get(proxy);
    if (!e || e.version !== this.ctx.version) {
      e = { version: this.ctx.version, s: this.scopeOfUncached(proxy), byType: new Map() };
      this.perProxy.set(proxy, e);
    }
    return e;
  }

  scopeOf(proxy: Proxy): ScopeEntry {
    return this.proxyEntry(proxy).s;
  }

  private scopeOfUncached(proxy: Proxy): ScopeEntry {
    // What scopeFor reads about a proxy. Its IP only matters when its labels come from the pod registry or when a
    // DestinationRule makes locality part of the scope; leaving it out lets thousands of replicas share one entry.
    const ipMatters = Object.keys(proxy.labels).length === 0 || this.ctx.localityAware;
    const k = `${proxy.type}|${proxy.generator}|${proxy.namespace}|${proxy.interceptionMode}|${ipMatters ? proxy.ip : ''}|` +
      `${JSON.stringify(proxy.labels)}|${String(proxy.metadata[SDS_CAPABLE_METADATA] ?? '')}`;
    let s = this.scopes.get(k);
    if (!s) {
      const scope = scopeFor(proxy, this.ctx);
      s = { scope, key: scopeKey(scope), clusterKey: scopeKey({ ...scope, sds: undefined }), outboundKey: scopeKey({ ...scope, inbound: [], sds: undefined }) };
      this.scopes.set(k, s);
    }
    return s;
  }

  /** Compute one type's response for a proxy; shared by every proxy with the same scope and request. */
  compute(proxy: Proxy, typeUrl: string, names: readonly string[] | undefined): Promise<ComputedResponse> {
    const entry = this.proxyEntry(proxy);
    const last = entry.byType.get(typeUrl);
    if (last && last.names === names) return last.p; // same request, same version: the same shared promise
    const p = this.computeShared(proxy, entry.s, typeUrl, names);
    entry.byType.set(typeUrl, { names, p });
    p.catch(() => { if (entry.byType.get(typeUrl)?.p === p) entry.byType.delete(typeUrl); });
    return p;
  }

  private computeShared(
    proxy: Proxy, { scope, key, clusterKey, outboundKey }: ScopeEntry, typeUrl: string, names: readonly string[] | undefined,
  ): Promise<ComputedResponse> {
    // EDS and RDS never read the proxy's own inbound ports: every workload of a namespace (same Sidecar) shares them.
    const group = this.opts.share === false ? proxy.id
      : typeUrl === ENDPOINT_TYPE || typeUrl === ROUTE_TYPE ? outboundKey : typeUrl === CLUSTER_TYPE ? clusterKey : key;
    // Looked up by the group's string (the same object for every proxy of a scope entry, so its hash is cached),
    // the type, and the names array itself (requests' names are interned, see canonicalNames), falling back to the
    // names' content: no key string is built per request.
    let byType = this.memo.get(group);
    if (!byType) this.memo.set(group, (byType = new Map()));
    let m = byType.get(typeUrl);
    if (!m) byType.set(typeUrl, (m = { byArray: new Map(), byKey: new Map() }));
    let p = m.byArray.get(names);
    if (!p) {
      const nk = namesKey(names);
      p = m.byKey.get(nk);
      if (!p) {
        const computed = p = this.computeUncached(this.ctx, this.snapshot, scope, typeUrl, names);
        const memo = m;
        memo.byKey.set(nk, computed);
        computed.catch(() => {
          if (memo.byKey.get(nk) === computed) memo.byKey.delete(nk);
          for (const [k, v] of memo.byArray) if (v === computed) memo.byArray.delete(k);
        });
      }
      m.byArray.set(names, p);
    }
    return p;
  }

  private async computeUncached(
    ctx: PushContext, snapshot: () => SnapshotRef, scope: ProxyScope, typeUrl: string, names: readonly string[] | undefined,
  ): Promise<ComputedResponse> {
    const plan = planResources(ctx, scope, typeUrl, names);
    // Keys and names as the cache stores them (one string each per resource, shared by every response with it).
    const keys: string[] = new Array(plan.length);
    const storedNames: string[] = new Array(plan.length);
    const entries: Array<Buffer | undefined> = plan.map((item, i) => {
      const hit = this.cache.lookup(item.key);
      keys[i] = hit ? hit.key : item.key;
      storedNames[i] = hit?.name ?? item.name;
      return hit?.entry;
    });
    // Resources another scope group is generating right now (a worker task in flight) are awaited, not built
    // twice: without this, groups that plan concurrently in a connect storm each generated the same clusters.
    const waiting: Array<[number, Promise<Buffer | undefined>]> = [];
    const missing: typeof plan = [];
    const settle = new Map<string, (b: Buffer | undefined) => void>();
    for (let i = 0; i < plan.length; i++) {
      if (entries[i] !== undefined) continue;
      const key = plan[i]!.key;
      const pending = this.cache.enabled ? this.inflight.get(key) : undefined;
      if (pending) { waiting.push([i, pending]); continue; }
      missing.push(plan[i]!);
      if (this.cache.enabled) this.inflight.set(key, new Promise((resolve) => settle.set(key, resolve)));
    }
    // A hit is a resource not generated for this request (cached, or awaited from another group's generation).
    this.opts.metrics?.cacheLookup(typeUrl, plan.length - missing.length, missing.length);
    const release = (): void => {
      for (const [key, resolve] of settle) { this.inflight.delete(key); resolve(this.cache.peek(key)); }
    };
    if (missing.length > 0) {
      try {
        // A worker round trip (structured clone of the task, message passing, the result back) costs more than
        // building a handful of resources: small batches are built right here, with the same pure function.
        const names = missing.map((m) => m.name);
        const generated = this.inline(typeUrl, names.length)
          ? this.generateInline(ctx, scope, typeUrl, names)
          : await this.opts.pool.generate(ctx, snapshot, scope, typeUrl, names);
        const byName = new Map(generated.map((g) => [g.name, g]));
        for (let i = 0; i < plan.length; i++) {
          if (entries[i] !== undefined) continue;
          const g = byName.get(plan[i]!.name);
          if (g?.error) {
            this.stats.generationErrors++;
            this.opts.log.error({ type: shortType(typeUrl), resource: plan[i]!.name, err: g.error }, 'resource generation failed');
          }
          if (!g?.any) continue;
          const entry = resourceEntry(g.any);
          this.cache.set(plan[i]!.key, entry, plan[i]!.name);
          entries[i] = entry;
          this.stats.generated++;
        }
      } finally {
        release();
      }
    }
    for (const [i, p] of waiting) {
      entries[i] = await p;
      const stored = this.cache.peekEntry(keys[i]!);
      if (stored) { keys[i] = stored.key; storedNames[i] = stored.name ?? storedNames[i]!; }
    }
    const included: number[] = [];
    for (let i = 0; i < plan.length; i++) if (entries[i] !== undefined) included.push(i);
    const responseKeys = included.map((i) => keys[i]!);
    return {
      version: digest(responseKeys),
      entries: included.map((i) => entries[i]!),
      names: included.map((i) => storedNames[i]!),
      keys: responseKeys,
    };
  }

  /** Inline generation cost per resource by type (ms, EWMA of measured inline batches). */
  private readonly inlineCost = new Map<string, number>();

  /** Generate this batch on the main thread rather than in the pool? */
  private inline(typeUrl: string, n: number): boolean {
    const pool = this.opts.pool;
    if (pool.threads === 0) return false; // the inline pool is the main thread already
    if (this.opts.inlineMax !== undefined) return n <= this.opts.inlineMax;
    if (this.warming) return true;
    // No more tasks in flight than there are spare cores to run them (more threads than cores only add contention),
    // nor than there are threads: a task queued behind a busy worker waits while the main thread could build it.
    const spare = pool.spareCores ?? Infinity;
    const useful = Math.max(1, Math.min(pool.threads, Math.round(spare)));
    if (spare < MIN_SPARE_CORES || (pool.inFlight ?? 0) >= useful) return true;
    if (n <= INLINE_MAX || n * (this.inlineCost.get(typeUrl) ?? INLINE_MS_PER_RESOURCE) <= (pool.overheadMs ?? 0)) return true;
    // Worth a worker, but every running one has a task (or none runs): the batch would wait for a thread to start
    // (~0.3 s), so it is built here while threads start for the batches that follow.
    if (pool.running !== undefined && (pool.inFlight ?? 0) >= pool.running) {
      if (pool.running < useful && this.generationLoad() >= (this.opts.wakeGenerationLoad ?? WAKE_GENERATION_LOAD)) pool.wake?.(useful);
      return true;
    }
    return false;
  }

  /** Inline generation time, decayed with time constant GENERATION_LOAD_MS, and when it was last updated. */
  private genLoadMs = 0;
  private genLoadAt = 0;

  /** The share of the main thread's time spent generating inline lately (0..1, roughly the last second). */
  generationLoad(now = performance.now()): number {
    return (this.genLoadMs * Math.exp(-(now - this.genLoadAt) / GENERATION_LOAD_MS)) / GENERATION_LOAD_MS;
  }

  private generateInline(ctx: PushContext, scope: ProxyScope, typeUrl: string, names: string[]): ReturnType<typeof generateResources> {
    const t0 = performance.now();
    const out = generateResources(ctx, scope, typeUrl, names);
    const t1 = performance.now();
    this.genLoadMs = this.generationLoad(t1) * GENERATION_LOAD_MS + (t1 - t0);
    this.genLoadAt = t1;
    const per = (t1 - t0) / names.length;
    const prev = this.inlineCost.get(typeUrl);
    this.inlineCost.set(typeUrl, prev === undefined ? per : prev + 0.1 * (per - prev));
    return out;
  }

  /** Run one debounced push. */
  async push(req: PushRequest): Promise<void> {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const before = this.ctx;
    let full = req.full;
    let changedHosts: Set<string> | undefined;
    let workloadsChanged = false;
    if (!full) {
      try {
        const r = this.refreshEndpoints();
        if (r.changedHosts.size === 0 && !r.workloadsChanged) {
          this.stats.noPushes++;
          this.opts.log.debug({ events: req.events, reasons: Object.fromEntries(req.reasons) }, 'no push: nothing observable changed');
          return;
        }
        changedHosts = r.changedHosts;
        workloadsChanged = r.workloadsChanged;
      } catch {
        full = true;
      }
    }
    const oldCtx = this.ctx;
    if (full) this.rebuild(req.configsUpdated);
    const info: PushInfo = { pushVersion: this.ctx.version, full, start: req.start };
    // A full push goes only to proxies the changed configs can affect; endpoint changes merged into the same
    // request still reach every proxy watching them (as EDS).
    let deps: ProxyDependencies | undefined;
    if (full && oldCtx && this.opts.dependencyFilter !== false) {
      deps = new ProxyDependencies(oldCtx, this.ctx, req.configsUpdated);
      if (deps.all) deps = undefined;
      else {
        // Workloads only move with endpoint kinds; without them the (costly) comparison is skipped.
        const withEndpoints = [...req.configsUpdated].some((k) => ENDPOINT_KINDS.has(kindOfKey(k)));
        ({ changedHosts, workloadsChanged } = endpointChanges(oldCtx.data, this.ctx.data, withEndpoints));
      }
    }

    // Decide per proxy what to offer: everything on a full push; on an incremental one, EDS to proxies watching a
    // changed service, and a full push to proxies whose scope changed (e.g. their pod's labels).
    const work: Array<[PushTarget, readonly string[]]> = [];
    const changed = [...(changedHosts ?? [])];
    // Services whose clusters carry endpoints inline (DNS ServiceEntries): their endpoint changes are CDS changes.
    // Services whose clusters change with their endpoints: DNS ServiceEntries carry them inline, and a new set of
    // service accounts changes the SANs auto mTLS verifies (istiod: service accounts changed → full push).
    const cdsHosts = changed.filter((h) => {
      const s = this.ctx.service(h);
      return s !== undefined && (clusterCarriesEndpoints(s) || identitiesChanged(before, this.ctx, h));
    });
    // Without endpoint changes, a proxy the full push skips needs nothing: every type it holds or is being sent
    // is the same under the new context (that is what skipping means).
    const endpointWork = changed.length > 0 || workloadsChanged;
    const tDecide = performance.now();
    let skipped = 0;
    for (const t of this.targets) {
      if (full) {
        if (!deps) { work.push([t, PUSH_ORDER]); continue; }
        if (deps.scopesStable && t.scope) {
          if (deps.affects(t.scope, t.scope)) {
            const types = deps.typesFor(t.scope);
            work.push([t, !endpointWork ? types
              : workloadsChanged && readsRegistry(t.proxy, this.ctx) ? PUSH_ORDER
              : ProxyDependencies.withEndpointTypes(types, cdsHosts.length > 0)]);
            continue;
          }
        } else {
          const now = this.scopeOf(t.proxy);
          if (t.scopeKey !== now.key || deps.affects(t.scope, now.scope)) { work.push([t, PUSH_ORDER]); continue; }
        }
        skipped++;
        if (!endpointWork) continue;
      }
      // A scope can only change when workloads did (services and config are unchanged in an endpoint push).
      // Only proxies whose scope reads the workload registry (no labels of their own, or locality-aware
      // endpoints) can see it move; for the rest the scope is not recomputed for every endpoint change.
      if (workloadsChanged && t.scopeKey !== undefined && readsRegistry(t.proxy, this.ctx) &&
        t.scopeKey !== this.scopeOf(t.proxy).key) { work.push([t, PUSH_ORDER]); continue; }
      const cds = cdsHosts.length > 0 ? t.lastComputed(CLUSTER_TYPE) : undefined;
      if (cds && cdsHosts.some((h) => edsHosts(cds).has(h))) { work.push([t, [CLUSTER_TYPE, ENDPOINT_TYPE]]); continue; }
      // A proxy with an EDS response holds an EDS watch; only one watching without a response yet needs the
      // (allocating) look at its watches.
      const last = t.lastComputed(ENDPOINT_TYPE);
      if (last) {
        if (changed.some((h) => edsHosts(last).has(h))) work.push([t, [ENDPOINT_TYPE]]);
        continue;
      }
      if (t.watched().some((w) => w.typeUrl === ENDPOINT_TYPE)) work.push([t, [ENDPOINT_TYPE]]);
    }
    this.stats.proxiesSkipped += skipped;

    const tLanes = performance.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < work.length) {
        const [t, types] = work[next++]!;
        if (!this.targets.has(t)) continue;
        this.opts.metrics?.proxyDequeued(performance.now() - t0);
        await this.pushTo(t, types, info);
        this.opts.metrics?.proxyConverged(performance.now() - info.start);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.opts.pushConcurrency, work.length)) }, lane));
    this.stats.pushes++;
    if (full) this.stats.fullPushes++; else this.stats.edsPushes++;
    this.stats.proxiesPushed += work.length;
    this.stats.lastPushMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    this.scheduleCollect();
    this.opts.log.info({
      pushVersion: info.pushVersion, full, proxies: work.length, skipped, connected: this.targets.size, events: req.events,
      reasons: Object.fromEntries(req.reasons), changedServices: changedHosts?.size, ms: Math.round(this.stats.lastPushMs),
      // Where the time went: building the context, deciding who needs what (shared computation), paced sends + ACKs.
      contextMs: Math.round(tDecide - t0), decideMs: Math.round(tLanes - tDecide), sendMs: Math.round(performance.now() - tLanes),
      // Process CPU while the push ran (other work interleaved on the event loop included): far below `ms` means
      // the push waited for ACKs rather than computed.
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    }, 'push complete');
  }

  /** Remember the scope a target's config is computed from (its dependencies for the next full push). */
  noteScope(target: PushTarget): void {
    const s = this.scopeOf(target.proxy);
    target.scopeKey = s.key;
    target.scope = s.scope;
  }

  /** Offer the given types (in warming order) to one proxy; each connection sends only what changed for it. */
  async pushTo(target: PushTarget, types: readonly string[], info: PushInfo): Promise<void> {
    this.noteScope(target);
    const watched = target.watched();
    const sends: Array<Promise<void>> = [];
    for (const typeUrl of types) {
      const w = watched.find((x) => x.typeUrl === typeUrl);
      if (!w) continue;
      try {
        const typeStart = performance.now();
        const res = await this.compute(target.proxy, typeUrl, w.names);
        if (this.targets.has(target)) sends.push(target.deliver(typeUrl, res, info));
        this.opts.metrics?.pushTypeDone(typeUrl, performance.now() - typeStart);
      } catch (e) {
        this.stats.generationErrors++;
        this.opts.log.error({ proxy: target.proxy.id, pushVersion: info.pushVersion, type: shortType(typeUrl), err: (e as Error).message }, 'push failed');
      }
    }
    // Pacing: this lane takes its next proxy only once this one has answered (or timed out).
    await Promise.all(sends);
  }
}
