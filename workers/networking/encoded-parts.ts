/**
 * A byte-bounded cache of encoded protobuf parts, per thread (each generation worker and the main thread keep their
 * own): what a generator reuses below the level of whole resources, e.g. one service's virtual host inside a route
 * configuration that lists a thousand of them. An entry is found by a short name within a group (e.g. the host
 * within one kind of proxy's route configuration) and is valid only while its inputs string is the same, so it is
 * never stale, only replaced. Over the budget, the least recently used go until three quarters of it is left.
 */
interface Entry { inputs: string; bytes: Uint8Array; used: number }

export class EncodedParts {
  private readonly groups = new Map<string, Map<string, Entry>>();
  private bytes = 0;
  private entries = 0;
  private tick = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes: number) {}

  /** The bytes cached for `name` in `group`, if they were encoded from these inputs. */
  get(group: string, name: string, inputs: string): Uint8Array | undefined {
    const e = this.groups.get(group)?.get(name);
    if (e === undefined || e.inputs !== inputs) { this.misses++; return undefined; }
    this.hits++;
    e.used = ++this.tick;
    return e.bytes;
  }

  set(group: string, name: string, inputs: string, bytes: Uint8Array): void {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    const old = g.get(name);
    if (old) { this.bytes -= old.bytes.length + old.inputs.length; this.entries--; }
    g.set(name, { inputs, bytes, used: ++this.tick });
    this.bytes += bytes.length + inputs.length;
    this.entries++;
    if (this.bytes > this.maxBytes) this.evict();
  }

  /** Drop the least recently used entries until three quarters of the budget is left. */
  private evict(): void {
    const all: Array<[Map<string, Entry>, string, Entry]> = [];
    for (const g of this.groups.values()) for (const [name, e] of g) all.push([g, name, e]);
    all.sort((a, b) => a[2].used - b[2].used);
    for (const [g, name, e] of all) {
      if (this.bytes <= this.maxBytes * 0.75) break;
      g.delete(name);
      this.bytes -= e.bytes.length + e.inputs.length;
      this.entries--;
    }
    for (const [k, g] of this.groups) if (g.size === 0) this.groups.delete(k);
  }

  get size(): number { return this.entries; }
  get sizeBytes(): number { return this.bytes; }
}
