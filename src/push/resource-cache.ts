/**
 * ResourceCache: encoded resources by cache key (type + name + versions of every input it was built from).
 * A hit means the resource is neither regenerated nor re-encoded, and the same bytes go to every proxy.
 *
 * Sweeping drops entries that no connected proxy holds and that the last `keepPushes` pushes did not use: the
 * superseded versions a change leaves behind. An entry some proxy holds stays, however long ago a push touched it:
 * a namespace the last pushes happened not to reach must not have its clusters and listeners regenerated on the
 * next change there (with recency alone, random churn over 50 namespaces regenerated a whole namespace's CDS, LDS
 * and EDS on almost every VirtualService change). The mark runs only once the cache has doubled since the last
 * sweep, so its cost is spread over many pushes; the push engine runs it after a push has been sent, not before.
 */
export interface CacheEntry {
  /** The resource framed as DiscoveryResponse field 2 (tag + length + Any bytes). */
  entry: Buffer;
  lastUsed: number;
  /** The key it was stored under: responses hold this one string instead of each plan's equal copy. */
  key: string;
  /** The resource's name, likewise (undefined when stored without one). */
  name?: string;
}

export interface CacheStats { hits: number; misses: number; size: number; bytes: number }

const MIN_SWEEP_SIZE = 1024;

export class ResourceCache {
  private readonly map = new Map<string, CacheEntry>();
  private epoch = 0;
  /** Size above which the next sweep marks and drops (twice what the last sweep kept). */
  private sweepAbove = MIN_SWEEP_SIZE;
  hits = 0;
  misses = 0;

  constructor(readonly enabled = true, private readonly keepPushes = 2) {}

  /** The entry without counting a hit or a miss. */
  peek(key: string): Buffer | undefined {
    return this.enabled ? this.map.get(key)?.entry : undefined;
  }

  get(key: string): Buffer | undefined {
    return this.lookup(key)?.entry;
  }

  /**
   * The entry with the key string it was stored under. Every plan builds its keys afresh, so the responses of the
   * scope groups that share a resource held equal copies of its key (and name): on a 10,000-service mesh, 823,623
   * key strings with 10,010 distinct values (94 MB of heap) after the start-up warm-up. Responses keep the stored ones.
   */
  lookup(key: string): CacheEntry | undefined {
    const e = this.enabled ? this.map.get(key) : undefined;
    if (e) { e.lastUsed = this.epoch; this.hits++; return e; }
    this.misses++;
    return undefined;
  }

  /** The entry stored under a key, if any; counts neither a hit nor a miss. */
  peekEntry(key: string): CacheEntry | undefined {
    return this.enabled ? this.map.get(key) : undefined;
  }

  set(key: string, entry: Buffer, name?: string): void {
    if (this.enabled) this.map.set(key, { entry, lastUsed: this.epoch, key, name });
  }

  /** Called once per push context: entries the coming pushes do not use age by one. */
  advance(): void { this.epoch++; }

  /** Whether the cache has doubled since the last collection (a `collect` would mark and drop). */
  get collectDue(): boolean { return this.map.size > this.sweepAbove; }

  /**
   * Once the cache has doubled, drop what neither a connected proxy holds (`held`: the cache keys of every
   * response proxies hold, lazily enumerated) nor the last pushes used.
   */
  collect(held: () => Iterable<readonly string[]>): void {
    if (!this.collectDue) return;
    const keep = new Set<string>();
    for (const keys of held()) for (const k of keys) keep.add(k);
    for (const [k, e] of this.map) if (!keep.has(k) && this.epoch - e.lastUsed > this.keepPushes) this.map.delete(k);
    this.sweepAbove = Math.max(MIN_SWEEP_SIZE, 2 * this.map.size);
  }

  stats(): CacheStats {
    let bytes = 0;
    for (const e of this.map.values()) bytes += e.entry.length;
    return { hits: this.hits, misses: this.misses, size: this.map.size, bytes };
  }

  clear(): void { this.map.clear(); }
}
