/**
 * ResourceCache: encoded resources by cache key (type + name + versions of every input it was built from).
 * A hit means the resource is neither regenerated nor re-encoded, and the same bytes go to every proxy.
 * Entries not used by the last `keepPushes` pushes are swept.
 */
export interface CacheEntry {
  /** The resource framed as DiscoveryResponse field 2 (tag + length + Any bytes). */
  entry: Buffer;
  lastUsed: number;
}

export interface CacheStats { hits: number; misses: number; size: number; bytes: number }

export class ResourceCache {
  private readonly map = new Map<string, CacheEntry>();
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(readonly enabled = true, private readonly keepPushes = 2) {}

  /** The entry without counting a hit or a miss. */
  peek(key: string): Buffer | undefined {
    return this.enabled ? this.map.get(key)?.entry : undefined;
  }

  get(key: string): Buffer | undefined {
    const e = this.enabled ? this.map.get(key) : undefined;
    if (e) { e.lastUsed = this.epoch; this.hits++; return e.entry; }
    this.misses++;
    return undefined;
  }

  set(key: string, entry: Buffer): void {
    if (this.enabled) this.map.set(key, { entry, lastUsed: this.epoch });
  }

  /** Called once per push: advance the epoch and drop what the last pushes did not use. */
  sweep(): void {
    this.epoch++;
    for (const [k, e] of this.map) if (this.epoch - e.lastUsed > this.keepPushes) this.map.delete(k);
  }

  stats(): CacheStats {
    let bytes = 0;
    for (const e of this.map.values()) bytes += e.entry.length;
    return { hits: this.hits, misses: this.misses, size: this.map.size, bytes };
  }

  clear(): void { this.map.clear(); }
}
