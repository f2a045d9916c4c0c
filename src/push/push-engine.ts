/**
 * The push engine (main thread): owns the current PushContext and its shared snapshot, turns debounced
 * PushRequests into pushes, and computes each proxy's responses through the resource cache and the generation
 * pool. Proxies with the same scope share one computation per (push version, type, requested names).
 */
import { createHash } from 'node:crypto';
import type { ConfigStore } from '../config/store.js';
import { PushContext, type MeshSettings } from '../model/push-context.js';
import { buildPushContextData } from '../model/build-push-context.js';
import { encodeSnapshot, type SnapshotRef } from '../model/snapshot-codec.js';
import { scopeFor, scopeKey, type ProxyScope } from '../model/scope.js';
import type { Proxy } from '../model/proxy.js';
import { resourceEntry } from '../proto/discovery.js';
import { ENDPOINT_TYPE, PUSH_ORDER, shortType } from '../proto/type-urls.js';
import { planResources } from '../../workers/networking/generator.js';
import type { GenerationPool } from './generation-pool.js';
import { ResourceCache } from './resource-cache.js';
import type { PushRequest } from './debounce.js';
import type { Logger } from '../log/logger.js';

export interface ComputedResponse {
  /** version_info: a digest of the cache keys of everything in the response, so equal content ⇒ equal version. */
  version: string;
  entries: Buffer[];
  names: string[];
}

export interface PushInfo { pushVersion: string; full: boolean; start: number }

/** What the engine needs from a connection (implemented in src/xds). */
export interface PushTarget {
  readonly proxy: Proxy;
  /** Watched types and their requested names (undefined = wildcard), in any order. */
  watched(): Array<{ typeUrl: string; names: string[] | undefined }>;
  /** Send a computed response for one type (the connection skips it if that version was already sent). */
  deliver(typeUrl: string, res: ComputedResponse, info: PushInfo): void;
}

export interface PushEngineOptions {
  store: ConfigStore;
  pool: GenerationPool;
  mesh: MeshSettings;
  clusterId: string;
  log: Logger;
  /** Max proxies being computed/pushed at once (PILOT_PUSH_THROTTLE). */
  pushConcurrency: number;
  cache?: boolean;
}

export interface PushStats { pushes: number; generated: number; generationErrors: number; lastPushMs: number }

function digest(parts: readonly string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('base64url').slice(0, 16);
}

export class PushEngine {
  private ctx!: PushContext;
  private snapshot!: SnapshotRef;
  private seq = 0;
  private readonly targets = new Set<PushTarget>();
  private readonly memo = new Map<string, Promise<ComputedResponse>>();
  private readonly scopes = new Map<string, { scope: ProxyScope; key: string }>();
  readonly cache: ResourceCache;
  readonly stats: PushStats = { pushes: 0, generated: 0, generationErrors: 0, lastPushMs: 0 };

  constructor(private readonly opts: PushEngineOptions) {
    this.cache = new ResourceCache(opts.cache !== false);
  }

  get pushContext(): PushContext { return this.ctx; }
  get connected(): number { return this.targets.size; }

  /** Build a new PushContext from the store (istiod's initPushContext). */
  rebuild(): PushContext {
    this.seq++;
    const version = `${new Date().toISOString()}/${this.seq}`;
    this.ctx = new PushContext(buildPushContextData(this.opts.store, this.opts.mesh, version, this.opts.clusterId));
    this.snapshot = encodeSnapshot(this.ctx.data);
    this.memo.clear();
    this.scopes.clear();
    this.cache.sweep();
    return this.ctx;
  }

  add(target: PushTarget): void { this.targets.add(target); }
  remove(target: PushTarget): void { this.targets.delete(target); }

  scopeOf(proxy: Proxy): { scope: ProxyScope; key: string } {
    const k = `${proxy.type}|${proxy.generator}|${proxy.namespace}|${proxy.interceptionMode}|${proxy.ip}|${JSON.stringify(proxy.labels)}`;
    let s = this.scopes.get(k);
    if (!s) {
      const scope = scopeFor(proxy, this.ctx);
      s = { scope, key: scopeKey(scope) };
      this.scopes.set(k, s);
    }
    return s;
  }

  /** Compute one type's response for a proxy; shared by every proxy with the same scope and request. */
  compute(proxy: Proxy, typeUrl: string, names: readonly string[] | undefined): Promise<ComputedResponse> {
    const { scope, key } = this.scopeOf(proxy);
    const memoKey = `${this.ctx.version}|${key}|${typeUrl}|${names === undefined ? '*' : [...names].sort().join(',')}`;
    let p = this.memo.get(memoKey);
    if (!p) {
      p = this.computeUncached(this.ctx, this.snapshot, scope, typeUrl, names);
      this.memo.set(memoKey, p);
      p.catch(() => this.memo.delete(memoKey));
    }
    return p;
  }

  private async computeUncached(
    ctx: PushContext, snapshot: SnapshotRef, scope: ProxyScope, typeUrl: string, names: readonly string[] | undefined,
  ): Promise<ComputedResponse> {
    const plan = planResources(ctx, scope, typeUrl, names);
    const entries: Array<Buffer | undefined> = plan.map((item) => this.cache.get(item.key));
    const missing = plan.filter((_, i) => entries[i] === undefined);
    if (missing.length > 0) {
      const generated = await this.opts.pool.generate(ctx, snapshot, scope, typeUrl, missing.map((m) => m.name));
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
        this.cache.set(plan[i]!.key, entry);
        entries[i] = entry;
        this.stats.generated++;
      }
    }
    const included = plan.filter((_, i) => entries[i] !== undefined);
    return {
      version: digest(included.map((p) => p.key)),
      entries: entries.filter((e): e is Buffer => e !== undefined),
      names: included.map((p) => p.name),
    };
  }

  /** Run one debounced push to every connected proxy. */
  async push(req: PushRequest): Promise<void> {
    const t0 = performance.now();
    this.rebuild();
    const info: PushInfo = { pushVersion: this.ctx.version, full: req.full, start: req.start };
    const types = req.full ? PUSH_ORDER : [ENDPOINT_TYPE];
    const targets = [...this.targets];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const t = targets[next++]!;
        if (!this.targets.has(t)) continue;
        await this.pushTo(t, types, info);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.opts.pushConcurrency, targets.length)) }, worker));
    this.stats.pushes++;
    this.stats.lastPushMs = performance.now() - t0;
    this.opts.log.info({
      pushVersion: info.pushVersion, full: req.full, proxies: targets.length, events: req.events,
      reasons: Object.fromEntries(req.reasons), ms: Math.round(this.stats.lastPushMs),
    }, 'push complete');
  }

  /** Push the given types (in warming order) to one proxy. */
  async pushTo(target: PushTarget, types: readonly string[], info: PushInfo): Promise<void> {
    const watched = target.watched();
    for (const typeUrl of types) {
      const w = watched.find((x) => x.typeUrl === typeUrl);
      if (!w) continue;
      try {
        const res = await this.compute(target.proxy, typeUrl, w.names);
        if (this.targets.has(target)) target.deliver(typeUrl, res, info);
      } catch (e) {
        this.stats.generationErrors++;
        this.opts.log.error({ proxy: target.proxy.id, type: shortType(typeUrl), err: (e as Error).message }, 'push failed');
      }
    }
  }
}
