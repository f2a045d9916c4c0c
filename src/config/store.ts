/**
 * ConfigStore: the validated Kubernetes and Istio objects every source feeds, keyed by kind/namespace/name.
 * Sources own the objects they put in (a file, a cluster); each change is emitted once, with its kind and key,
 * for the debouncer. No I/O happens here.
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { KubeResource } from './schema/index.js';
import { CLUSTER_SCOPED } from './kinds.js';

export interface ConfigKey { kind: string; namespace: string; name: string }

export interface StoredConfig {
  key: ConfigKey;
  resource: KubeResource;
  /** Which source put it here (a file path, a cluster ID). */
  source: string;
  /** Content hash of the resource; unchanged content keeps it, so no-op writes push nothing. */
  hash: string;
  /** Order of first insertion (kept by updates): list() returns a kind's objects in this order. */
  seq: number;
}

/** How many changes per kind changesSince() can report (older ones: the caller rebuilds from list()). */
const CHANGE_LOG = 4096;

/** `observedAt`: when the source first saw this change (performance.now()), if it knows better than the event's arrival. */
export type ConfigEvent = { op: 'add' | 'update' | 'delete'; key: ConfigKey; source: string; observedAt?: number };

export function keyString(k: ConfigKey): string {
  return `${k.kind}/${k.namespace}/${k.name}`;
}

/** The kind of a key made by keyString (push requests carry keys as strings). */
export function kindOfKey(ks: string): string {
  return ks.slice(0, ks.indexOf('/'));
}

export function keyOf(r: KubeResource): ConfigKey {
  return {
    kind: r.kind,
    namespace: CLUSTER_SCOPED.has(r.kind) ? '' : (r.metadata.namespace ?? 'default'),
    name: r.metadata.name,
  };
}

export function contentHash(value: unknown): string {
  return createHash('sha1').update(JSON.stringify(value)).digest('base64url').slice(0, 16);
}

export class ConfigStore extends EventEmitter {
  private readonly byKind = new Map<string, Map<string, StoredConfig>>();
  private readonly revisions = new Map<string, number>();
  /** Per kind, the key strings changed at each revision, newest last (at most CHANGE_LOG of them). */
  private readonly changeLog = new Map<string, Array<{ rev: number; ks: string }>>();
  private nextSeq = 0;

  /** Moves whenever an object of this kind is added, changed or deleted (lets derived views skip unchanged kinds). */
  revision(kind: string): number {
    return this.revisions.get(kind) ?? 0;
  }

  /**
   * Key strings of the objects of a kind added, changed or deleted after revision `since` (each once), or undefined
   * when the log no longer reaches back that far.
   */
  changesSince(kind: string, since: number): string[] | undefined {
    const now = this.revision(kind);
    if (since === now) return [];
    const log = this.changeLog.get(kind) ?? [];
    if (since > now || log.length === 0 || log[0]!.rev > since + 1) return undefined;
    const out = new Set<string>();
    for (let i = log.length - 1; i >= 0 && log[i]!.rev > since; i--) out.add(log[i]!.ks);
    return [...out];
  }

  private bump(kind: string, ks: string): void {
    const rev = this.revision(kind) + 1;
    this.revisions.set(kind, rev);
    let log = this.changeLog.get(kind);
    if (!log) this.changeLog.set(kind, (log = []));
    log.push({ rev, ks });
    if (log.length > 2 * CHANGE_LOG) log.splice(0, log.length - CHANGE_LOG);
  }

  /** Insert or replace. Returns false when the content is unchanged (no event). */
  upsert(resource: KubeResource, source: string, observedAt?: number): boolean {
    const key = keyOf(resource);
    const ks = keyString(key);
    let m = this.byKind.get(key.kind);
    if (!m) this.byKind.set(key.kind, (m = new Map()));
    const hash = contentHash(resource);
    const prev = m.get(ks);
    if (prev && prev.hash === hash && prev.source === source) return false;
    m.set(ks, { key, resource, source, hash, seq: prev?.seq ?? this.nextSeq++ });
    this.bump(key.kind, ks);
    this.emit('change', { op: prev ? 'update' : 'add', key, source, observedAt } satisfies ConfigEvent);
    return true;
  }

  delete(key: ConfigKey, source?: string, observedAt?: number): boolean {
    const m = this.byKind.get(key.kind);
    const ks = keyString(key);
    const prev = m?.get(ks);
    if (!prev || (source !== undefined && prev.source !== source)) return false;
    m!.delete(ks);
    this.bump(key.kind, ks);
    this.emit('change', { op: 'delete', key, source: prev.source, observedAt } satisfies ConfigEvent);
    return true;
  }

  get(key: ConfigKey): StoredConfig | undefined {
    return this.byKind.get(key.kind)?.get(keyString(key));
  }

  /** The object under a key string (keyString). */
  byKeyString(ks: string): StoredConfig | undefined {
    return this.byKind.get(kindOfKey(ks))?.get(ks);
  }

  list(kind: string): StoredConfig[] {
    return [...(this.byKind.get(kind)?.values() ?? [])];
  }

  /** Every object a given source owns. */
  ownedBy(source: string): StoredConfig[] {
    const out: StoredConfig[] = [];
    for (const m of this.byKind.values()) for (const c of m.values()) if (c.source === source) out.push(c);
    return out;
  }

  size(): number {
    let n = 0;
    for (const m of this.byKind.values()) n += m.size;
    return n;
  }
}
